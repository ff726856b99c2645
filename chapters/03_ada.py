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
# # 3. Adapters for many tasks at constant size: Adaptive Distillation of Adapters (ADA)
#
# **Goals.** By the end of this chapter you can
# 1. explain how *adapters* — small bottleneck layers inserted into a frozen Transformer — let one network
#    serve many tasks without forgetting, and why one adapter per task makes memory grow with the stream;
# 2. follow ADA (Ermis et al., NeurIPS 2022): a pool of at most $K$ adapters, a training-free
#    *transferability score* (TransRate or LEEP) that picks which adapter a new task should share, and
#    *distillation* of two adapters into one;
# 3. measure what ADA buys — parameters that stay flat, one forward pass at inference — and what it costs
#    in accuracy, against one adapter per task, a single shared adapter, sequential fine-tuning and an
#    AdapterFusion-style model that runs every adapter;
# 4. look inside the Transformer: which attention heads an adapter redirects.

# %% [markdown]
# ## The idea
#
# **Adapters.** A frozen pre-trained Transformer $f_\theta$ is adapted to task $t$ by inserting, after the
# attention and the feed-forward output projections of a layer, a bottleneck with a residual connection
# (Houlsby et al., 2019):
#
# $$A(h) = h + W_{\text{up}}\,\mathrm{GELU}(W_{\text{down}}\, h), \qquad W_{\text{down}} \in \mathbb{R}^{r\times d},\;
#   W_{\text{up}} \in \mathbb{R}^{d\times r},\; r \ll d.$$
#
# With $W_{\text{up}} = 0$ at the start, a new adapter is the identity: training starts from the pretrained
# network exactly. Only the adapters $\phi_t$ and a small task head $h_t$ train; $\theta$ never changes, so
# a task learnt with *its own* adapter can never be forgotten. The price: $T$ tasks need $T$ adapters.
#
# **ADA.** Keep a pool of at most $K$ adapters. For a new task $t$:
# 1. train a new adapter $\phi_t$ and head $h_t$ on $D_t$ (exactly as for one adapter per task);
# 2. if the pool has fewer than $K$ adapters, add $\phi_t$; otherwise score every pool adapter $\phi_k$
#    by how well its features transfer to $D_t$, *without training*, pick the best slot $k^\star$, and replace
#    $\phi_{k^\star}$ by a student $\phi'$ distilled from two teachers: the old adapter with the heads of the
#    tasks it serves ($S_{k^\star}$), and the new adapter with $h_t$. With every head frozen, the student minimises
#    the double-distillation loss of Deep Model Consolidation (Zhang et al., 2020) on the current task's data:
#
# $$\mathcal{L}(\phi') = \frac{1}{|D_t|}\sum_{x\in D_t} \sum_{s \in S_{k^\star}\cup\{t\}}
#   \big\lVert \bar h_s(f_{\theta,\phi'}(x)) - \bar h_s(f_{\theta,\phi_{\text{teacher}(s)}}(x)) \big\rVert^2,
#   \qquad \bar z = z - \tfrac{1}{C}\textstyle\sum_c z_c,$$
#
#    where $\bar h$ are *centred* logits (the softmax is blind to a constant shift, so only the centred part is
#    worth matching). Tasks of slot $k^\star$, and task $t$, now use $\phi'$.
#
# Inference on task $t$ (its identity is given: *task-incremental*): backbone + the pool adapter of $t$ + $h_t$,
# one forward pass. Stored parameters: $K\,|\phi| + \sum_t |h_t|$, flat in $T$ up to the tiny heads.
#
# **Transferability scores.** With $Z$ the features of the new task's $n$ examples under a pool adapter
# (centred, $d$-dimensional) and $Z_c$ those of class $c$:
#
# * **TransRate** (Huang et al., 2022) — the coding rate of all features minus that of each class:
#   $R(Z,\varepsilon) = \tfrac12 \log\det\!\big(I + \tfrac{d}{n\varepsilon^2} Z^\top Z\big)$,
#   $\;\mathrm{TrR} = R(Z,\varepsilon) - \sum_c \tfrac{n_c}{n} R(Z_c,\varepsilon)$. High when the features of
#   different classes are spread and those of one class are compact.
# * **LEEP** (Nguyen et al., 2020) — with $\theta(x)$ the old heads' probabilities over the *source* labels
#   $z$, build the empirical $\hat P(y\mid z)$ on the new data and score
#   $\tfrac1n\sum_i \log \sum_z \hat P(y_i\mid z)\,\theta(x_i)_z$: how well a source prediction, re-labelled,
#   predicts the new labels.
#
# **What is the paper's and what is the book's.** The pool, the selection by TransRate/LEEP, distillation of
# two adapters into one, constant size and single-pass inference are the paper's. There is no public code; the
# book decides: Houlsby adapters with reduction 16 after both output projections; the student starts from the
# old adapter and is distilled on the current task's data only; logits are centred per task head; Adam; and
# the sizes of the `book.toml` profiles. The paper used BERT (text) and ViT (images); here the backbone is
# all-MiniLM-L6-v2 (6 layers, 384 wide) so that the chapter runs on a CPU.

# %%
import functools
import time

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cl_lib import backbones, config, cost, data, experiment, metrics, plots, probes, streams, text, train
from cl_lib.claims import Claims
from cl_lib.methods import ada

cfg = config.chapter_config("03_ada")
cost.announce(cfg)  # the estimated cost, where the profile asks for it (`full`)
plots.set_style()
CH = cfg.chapter

# %% [markdown]
# ## The code
#
# The adapter, and how it gets into the frozen encoder: a forward hook on each chosen output projection runs
# whatever adapter set is *plugged* in. Nothing in the backbone is replaced or trained.

# %%
plots.show_code(ada.Adapter, ada.AdaptedEncoder.__init__, ada.AdaptedEncoder.plug)

# %% [markdown]
# The two transferability scores, the distillation, and ADA's loop over the stream:

# %%
plots.show_code(probes.transrate, probes.leep, ada.centred_logits, ada.distil, ada.run_ada)

# %% [markdown]
# ## The stream: CLINC150, one domain per task
#
# CLINC150 (Larson et al., 2019) holds 150 intents of a voice assistant, grouped in 10 domains of 15 intents
# (banking, travel, kitchen and dining, …). Each domain is a task with 15 intents, task-incremental (the domain is
# known at test time, each task has its own 15-way head). Each seed draws `n_tasks` of the ten domains, in a seeded
# order, and fresh initial adapters and heads.

# %%
tr, te = data.load_clinc150("train"), data.load_clinc150("test")
domains = list(tr.groups)
SEEDS = list(range(cfg.seeds))


def seed_stream(s: int) -> streams.Stream:
    order = [domains[i] for i in np.random.default_rng(cfg.seed + s).permutation(len(domains))[: cfg.n_tasks]]
    return streams.stream_from_groups(tr.labels, te.labels, [tr.groups[d] for d in order], name="CLINC150 domains",
                                      scenario="task", seed=cfg.seed + s, train_per_class=cfg.train_per_class,
                                      test_per_class=cfg.test_per_class, task_names=order)


stream = seed_stream(SEEDS[0])
T = len(stream)
for task in stream.tasks:
    print(f"{task.id + 1:2d} {task.name:18s} {len(task.train):4d} train / {len(task.test):3d} test — "
          + ", ".join(tr.classes[c] for c in task.classes[:4]) + ", …")
print("e.g.:", [tr.texts[i] for i in stream.tasks[1].train[:3]])

# %% [markdown]
# ## The backbone, cut in two
#
# all-MiniLM-L6-v2 (Wang et al., 2020; Reimers & Gurevych, 2019) is a 6-layer BERT-like sentence encoder:
# mean-pooled, L2-normalised token states. Adapters go into the layers from `first_layer` on. The layers below
# never change, so the hidden states entering `first_layer` are computed once and cached on disk; only the
# adapted layers run while training (in the quick profile the last two layers; in full, every layer).

# %%
backbone = backbones.create(cfg.backbone)
encoder = ada.AdaptedEncoder(backbone, cfg.first_layer).to(cfg.device)
n_layers = len(text.encoder_parts(backbone)[1])
print(f"{backbone.name}: {train.n_params(backbone.model) / 1e6:.1f} M parameters, frozen; adapters in layers "
      f"{cfg.first_layer + 1}..{n_layers} (of {n_layers}) at {len(encoder.points)} points, bottleneck r = {cfg.bottleneck}")


def task_sets(st: streams.Stream, split: str) -> list[tuple[text.Hidden, torch.Tensor]]:
    """Cached hidden states entering `first_layer` and task-local labels 0..14 of every task of a stream."""
    ds = tr if split == "train" else te
    return [(text.cached_hidden_states(backbone, ds, layer=cfg.first_layer, indices=getattr(task, split),
                                       device=cfg.device), st.task_data(t, ds, split, local=True)[1])
            for t, task in enumerate(st.tasks)]


t0 = time.perf_counter()
data_of = {s: (task_sets(seed_stream(s), "train"), task_sets(seed_stream(s), "test")) for s in SEEDS}
train_sets, test_sets = data_of[SEEDS[0]]
print(f"hidden states: {time.perf_counter() - t0:.1f} s; task 1 train {tuple(train_sets[0][0].states.shape)}")

# %% [markdown]
# A new adapter is the identity (its up-projection is zero), so plugging it in changes nothing — checked here
# on real data before anything trains:

# %%
def new_modules(t: int, s: int = 0) -> tuple[ada.AdapterSet, nn.Linear]:
    """Task t's fresh adapter and head on seed s (each seeded on its own: the same whatever ran before)."""
    return ada.new_task_modules(encoder, len(stream.tasks[t].classes), cfg.bottleneck, init_seed=cfg.seed + 100 * s,
                                task=t, device=cfg.device)


z_plain, z_new = ada.embed(encoder, None, test_sets[0][0]), ada.embed(encoder, new_modules(0)[0], test_sets[0][0])
identity_gap = float((z_plain - z_new).abs().max())
print("max |difference| with a fresh adapter:", identity_gap)
ADAPTER_SIZE = train.n_params(new_modules(0)[0])
print(f"one adapter set: {ADAPTER_SIZE:,} parameters ({ADAPTER_SIZE / train.n_params(backbone.model):.2%} of the backbone); "
      f"one head: {train.n_params(new_modules(0)[1]):,}")

# %% [markdown]
# ## Every learner, on every seed
#
# For each seed, in this order:
#
# * **frozen backbone + heads** — no adapter at all: a linear head per task on the frozen sentence embeddings;
# * **one adapter per task** — each task trains its own adapter and a new 15-way head, from scratch, with
#   cross-entropy; kept, they never forget, and the parameters grow with $T$;
# * **ADA** — from the very same adapters and heads: a pool of $K$ slots; the first $K$ tasks fill it, and from
#   then on each new task is scored against every slot (TransRate) and distilled into the best one;
# * **ADA with its distillation switched off**, two ways (`ada.keep_old`: the slot keeps its old adapter, and the new
#   task gets a head trained on that adapter's embeddings of its own data, as the frozen-encoder heads are trained;
#   `ada.take_new`: the slot takes the new adapter, and the
#   slot's older tasks use it with their old heads);
# * **one shared adapter** trained on each task in turn (a new head per task, old heads kept as they were): the
#   same size as ADA with $K=1$, no distillation;
# * **sequential fine-tuning** of the backbone's own adapted layers, with the same protocol (first seed).
#
# The adapters' and the distillation's learning rate (`lr_adapter`) and the frozen heads' (`lr_probe`) are the ones
# chosen on held-out training examples in chapter 07, on the same kind of stream (CLINC150 domains, 8 shots): each
# learner tuned, none on the test set. The first seed also runs sequential fine-tuning (the most expensive learner;
# recorded, not asserted) and the ablation over the pool size $K$ and the selection rule. Seeds run side by side, one
# process per CPU core (`cl_lib.parallel`).

# %%
plots.show_code(ada.keep_old, ada.take_new)


# %%
def fit_kw(epochs: int, seed: int) -> dict:
    return dict(epochs=epochs, lr=cfg.lr_adapter, lr_head=cfg.lr_head, batch_size=cfg.batch_size, seed=seed)


def ada_run(s: int, adapters, heads, **kw) -> ada.ADAResult:
    tr_s, te_s = data_of[s]
    return ada.run_ada(encoder, tr_s, te_s, adapters, heads, **{"K": cfg.K, "selection": "transrate",
                                                              "epochs": cfg.distil_epochs, "lr": cfg.lr_adapter,
                                                              "batch_size": cfg.batch_size, "seed": cfg.seed + s, **kw})


def run_seed(job: tuple[int, str]) -> dict:
    """Every learner on seed s's stream: accuracy matrices (and ADA's slots and sizes). The first seed's sequential
    fine-tuning (recorded, not asserted) is a job of its own, so that the two processes share the work evenly."""
    s, part = job
    tr_s, te_s = data_of[s]
    out = {}
    if part == "sequential fine-tuning":
        ft_encoder = ada.AdaptedEncoder(backbone, cfg.first_layer).to(cfg.device)
        ft_encoder.upper.requires_grad_(True)
        out["sequential fine-tuning"] = ada.run_sequential(
            ft_encoder, tr_s, te_s, [new_modules(t, s)[1] for t in range(T)], adapters=None,
            extra=list(ft_encoder.upper.parameters()), **{**fit_kw(cfg.epochs, cfg.seed + s), "lr": cfg.lr_finetune})
        out["ft_state"] = ft_encoder.upper.state_dict()
        return out
    probe_heads, R = [new_modules(t, s)[1] for t in range(T)], np.full((T, T), np.nan)
    for t in range(T):
        z, y = ada.embed(encoder, None, tr_s[t][0]), tr_s[t][1].to(cfg.device)
        train.fit(probe_heads[t], z, y, epochs=cfg.probe_epochs, batch_size=cfg.batch_size, seed=cfg.seed + s + t,
                  optimizer=train.make_optimizer(probe_heads[t].parameters(), "adam", lr=cfg.lr_probe), device=cfg.device)
        R[t:, t] = ada.accuracy(encoder, None, probe_heads[t], *te_s[t])
    out["frozen backbone + heads"] = R
    adapters, heads = ada.train_adapters(encoder, tr_s, [len(task.classes) for task in stream.tasks], cfg.bottleneck,
                                         init_seed=cfg.seed + 100 * s, device=cfg.device, **fit_kw(cfg.epochs, cfg.seed + s))
    R = np.full((T, T), np.nan)
    for j in range(T):
        R[j:, j] = ada.accuracy(encoder, adapters[j], heads[j], *te_s[j])
    out["one adapter per task"] = R
    res = ada_run(s, adapters, heads)
    out["ADA"], out["ADA result"] = res.R, res
    keep = functools.partial(ada.keep_old, head_epochs=cfg.probe_epochs, lr_head=cfg.lr_probe)  # heads as the frozen ones
    out["ADA, keep the old adapter"] = ada_run(s, adapters, heads, merge=keep).R
    out["ADA, take the new adapter"] = ada_run(s, adapters, heads, merge=ada.take_new).R
    out["one shared adapter"] = ada.run_sequential(encoder, tr_s, te_s, [new_modules(t, s)[1] for t in range(T)],
                                                   adapters=new_modules(0, s)[0], **fit_kw(cfg.epochs, cfg.seed + s))
    if s == SEEDS[0]:  # the first seed also: the pool-size × selection ablation
        out["adapters"], out["heads"] = adapters, heads
        out["ablation"] = {(K, how): res if (K, how) == (cfg.K, "transrate") else ada_run(s, adapters, heads, K=K, selection=how)
                           for K in cfg.ablation_K for how in (cfg.ablation_selection if K == cfg.K else ["transrate"])}
    return out


t0 = time.perf_counter()
jobs = [(s, "learners") for s in SEEDS] + [(SEEDS[0], "sequential fine-tuning")]
done = experiment.over_seeds(run_seed, jobs, cfg=cfg, name="ch03_runs", cache_results=False)  # trained adapters: not stored
runs = [{k: v for (s_, _), r in done.items() if s_ == s for k, v in r.items()} for s in SEEDS]
print(f"{len(SEEDS)} seeds in {time.perf_counter() - t0:.0f} s")
assert all(torch.equal(p, q) for p, q in zip(backbone.model.parameters(), encoder.model.parameters())), \
    "the frozen backbone must never change"
LEARNERS = ["frozen backbone + heads", "one adapter per task", "ADA", "ADA, keep the old adapter",
            "ADA, take the new adapter", "one shared adapter", "sequential fine-tuning"]
final = {n: np.array([np.mean(r[n][-1]) for r in runs if n in r]) for n in LEARNERS}
forget = {n: np.array([metrics.forgetting(r[n]) for r in runs if n in r]) for n in LEARNERS}
for n in LEARNERS:
    print(f"{n:28s} final average accuracy {final[n].mean():.3f} ± {final[n].std():.3f}, "
          f"forgetting {forget[n].mean():.3f} ± {forget[n].std():.3f} ({len(final[n])} seed{'s' if len(final[n]) > 1 else ''})")
run0 = runs[0]
res, adapters, heads = run0["ADA result"], run0["adapters"], run0["heads"]
ft_encoder = ada.AdaptedEncoder(backbone, cfg.first_layer).to(cfg.device)
ft_encoder.upper.load_state_dict(run0["ft_state"])
for t in range(T):
    sc = "" if res.scores[t] is None else f"  TransRate per slot {np.round(res.scores[t], 2).tolist()}"
    print(f"seed 0, task {t + 1} → slot {res.slots[t][t] + 1}{sc}")

# %% [markdown]
# ## Accuracy: matrices and curves
#
# Row $i$: after training task $i$; column $j$: tested on task $j$ with its own head (and, for ADA, with the
# pool adapter task $j$ points to after step $i$). One adapter per task is constant down each column by
# construction; ADA's columns change only when their slot is distilled again. First seed; the curves below are
# mean ± std over the seeds.

# %%
show = ["one adapter per task", "ADA", "ADA, take the new adapter", "one shared adapter"]
fig, axes = plt.subplots(2, 2, figsize=(11, 10), layout="constrained")  # four equal maps, big enough to read
for ax, name in zip(axes.flat, show):
    plots.accuracy_matrix(run0[name], ax, name, cbar=False)
fig.colorbar(axes[0, 0].collections[0], ax=axes, shrink=0.6, label="accuracy (%)")
fig.suptitle(f"Task-incremental CLINC150, {T} domains × 15 intents, seed 0 ({cfg.profile} profile)")
plots.show(fig, CH, "accuracy_matrices",
           caption="Task-IL accuracy matrices (seed 0): one adapter per task is constant down each column; ADA's "
                   "columns change only when their slot is distilled again.")

# %%
fig, ax = plt.subplots(figsize=(9, 4.8))
plots.curves({n: np.array([metrics.seen_accuracy(r[n]) for r in runs if n in r]) for n in LEARNERS}, ax,
             ylabel="mean accuracy on tasks seen", title="Average accuracy along the stream", legend=False)
ax.set_ylim(50, 100)
ax.legend(fontsize=7, loc="lower left", ncol=2)
plots.show(fig, CH, "average_accuracy",
           caption="Average accuracy on the tasks seen so far, mean ± std over seeds: how close ADA's constant-size "
                   "pool stays to one adapter per task.")

# %% [markdown]
# ## Which slot each task went to
#
# Each row is the state after a task: the colour of cell $(i, j)$ is the pool slot that task $j$ uses after
# step $i$. A new task first fills an empty slot; afterwards TransRate decides where it is merged.

# %%
def draw_slots(result: ada.ADAResult, ax: plt.Axes, title: str) -> None:
    S = np.full((T, T), np.nan)
    for i, row in enumerate(result.slots):
        S[i, : len(row)] = row
    cmap = plt.get_cmap("tab10", 10)
    ax.imshow(np.ma.masked_invalid(S), cmap=cmap, vmin=-0.5, vmax=9.5)
    for i in range(T):
        for j in range(i + 1):
            ax.text(j, i, int(S[i, j]) + 1, ha="center", va="center", fontsize=8, color="w")
    ax.set_xticks(range(T), plots.task_labels(T)), ax.set_yticks(range(T), plots.task_labels(T))
    ax.grid(False)
    ax.set(xlabel="task", ylabel="after training task", title=title)


fig, ax = plt.subplots(figsize=(5.6, 5))
draw_slots(res, ax, f"ADA, K={cfg.K}, TransRate: slot of each task")
plots.show(fig, CH, "slots",
           caption="The pool slot each task uses after each step: a new task fills an empty slot first, then "
                   "TransRate chooses where it is merged.")
print("domains per slot at the end:", {k + 1: [stream.tasks[j].name for j in range(T) if res.slots[-1][j] == k]
                                       for k in range(cfg.K)})

# %% [markdown]
# ## Ablation: how the slot is chosen, and how large the pool is
#
# The same per-task adapters and heads (first seed), ADA run again with a random choice of slot, with LEEP, with
# TransRate, and (with TransRate) with other pool sizes $K$. With $K=1$ there is nothing to choose. The explorer
# below redraws the slots and the accuracy matrix of any of these runs (the book shows the default).

# %%
ablation = run0["ablation"]
for (K, how), r in ablation.items():
    print(f"K={K} {how:9s}: final ACC {np.mean(r.R[-1]):.3f}, slots {r.slots[-1]}")
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), layout="constrained")
sel = list(cfg.ablation_selection)
vals = [np.mean(ablation[(cfg.K, h)].R[-1]) * 100 for h in sel]
bars = axes[0].barh(sel, vals, color=sns.color_palette(plots.PALETTE)[:len(sel)])
axes[0].bar_label(bars, fmt="%.1f", label_type="center", color="w", fontweight="bold")  # inside: no line crosses it
axes[0].axvline(np.mean(run0["one adapter per task"][-1]) * 100, color="k", ls="--", label="one adapter per task")
axes[0].axvline(np.mean(run0["one shared adapter"][-1]) * 100, color="grey", ls=":", label="one shared adapter")
axes[0].set(xlabel="final average accuracy (%)", ylabel="slot selection", title=f"Selection (K={cfg.K}, seed 0)",
            xlim=(0, 100))
axes[0].legend(fontsize=8, loc="lower left")
plots.curves({f"K={K}": metrics.seen_accuracy(ablation[(K, "transrate")].R) for K in cfg.ablation_K}, axes[1],
             ylabel="mean accuracy on tasks seen", title="Pool size K (TransRate, seed 0)")
axes[1].plot(np.arange(1, T + 1), np.array(metrics.seen_accuracy(run0["one adapter per task"])) * 100, "k--",
             label="one adapter per task")
axes[1].set_ylim(0, 100)
axes[1].legend(fontsize=8, loc="lower left")
plots.show(fig, CH, "ablation",
           caption="Final accuracy by how the slot is chosen (random, LEEP, TransRate) and by the pool size K, "
                   "against the per-task-adapter reference line.")


# %%
def draw_pool(K: int, selection: str) -> None:
    r = ablation.get((K, selection))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    if r is None:
        for ax in axes:
            ax.axis("off")
        axes[0].text(0.5, 0.5, f"K={K} with {selection} was not run:\nchange one knob at a time from the default",
                     ha="center", va="center")
    else:
        draw_slots(r, axes[0], f"slots, K={K}, {selection}")
        plots.accuracy_matrix(r.R, axes[1], f"accuracy, final {np.mean(r.R[-1]) * 100:.1f} %")
    fig.tight_layout()
    plots.show(fig, CH, "pool_explorer",
               caption="Slots and accuracy matrix of one ablation run (the book draws the default).")


plots.controls(draw_pool, {"K": list(cfg.ablation_K), "selection": list(cfg.ablation_selection)},
               {"K": cfg.K, "selection": "transrate"}, labels={"K": "pool size K", "selection": "selection"})

# %% [markdown]
# ## Memory and inference time
#
# Parameters stored on top of the frozen backbone, after each task: one adapter per task grows by an adapter and
# a head per task; ADA by a head only once its $K$ slots are full; AdapterFusion keeps every adapter and adds
# its fusion layers. Latency is measured, not computed: the fastest of several forward passes of the whole
# encoder on the same batch of utterances, with one adapter plugged in (ADA, and equally one adapter per
# task) or with all the adapters seen so far mixed by fusion layers. The fusion layers here are untrained:
# only their cost matters, not their weights.

# %%
head_size = train.n_params(heads[0])
fusion_size = train.n_params([ada.Fusion(encoder.dim) for _ in encoder.points])
params = {"one adapter per task": [(t + 1) * (ADAPTER_SIZE + head_size) for t in range(T)],
          f"ADA (K={cfg.K})": res.params,
          "AdapterFusion (all adapters)": [(t + 1) * (ADAPTER_SIZE + head_size) + fusion_size for t in range(T)],
          "one shared adapter": [ADAPTER_SIZE + (t + 1) * head_size for t in range(T)]}

tok = backbones.tokenize(backbone, [te.texts[i] for i in stream.tasks[0].test[: cfg.latency_batch]])
ids, mask = tok["input_ids"].to(cfg.device), tok["attention_mask"].to(cfg.device)
torch.manual_seed(cfg.seed)
fusions = [ada.Fusion(encoder.dim).to(cfg.device) for _ in encoder.points]
lat_tasks = np.unique(np.linspace(1, T, cfg.latency_points).round().astype(int))
lat = {"one adapter (ADA)": [], "all adapters + fusion": []}
for t in lat_tasks:  # interleaved, so that a slow moment of a shared machine hits both alike
    for name, plugged in (("one adapter (ADA)", res.pool[res.slots[-1][t - 1]]), ("all adapters + fusion", adapters[:t])):
        encoder.plug(plugged, fusions if isinstance(plugged, list) else None)
        lat[name].append(train.latency(lambda: encoder.encode(ids, mask), cfg.latency_repeats, cuda=ids.is_cuda))
encoder.plug(None)
for n, v in lat.items():
    print(f"{n:22s} ms at {lat_tasks.tolist()} tasks:", np.round(np.array(v) * 1e3, 1))


def latency_growth() -> float:
    """One interleaved round of timings: how much more AdapterFusion's latency grows from the first to the last
    task than ADA's (ratios last/first, best-of-`latency_repeats` timings). Rounds are the claim's repeats."""
    times = {}
    for t in (lat_tasks[0], lat_tasks[-1]):
        for name, plugged in (("ada", res.pool[res.slots[-1][t - 1]]), ("fusion", adapters[:t])):
            encoder.plug(plugged, fusions if isinstance(plugged, list) else None)
            times[name, t] = train.latency(lambda: encoder.encode(ids, mask), cfg.latency_repeats, cuda=ids.is_cuda)
    encoder.plug(None)
    first, last = lat_tasks[0], lat_tasks[-1]
    return times["fusion", last] / times["fusion", first] - times["ada", last] / times["ada", first]


growth = [latency_growth() for _ in range(cfg.latency_rounds)]
print(f"latency growth, fusion − ADA, over {len(growth)} rounds:", np.round(growth, 2))


def forward_flops(plugged) -> int:
    """Counted FLOPs of one forward pass of the batch with these adapters plugged in: what latency is made of,
    the same on every machine and under any load."""
    encoder.plug(plugged, fusions if isinstance(plugged, list) else None)
    with FlopCounterMode(display=False) as counter:
        encoder.encode(ids, mask)
    encoder.plug(None)
    return counter.get_total_flops()


first, last = lat_tasks[0], lat_tasks[-1]
flops = {(name, t): forward_flops(res.pool[res.slots[-1][t - 1]] if name == "ada" else adapters[:t])
         for name in ("ada", "fusion") for t in (first, last)}
print(f"FLOPs per forward pass, task {first} → task {last}: ADA {flops['ada', first]:.3g} → {flops['ada', last]:.3g}, "
      f"all adapters + fusion {flops['fusion', first]:.3g} → {flops['fusion', last]:.3g}")

fig, axes = plt.subplots(1, 2, figsize=(13, 4.3))
plots.curves({n: np.array(v) / 1e3 for n, v in params.items()}, axes[0], percent=False,
             ylabel="parameters beyond the backbone (thousands)", title="Memory")
plots.curves({n: np.array(v) * 1e3 for n, v in lat.items()}, axes[1], percent=False, x=lat_tasks,
             ylabel=f"latency, batch of {len(ids)} utterances (ms)", title="Inference time (best of repeats)")
axes[1].set_xticks(lat_tasks)
axes[1].set_ylim(0, None)
fig.tight_layout()
plots.show(fig, CH, "params_latency",
           caption="Parameters kept beyond the backbone and measured inference time as tasks accumulate: ADA flattens"
                   " once its K slots are full; AdapterFusion keeps growing.")

# %% [markdown]
# ## Inside the Transformer: what an adapter does to attention
#
# An adapter sits *after* a layer's attention, so it cannot change that layer's attention maps — only those of
# the layers above it. Below, for four test utterances of a task: how far each head's attention moves (total-
# variation distance between the attention rows before and after, averaged over tokens and utterances;
# 0 = unchanged, 1 = disjoint) when the task's ADA adapter is plugged in, and after sequential fine-tuning of
# the same layers; then, for the head the ADA adapter moved most, the map on one utterance: backbone alone,
# with the ADA adapter, after fine-tuning. Drag the slider to pick the task (first seed). Every layer up to and
# including the first adapted one keeps its attention exactly: with adapters in the last two layers (quick
# profile), only the last layer's maps can change — the adapter of layer 5 reshapes the token states layer 6
# attends over. With adapters in every layer (the `full` profile), layers 2–6 can move.

# %%
def tv_change(A: torch.Tensor, B: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean total-variation distance between attention rows, per (layer, head), over real query tokens."""
    tv = 0.5 * (A - B).abs().sum(-1)  # (layers, N, heads, L)
    return (tv * valid[None, :, None, :]).sum((1, 3)) / valid.sum()


def draw_attention(t: int) -> None:
    tk = backbones.tokenize(backbone, [te.texts[i] for i in stream.tasks[t].test[:4]])
    ids_t, m = tk["input_ids"].to(cfg.device), tk["attention_mask"].to(cfg.device)
    maps = {"backbone alone": encoder.plug(None).attentions(ids_t, m).cpu(),
            "with its ADA adapter": encoder.plug(res.pool[res.slots[-1][t]]).attentions(ids_t, m).cpu(),
            "after sequential fine-tuning": ft_encoder.plug(None).attentions(ids_t, m).cpu()}
    encoder.plug(None)
    valid = m.cpu().float()
    changes = {k: tv_change(maps["backbone alone"], v, valid) for k, v in list(maps.items())[1:]}
    layer, head = divmod(int(changes["with its ADA adapter"].argmax()), changes["with its ADA adapter"].shape[1])
    words = backbone.tokenizer.convert_ids_to_tokens(ids_t[0][m[0].bool()].tolist())
    L = len(words)
    fig = plt.figure(figsize=(17, 10), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.2])
    vmax = max(float(c.max()) for c in changes.values()) or 1.0
    for ax, (name, c) in zip(top.subplots(1, 2), changes.items()):
        im = ax.imshow(c.numpy(), cmap="magma_r", vmin=0, vmax=vmax, aspect="auto")
        ax.set(xticks=range(c.shape[1]), xticklabels=[str(h + 1) for h in range(c.shape[1])], xlabel="head",
               yticks=range(n_layers), yticklabels=[f"layer {l + 1}" for l in range(n_layers)],
               title=f"attention change {name} (max {float(c.max()):.2f})")
        ax.grid(False)
        top.colorbar(im, ax=ax, label="mean TV distance")
    axs = bottom.subplots(1, 3)
    for k, (ax, (name, A)) in enumerate(zip(axs, maps.items())):
        im = ax.imshow(A[layer, 0, head, :L, :L].numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(L), words, rotation=90, fontsize=8)
        ax.set_yticks(range(L), words if k == 0 else [], fontsize=8)  # the same tokens: named once, on the left
        ax.grid(False)
        ax.set(xlabel="attended token (key)", ylabel="token (query)" if k == 0 else "", title=name)
    bottom.colorbar(im, ax=list(axs), label="attention weight", shrink=0.9)
    bottom.suptitle(f"layer {layer + 1}, head {head + 1} (the head the ADA adapter moved most) on one utterance",
                    fontweight="bold")
    top.suptitle(f"{stream.tasks[t].name}: which heads move", fontweight="bold")
    plots.show(fig, CH, f"attention_task{t + 1}",
               caption="How far each head's attention moves when the task's adapter is plugged in, against sequential"
                       " fine-tuning, and the most-moved head's map on one utterance.")


plots.task_slider(draw_attention, T, default=0, description="task")

# %% [markdown]
# ## Claims, checked on the numbers above
#
# Each claim is a gap per seed between ADA and the learner that lacks what the claim credits; it holds when the
# one-sided 95 % Student-t bound of the mean gap clears a threshold fixed before the run:
# 1. **Constant size** (checks): once the pool is full, ADA stores $K$ adapters and grows by a head per task only,
#    while one adapter per task grows by an adapter and a head per task; a new adapter is the identity.
# 2. **Accuracy close to one adapter per task**: distilling into $K$ adapters costs little. (That it also ends far
#    above **one shared adapter** trained on every task in turn is recorded with its threshold, not asserted: that
#    learner's sequential training moves by several points between CPU kernel sets.)
# 3. **Constant inference cost** (a check on counted FLOPs, the same on any machine): with one adapter per forward
#    pass, ADA's compute does not grow with the number of tasks, while running all adapters (AdapterFusion) grows
#    with it. The wall-clock latency (interleaved timing rounds, each the best of several repeats) is recorded as a
#    report: timings depend on what else the machine is doing.
#
# Recorded, not asserted: **distillation against merging without it** — ADA against both ways of sharing a slot
# without distillation, keeping the slot's old adapter (the new task gets a head refitted on it, the fair variant)
# or taking the new one (the old tasks keep their heads): the paper's mechanism, which three seeds at quick do not
# establish (numbers below); ADA against the **frozen backbone with a linear head per task** and against
# **sequential fine-tuning** of the same layers (the paper's "adapters above a frozen backbone"); and the
# slot-selection rule.
# What the numbers say is printed after the table, from the record.

# %%
claims = Claims(cfg)
p_ada, p_per = params[f"ADA (K={cfg.K})"], params["one adapter per task"]
claims.check("a fresh adapter is the identity (max |Δ embedding| < 1e-6)", identity_gap < 1e-6, values=identity_gap)
claims.check("the pool holds exactly K adapters", train.n_params(res.pool) == cfg.K * ADAPTER_SIZE,
             values=train.n_params(res.pool))
claims.check("once the pool is full, only the heads grow", p_ada[-1] - p_ada[cfg.K - 1] == (T - cfg.K) * head_size,
             values=p_ada[-1])
claims.check("one adapter per task grows by an adapter and a head per task",
             p_per[-1] - p_per[0] == (T - 1) * (ADAPTER_SIZE + head_size), values=p_per[-1])
# Distillation against its two switched-off variants: at quick, three seeds of CLINC150 domains (whose intents the
# frozen encoder already separates) do not clear the bound, and five seeds do not fit the chapter's four minutes.
# Recorded with their threshold, so the table says how far they are.
claims.report("ADA − ADA keeping the old adapter (no distillation), final average accuracy",
              final["ADA"] - final["ADA, keep the old adapter"], above=0.0,
              paper="distillation merges two adapters better than keeping either")
claims.report("ADA − ADA taking the new adapter (no distillation), final average accuracy",
              final["ADA"] - final["ADA, take the new adapter"], above=0.0,
              paper="distillation merges two adapters better than keeping either")
claims.claim("one adapter per task − ADA, final average accuracy (ADA close to it)",
             final["one adapter per task"] - final["ADA"], below=0.03, paper="ADA within a point of one adapter per task")
# Sequential training of one shared adapter is chaotic: its per-seed gap moved by up to 5.6 points between CPU kernel
# sets and, with AVX2 kernels, the bound cleared 5 points by 0.05: recorded with its threshold, so that the verdict
# does not depend on the CPU (five seeds do not fit the chapter's four minutes).
claims.report("ADA − one shared adapter trained in sequence, final average accuracy",
              final["ADA"] - final["one shared adapter"], above=0.05,
              paper="one adapter trained on every task in turn forgets; ADA does not")
claims.check("inference compute: ADA's counted FLOPs per forward pass are the same after the last task as after the "
             "first, while all adapters + fusion grow", flops["ada", last] == flops["ada", first]
             and flops["fusion", last] > flops["fusion", first],
             values=[flops["ada", last] / flops["ada", first], flops["fusion", last] / flops["fusion", first]])
claims.report("latency growth from the first to the last task: all adapters + fusion − ADA (ratio, per timing round)",
              growth, above=0.1, paper="constant inference time, unlike AdapterFusion",
              detail="wall-clock timings depend on the machine's load: recorded, with the counted FLOPs as the check")
claims.report("ADA − frozen backbone + heads, final average accuracy", final["ADA"] - final["frozen backbone + heads"],
              paper="adapters above a frozen backbone")
claims.report("ADA − sequential fine-tuning of the adapted layers, final average accuracy (seed 0)",
              final["ADA"][:1] - final["sequential fine-tuning"], paper="ADA above sequential fine-tuning")
claims.report("ADA: TransRate − random slot selection, final average accuracy (seed 0)",
              np.mean(ablation[(cfg.K, "transrate")].R[-1]) - np.mean(ablation[(cfg.K, "random")].R[-1]),
              paper="a transferability score beats random selection")
claims.done()

# %% [markdown]
# **What the numbers say** (printed from the claims record above, so that it is true of this run):

# %%
C_ = claims
keep, take = (C_[f"ADA − ADA {w} (no distillation), final average accuracy"]
              for w in ("keeping the old adapter", "taking the new adapter"))
print(f"Distillation against keeping the old adapter (new head refitted on it): {keep.brief()}; against taking the "
      f"new adapter: {take.brief()}. " + ("Both clear zero: distillation is what lets tasks share a slot here."
                                          if keep.holds and take.holds else
                                          "Not both clear zero: that distillation is what lets tasks share a slot is "
                                          "not shown at this scale."))
print(f"One adapter per task − ADA: {C_['one adapter per task − ADA, final average accuracy (ADA close to it)'].brief()}; "
      f"ADA − one shared adapter: {C_['ADA − one shared adapter trained in sequence, final average accuracy'].brief()}.")
frozen = C_["ADA − frozen backbone + heads, final average accuracy"]
print(f"ADA − the frozen backbone with a linear head per task: {frozen.brief()} — "
      + ("adapters buy accuracy over frozen features here." if frozen.stats[2] > 0 else
         "adapters do not beat the frozen all-MiniLM-L6-v2 embeddings on these intents at quick."))
print(f"ADA − sequential fine-tuning of the adapted layers (seed 0): "
      f"{C_['ADA − sequential fine-tuning of the adapted layers, final average accuracy (seed 0)'].brief()}; "
      f"TransRate − random slot selection (seed 0): "
      f"{C_['ADA: TransRate − random slot selection, final average accuracy (seed 0)'].brief()}.")

# %% [markdown]
# ## Where adapters should beat frozen features: the settings tried
#
# The paper's premise is that a frozen encoder's features are not enough, so that a small trainable module per task
# pays. all-MiniLM-L6-v2 was trained for sentence similarity on a billion pairs: its embeddings may already separate
# the intents, leaving an adapter nothing to fix. Each point below is one task of this run: the frozen encoder's
# linear head (x) against the task's own adapter (y), both on the test set. Points on the diagonal are tasks where
# the adapter adds nothing; a setting where adapters matter would put the points above it, most of all where the
# frozen features are weakest (left).

# %%
fig, ax = plt.subplots(figsize=(6.4, 5.6))
for s, r in enumerate(runs):
    xs, ys = np.diag(r["frozen backbone + heads"]) * 100, np.diag(r["one adapter per task"]) * 100
    ax.scatter(xs, ys, s=36, alpha=0.8, label=f"seed {s}")
lo = min(min(np.diag(r[n]).min() for n in ("frozen backbone + heads", "one adapter per task")) for r in runs) * 100 - 2
ax.plot([lo, 100], [lo, 100], "k--", lw=1, label="no gain")
ax.set(xlim=(lo, 100.5), ylim=(lo, 100.5), xlabel="frozen backbone + linear head: test accuracy (%)",
       ylabel="one adapter for the task: test accuracy (%)",
       title=f"Per task: does an adapter beat the frozen features?\n({T} CLINC150 domains × {len(runs)} seeds)")
ax.legend(fontsize=8, loc="lower right")
ax.set_aspect("equal")
plots.show(fig, CH, "adapter_vs_frozen",
           caption="Each task of each seed: the frozen encoder with a linear head (x) against an adapter trained for "
                   "the task (y), test accuracy. Points above the diagonal are tasks where the adapter helps.")
gap_task = np.concatenate([np.diag(r["one adapter per task"]) - np.diag(r["frozen backbone + heads"]) for r in runs]) * 100
print(f"adapter − frozen per task: mean {gap_task.mean():+.1f} points, {np.sum(gap_task > 0)} of {len(gap_task)} tasks "
      f"above the diagonal; the weakest frozen task {min(np.diag(r['frozen backbone + heads']).min() for r in runs):.1%}")

# %% [markdown]
# The settings tried so far to make adapters matter at laptop scale (adapter − frozen head, test accuracy, each
# learner's learning rate — and the heads' epochs — chosen on held-out training examples, never the test set):
#
# | setting | frozen + heads | adapter | adapter − frozen |
# |---|---|---|---|
# | CLINC150 domains, layers 5–6, 8 shots, adapter lr 1e-2 (not tuned; this chapter before) | — | ADA | −1.6 ± 0.9 (3 seeds) |
# | CLINC150, 6 domains, layers 5–6, 8 shots, lr 1e-3 (this chapter now) | printed above | printed above | the claims record |
# | CLINC150, 5 domains, layers 5–6, 8 shots, both tuned on held-out data (chapter 07) | 93.8 | ADA 94.8 | +1.0, bound −0.04 (3 seeds) |
# | Banking77, 5 tasks × 15 intents the frozen encoder confuses most, layers 5–6, 8 shots | 89.7 | 89.1 | −0.6 |
# | the same, 24 shots | 92.8 | 92.8 | 0.0 |
# | the same, adapters in all 6 layers, 8 shots | 89.7 | 89.8 | +0.1 |
#
# The Banking77 rows come from `scripts/explore_ada_banking77.py` (one seed each: the tasks group each intent with the
# 14 whose frozen mean embeddings are closest — `card_arrival` with `lost_or_stolen_card`, `card_not_working`, …; the
# hardest task, transfers, stays near 80 % with or without an adapter). Making the intents confusable lowered both
# learners together: where the frozen features fail, a few shots are too few for an adapter to learn better ones.
# The gain, where there is one, comes from tuning, not from harder tasks — the paper's "adapters above a frozen
# backbone" stays a report here, with the numbers above; the `full` profile (every layer, 100 shots per intent) is
# the setting closest to the paper's.

# %% [markdown]
# ## Exercises
#
# 1. Distil on *more* than the current task's data — e.g. unlabelled utterances of the previous domains, or of
#    Banking77 (`data.load_banking77`). Which columns of ADA's accuracy matrix recover?
# 2. Replace the centred-logit regression by a KL divergence between softened teacher and student
#    probabilities (temperature 2). Does accuracy move? Why might centring matter for MSE but not for KL?
# 3. Compute TransRate for *all* pool adapters and the frozen backbone on each new task, and correlate the score
#    with the accuracy an adapter reaches when fine-tuned from that slot. Is TransRate a good predictor here?
# 4. Make the shared adapter forget less with a smaller learning rate; plot its final ACC against the accuracy of
#    the newest task. Where on that curve does ADA sit?
# 5. Count FLOPs instead of timing: how many multiply-adds does AdapterFusion add per token per adapter and
#    insertion point? Check your formula against the measured latency slope.
#
# Hints and worked solutions (they run): `chapters/solutions/03_ada.py`.
#
# ## References
#
# - B. Ermis, G. Zappella, M. Wistuba, A. Rawal, C. Archambeau. *Memory Efficient Continual Learning with
#   Transformers.* NeurIPS 2022 ([arXiv 2203.04640](https://arxiv.org/abs/2203.04640)). Vision companion: *Continual Learning with Transformers for
#   Image Classification*, [arXiv 2206.14085](https://arxiv.org/abs/2206.14085).
# - N. Houlsby et al. *Parameter-Efficient Transfer Learning for NLP.* ICML 2019 (adapters).
# - J. Pfeiffer et al. *AdapterFusion: Non-Destructive Task Composition for Transfer Learning.* EACL 2021.
# - J. Zhang et al. *Class-incremental Learning via Deep Model Consolidation.* WACV 2020 (double distillation).
# - L.-K. Huang, J. Huang, Y. Rong, Q. Yang, Y. Wei. *Frustratingly Easy Transferability Estimation.* ICML 2022 (TransRate).
# - C. Nguyen, T. Hassner, M. Seeger, C. Archambeau. *LEEP: A New Measure to Evaluate Transferability of Learned
#   Representations.* ICML 2020.
# - W. Wang et al. *MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of Pre-Trained
#   Transformers.* NeurIPS 2020; N. Reimers and I. Gurevych, *Sentence-BERT*, EMNLP 2019 (all-MiniLM-L6-v2, Apache-2.0).
# - Every work the book cites, each linked: the site's *Bibliography* page (from `chapters/references.bib`).

# %%
print("Data:", data.citation("clinc150"))

# %%
print(cfg.report())
