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
# # Chapter 00 — hints and worked solutions
#
# Each exercise: a **hint**, a **worked solution** that runs (on a small stream so that the whole file takes about
# a minute on a laptop CPU), and the **expected result**. The numbers printed are this run's; the expected result
# says what to look for, which holds at this size and at the chapter's.

# %%
import numpy as np
import torch
from torch import nn

from cl_lib import backbones, features, metrics, shift, streams, train

torch.manual_seed(0)
lite0 = backbones.create("tf_efficientnet_lite0")
stream, tr, te = streams.split_dataset("tiny_imagenet", n_tasks=3, classes_per_task=5, seed=0, train_per_class=20,
                                       test_per_class=20, scenario="class")
T = len(stream)
train_sets = [stream.task_data(t, tr, "train") for t in range(T)]
test_sets = [stream.task_data(t, te, "test") for t in range(T)]


def prep(x: torch.Tensor) -> torch.Tensor:
    return lite0.preprocess(x, 64)


def finetune(lr: float, scenario: str, keep_states: bool = False) -> dict:
    """Naive fine-tuning of EfficientNet-Lite0 + one head along the stream; the accuracy matrix in `scenario`."""
    stream.scenario = scenario
    torch.manual_seed(0)
    b = backbones.create("tf_efficientnet_lite0")
    net = nn.Sequential(b.model, nn.Linear(b.num_features, stream.n_classes))
    R, states = np.full((T, T), np.nan), []

    def after_task(t: int) -> None:
        R[t] = train.evaluate_row(net, stream, test_sets, t, transform=prep)
        if keep_states:
            states.append(shift.capture(b.model, {"stem": b.model.conv_stem, "head": b.model.conv_head},
                                        test_sets[0][0][:40], transform=prep))

    train.fine_tune_stream(net, train_sets, classes=stream.seen_slice if scenario == "class" else stream.task_slice,
                           epochs=2, optimizer=lambda m: train.make_optimizer(m.parameters(), "sgd", lr=lr),
                           batch_size=32, transform=prep, seed=0, after_task=after_task)
    stream.scenario = "class"
    return {"R": R, "states": states}


# %% [markdown]
# ## Exercise 1 — the task-incremental scenario
# **Hint.** In task-IL each test example is classified among its own task's classes only; the head's old rows
# are never compared with the new ones.
#
# **Expected result.** Forgetting falls sharply (most of class-IL forgetting is the head preferring the newest
# classes, not the features losing the old ones): class-IL forgetting is far above task-IL forgetting.

# %%
R_class = finetune(0.01, "class", keep_states=True)
R_task = finetune(0.01, "task")
f_class, f_task = metrics.forgetting(R_class["R"]), metrics.forgetting(R_task["R"])
print(f"forgetting: class-IL {f_class * 100:.1f} points, task-IL {f_task * 100:.1f} points")
assert f_task < f_class

# %% [markdown]
# ## Exercise 2 — the frozen learner forgets in class-IL
# **Hint.** Its features never move, so only the head can forget: training a task with all seen logits pushes
# the old classes' logits down. Restrict each task's loss to its own logits.
#
# **Expected result.** With the task's logits only, the old tasks keep much more accuracy (less forgetting); what
# remains is the scale mismatch between heads trained at different times.

# %%
fs = features.feature_split(lite0, "tiny_imagenet", n_classes=20, train_per_class=100, test_per_class=25, seed=0,
                            image_size=64)
fstream = streams.split_stream(fs.y_train, fs.y_test, n_tasks=4, classes_per_task=5, seed=0)
lut = fstream.label_map(fs.n_classes)
ztr, ytr, zte, yte = fs.z_train, lut[fs.y_train], fs.z_test, lut[fs.y_test]
ftest = [(zte[(yte >= fstream.task_slice(t).start) & (yte < fstream.task_slice(t).stop)],
          yte[(yte >= fstream.task_slice(t).start) & (yte < fstream.task_slice(t).stop)]) for t in range(len(fstream))]
out = {}
for rule in ("seen logits", "task logits"):
    torch.manual_seed(0)
    head, R = nn.Linear(ztr.shape[1], fs.n_classes), np.full((len(fstream),) * 2, np.nan)
    for t, task in enumerate(fstream.tasks):
        classes = fstream.seen_slice(t) if rule == "seen logits" else fstream.task_slice(t)
        train.fit(head, ztr[task.train], ytr[task.train], epochs=10, batch_size=64, classes=classes, seed=t,
                  optimizer=train.make_optimizer(head.parameters(), "sgd", lr=0.05))
        R[t] = train.evaluate_row(head, fstream, ftest, t)
    out[rule] = metrics.forgetting(R)
    print(f"frozen + head, trained on {rule}: forgetting {out[rule] * 100:.1f} points, final {np.mean(R[-1]) * 100:.1f} %")
assert out["task logits"] < out["seen logits"]

# %% [markdown]
# ## Exercise 3 — a smaller learning rate
# **Hint.** Run naive fine-tuning with `lr_finetune` / 10 and compare forgetting and the head conv's 1 − CKA
# against the pretrained model after the last task.
#
# **Expected result.** Both fall together: smaller steps move the features less and forget less (at the price of
# learning each new task less well). One point per learning rate traces the trade-off.

# %%
ref = shift.capture(lite0.model, {"stem": lite0.model.conv_stem, "head": lite0.model.conv_head}, test_sets[0][0][:40],
                    transform=prep)
R_small = finetune(0.001, "class", keep_states=True)
for name, run in (("lr 0.01", R_class), ("lr 0.001", R_small)):
    drift = 1 - shift.layer_cka(ref, run["states"][-1])
    print(f"{name}: forgetting {metrics.forgetting(run['R']) * 100:.1f} points, 1 − CKA (stem, head conv) {np.round(drift, 3)}")

# %% [markdown]
# ## Exercise 4 — which layers keep moving after the first task?
# **Hint.** Compare each layer's representation after task 1 with the one after the last task (not with the
# pretrained model).
#
# **Expected result.** The head conv keeps moving (1 − CKA clearly above 0) while the stem barely moves: late
# layers are where the stream keeps rewriting the representation.

# %%
drift_after_1 = 1 - shift.layer_cka(R_class["states"][0], R_class["states"][-1])
print("1 − CKA between after task 1 and after the last task (stem, head conv):", np.round(drift_after_1, 3))

# %% [markdown]
# ## Exercise 5 — what linear CKA is invariant to
# **Hint.** Linear CKA is $\lVert Y^\top X\rVert_F^2 / (\lVert X^\top X\rVert_F \lVert Y^\top Y\rVert_F)$ on centred
# features; substitute $\alpha X Q$ and use $Q Q^\top = I$. An anisotropic scaling of the columns changes it.
#
# **Expected result.** CKA(X, αXQ) = 1 up to rounding; CKA(X, X·diag(s)) with unequal s is below 1.

# %%
g = torch.Generator().manual_seed(0)
X = torch.randn(200, 16, generator=g, dtype=torch.float64)
Q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
s = torch.linspace(0.1, 10, 16, dtype=torch.float64)
same, changed = shift.linear_cka(X, 3.0 * X @ Q), shift.linear_cka(X, X * s)
print(f"CKA(X, 3 X Q) = {same:.6f}; CKA(X, X diag(s)) = {changed:.4f}")
assert abs(same - 1) < 1e-6 and changed < 0.99
