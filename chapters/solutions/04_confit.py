# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 04 — hints and worked solutions
#
# Each exercise: a **hint**, a **worked solution** that runs in one to two minutes on a laptop CPU (a stream of
# three Tiny ImageNet tasks, 16 images per class), and the **expected result**.

# %%
import copy

import numpy as np
import torch
from torch import nn

from cl_lib import backbones, streams, train
from cl_lib.methods import confit

stream, tr, te = streams.split_dataset("tiny_imagenet", n_tasks=3, classes_per_task=5, seed=0, train_per_class=16,
                                       test_per_class=20, scenario="task")
T = len(stream)
train_sets = [stream.task_data(t, tr, "train") for t in range(T)]
test_sets = [stream.task_data(t, te, "test") for t in range(T)]
lite0 = backbones.create("tf_efficientnet_lite0")


def run(size: int = 64, schedule: str = "hierarchical", scenario: str = "task", epochs: int = 5) -> dict:
    """Fine-tune along the stream (SGD + momentum, as the chapter's quick profile); ConFiT keeps each task's BN."""
    prep = lambda x: lite0.preprocess(x, size)  # noqa: E731
    torch.manual_seed(0)
    b = backbones.create("tf_efficientnet_lite0")
    head = nn.Linear(b.num_features, stream.n_classes)
    net = nn.Sequential(b.model, head)
    cft = confit.ConFiT.attach(net, prep(train_sets[0][0][:2]))
    w0 = {n: m.weight.detach().clone() for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}

    def on_epoch(t: int):
        if schedule == "hierarchical":
            return confit.hierarchical_schedule(net, head, epochs)
        if schedule == "LP-FT":  # classifier only, then everything
            return lambda e: confit.set_stage(net, head, 0 if e == 0 else 2)
        return None

    def after_task(t: int) -> None:
        for p in net.parameters():
            p.requires_grad_(True)
        cft.end_task()

    train.fine_tune_stream(net, train_sets, classes=stream.task_slice if scenario == "task" else stream.seen_slice,
                           epochs=epochs, batch_size=32, transform=prep, seed=0, on_epoch=on_epoch,
                           optimizer=lambda m: train.make_optimizer(m.parameters(), "sgd", lr=0.01, momentum=0.9),
                           after_task=after_task)
    change = np.mean([float((m.weight.detach() - w0[n]).norm() / w0[n].norm())
                      for n, m in net.named_modules() if isinstance(m, nn.Conv2d)])
    return {"net": net, "cft": cft, "prep": prep, "change": change}


def acc(r: dict, j: int, mode: str | None, scenario: str = "task") -> float:
    classes = stream.task_slice(j) if scenario == "task" else stream.seen_slice(T - 1)
    if mode is None:
        return train.accuracy(r["net"], *test_sets[j], classes=classes, transform=r["prep"])
    with r["cft"].for_task(j, mode):
        return train.accuracy(r["net"], *test_sets[j], classes=classes, transform=r["prep"])


base = run()

# %% [markdown]
# ## Exercise 1 — oracle BN means
# **Hint.** Under task j's stored statistics, `confit.true_bn_means(net, x)` measures each BN's true input mean on
# task j's test images (upstream BNs using their true means too); put them in place of the stored means and test.
#
# **Expected result.** A surprise worth discussing: the oracle means do *not* help — they do worse than the stored
# statistics, even for the current task. A BN's stored mean, variance, γ and β were learnt together (in train mode,
# from batch statistics, while the next layers adapted to them); swapping in the exact mean of the test images
# while keeping the stored variance breaks that consistency. So "recover the true mean" is not the whole target:
# what is left of the gap is the change of the weights and of the variances, which no mean can undo.

# %%
for j in range(T - 1):
    stats = base["cft"].tasks[j]
    with confit.task_bn(base["net"], stats):
        true = confit.true_bn_means(base["net"], base["prep"](test_sets[j][0]))
    oracle = copy.deepcopy(stats)
    for name, mean in true.items():
        oracle.bn[name]["running_mean"] = mean
    with confit.task_bn(base["net"], oracle):
        a_oracle = train.accuracy(base["net"], *test_sets[j], classes=stream.task_slice(j), transform=base["prep"])
    print(f"task {j + 1}: stale {acc(base, j, 'stale') * 100:.1f} %, Xconv {acc(base, j, 'xconv') * 100:.1f} %, "
          f"oracle means {a_oracle * 100:.1f} %")

# %% [markdown]
# ## Exercise 2 — Xconv at a larger image size
# **Hint.** Xconv recovers a conv's output mean exactly at interior pixels; at 64 px the last stages work on 2×2
# and 4×4 maps where every pixel touches the border. Re-run at 128 px and compare the accuracy of old tasks
# under Xconv against stale statistics.
#
# **Expected result.** Xconv's advantage over stale statistics grows at 128 px (at 64 px it can even be
# negative): the late layers' maps have interiors again, so the recovered means are closer to the true ones there.

# %%
big = run(size=128)
for name, r in (("64 px", base), ("128 px", big)):
    gain = np.mean([acc(r, j, "xconv") - acc(r, j, "stale") for j in range(T - 1)])
    print(f"{name}: Xconv − stale on the old tasks {gain * 100:+.1f} points")

# %% [markdown]
# ## Exercise 3 — recovering variances too
# **Hint.** The variance of a conv's output under today's weights needs the second moment of its input patches:
# E[x xᵀ] over the conv's receptive field, (C_in·k²)² floats for a k×k conv (C_in² for a 1×1 or depthwise-free
# case) — against C_in floats for the mean.
#
# **Expected result.** Tens of millions of floats per task for EfficientNet-Lite0, against tens of thousands for the
# means: storing second moments costs more than storing the data's worth of statistics it would protect.

# %%
pairs = base["cft"].pairs
means = sum(p.in_channels for p in pairs)
second = sum((p.conv.in_channels // p.conv.groups * p.conv.kernel_size[0] * p.conv.kernel_size[1]) ** 2 *
             (p.conv.groups if p.conv.groups > 1 else 1) for p in pairs)
print(f"per task: input means {means:,} floats; input second moments {second:,} floats ({second / means:.0f}× more)")

# %% [markdown]
# ## Exercise 4 — another hierarchical schedule
# **Hint.** LP-FT (Kumar et al., 2022): epoch 0 trains the classifier only, then everything (no BN-only stage).
# Compare the mean relative change of the conv weights after the stream for naive, LP-FT and ConFiT's schedule.
#
# **Expected result.** Both staged schedules change the conv weights less than naive fine-tuning: the first stage
# (classifier only) is what matters most, as it removes the large early gradients of a random head.

# %%
for schedule in ("naive", "LP-FT", "hierarchical"):
    r = base if schedule == "hierarchical" else run(schedule=schedule)
    print(f"{schedule:>12}: mean relative conv weight change {r['change']:.4f}")

# %% [markdown]
# ## Exercise 5 — the ladder, class-incrementally
# **Hint.** Without the task identity at test time, no stored statistics can be chosen: every test example uses
# today's (shared) BN. Only the training schedule can still help.
#
# **Expected result.** Stored and Xconv statistics do not apply, and at this size the schedule does not help
# either: both learners predict almost only the newest task's classes (the old tasks' columns are at or near 0).
# ConFiT's rungs address representational shift; class-IL forgetting here lives in the head.

# %%
for schedule in ("naive", "hierarchical"):
    r = run(schedule=schedule, scenario="class")
    finals = [acc(r, j, None, scenario="class") for j in range(T)]
    print(f"class-IL, {schedule:>12}: final accuracy {np.mean(finals) * 100:.1f} % (per task {np.round(np.array(finals) * 100, 1)})")
