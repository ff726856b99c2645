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
# # 1. Continual learners as pre-trainers: transfer along the stream, masked modelling, GLAD
#
# **Goals.** By the end of this chapter you can
# 1. measure a continual learner not only by what it *remembers* (accuracy on old tasks) but by what it
#    *offers* to tasks it never saw: the transfer quality of its representation, by k-nearest neighbours and
#    by a linear probe, after every task of the stream;
# 2. train a Vision Transformer from scratch along a stream twice — with labels (sequential fine-tuning, one
#    head per task) and without (masked image modelling) — and compare both with joint pre-training;
# 3. look inside it: attention maps of the CLS token per head, attention rollout, and the mean attention
#    distance of every layer as the stream goes on;
# 4. fine-tune it downstream with GLAD-style attention adaptors under a soft constraint that keeps the adaptor-free
#    model near the generic pre-trained one, and compare with full fine-tuning and a linear probe;
# 5. judge masked modelling as MAE and SimMIM are judged: by fine-tuning, against fine-tuning from scratch.
#
# The paper is Yoon, Hwang & Cao, *Continual Learners are Incremental Model Generalizers* (ICML 2023).

# %% [markdown]
# ## The idea
#
# Chapter 0 judged a learner on the tasks of its own stream. Yoon et al. ask a different question: after
# learning tasks $\mathcal{T}_1,\dots,\mathcal{T}_t$ upstream, how good a **pre-trained model** is the learner
# for *unseen* downstream tasks? Let $f_t$ be the backbone after task $t$ and $\mathcal{D}$ a downstream task
# with train and test sets. With the backbone frozen, the transfer quality is the test accuracy of
#
# * **k-NN**: the majority label (weighted by cosine similarity) of the $k$ training features nearest to
#   $f_t(x)$ — no training at all, it reads the geometry of the features directly;
# * **linear probe**: a logistic regression $\mathrm{softmax}(W f_t(x) + b)$ fitted on the training features.
#
# **The paper's finding.** In supervised *and* unsupervised continual learning, transfer quality to unseen
# tasks often *rises* along the stream, without a noticeable loss in fine-tuning performance: the learner
# forgets task-specific knowledge (the accuracy matrix of chapter 0) while accumulating task-general
# features. Continual learners are *incremental model generalizers*.
#
# **Unsupervised CL with masked image modelling** (the paper's first proposal). An image is cut into
# $N$ patches $x_1,\dots,x_N$; a random set $M$ of them is replaced by a learned mask token; the encoder sees
# the corrupted sequence, and a linear head $h$ regresses each masked patch's pixels from its output token:
#
# $$\mathcal{L}_{\text{MIM}}(x) = \frac{1}{|M|}\sum_{i \in M} \frac{1}{P}\,\big\lVert h(z_i) - x_i\big\rVert_1,
#   \qquad z = f(\tilde{x}),\quad \tilde{x}_i = \begin{cases}[\text{MASK}] & i\in M\\ x_i & \text{else.}\end{cases}$$
#
# No label is needed, so the objective is the same on every task: only the *data* change along the stream.
# The paper does not say which masked-modelling variant it uses; the book takes SimMIM's (Xie et al., 2022:
# mask token in the encoder, one linear pixel head, L1 on masked patches), the cheapest on a CPU, with MAE's
# normalised-pixel target (He et al., 2022): each target patch $x_i$ minus its mean, over its standard deviation, so
# that the loss rewards a patch's structure rather than its mean colour (`norm_pix`).
#
# **GLAD** (the paper's second proposal). In a ViT head, attention is
# $A = \mathrm{softmax}\!\big(QK^\top/\sqrt{d}\big)$ and the output is $AV$. The paper's concept figure
# puts one adaptor on the logits $QK^\top$ and one on $AV$; the path *with* the adaptors serves the
# downstream task, the path *without* them remains the task-general model. The paper's exact adaptor
# and its "discretization" are not public. **The book's interpretation** (per layer $\ell$, head $h$):
#
# $$A^{\ell h} = \mathrm{softmax}\!\Big(\big(\gamma_{\ell h}\, Q K^\top + \mathbf{1}\beta_{\ell h}^\top\big)/\sqrt{d}\Big),
#   \qquad \mathrm{out}^{\ell h} = a_{\ell h} \odot (A^{\ell h} V) + b_{\ell h},$$
#
# with a temperature $\gamma_{\ell h}$ (when it grows above 1 the softmax approaches a one-hot, *discrete*
# choice of tokens), a bias $\beta_{\ell h} \in \mathbb{R}^{1+N}$ per key token (a *global*, input-independent
# prior on where the head looks), and a per-channel scale $a$ and shift $b$. At $\gamma=1, \beta=0, a=1, b=0$
# the block is the backbone exactly. The paper's "constraint that keeps the backbone transferable" can be hard or
# soft. **Hard:** the backbone is frozen and only the adaptors and a head train, so the adaptor-free path is the
# pre-trained model bit for bit — but a frozen backbone cannot learn a feature it lacks. **Soft** (the book's main
# variant): the backbone trains too, at a small learning rate, pulled towards its pre-trained weights $\theta_0$,
#
# $$\mathcal{L} = \mathcal{L}_{\text{task}} + \lambda\,\lVert\theta - \theta_0\rVert^2,$$
#
# so the adaptors carry the task-specific change and the adaptor-free path stays near the pre-trained model.

# %%
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from cl_lib import backbones, config, cost, data, experiment, metrics, plots, probes, shift, streams, train, vit
from cl_lib.claims import Claims
from cl_lib.methods import glad, mim

cfg = config.chapter_config("01_pretrainers")
cost.announce(cfg)  # the estimated cost, where the profile asks for it (`full`)
plots.set_style()
CH = cfg.chapter
vcfg = vit.ViTConfig(img_size=cfg.image_size, patch=cfg.patch, dim=cfg.dim, depth=cfg.depth, heads=cfg.heads,
                     mlp_ratio=cfg.mlp_ratio)

# %% [markdown]
# ## Upstream and downstream
#
# Tiny ImageNet-200's classes are split by a seeded permutation into two halves that never meet. The
# **upstream** streams are cut from the first half — each seed draws its own class order (and its own initial
# weights); the **downstream** tasks come from the second half, plus CIFAR-10 (a different data set: other
# photographs, other classes, native 32 px), and are the same for every seed, so seeds are compared on the same
# tests. The images are resized to the ViT's input size once and normalised to $[-1, 1]$.
#
# The downstream tasks are many on purpose: **every** class of the held-out half (ten tasks of ten classes, all 50
# validation images per class) and CIFAR-10 (400 test images per class): 9,000 test images, so that the
# *transfer score* — the accuracy over all of them — has a binomial standard error under half a point, smaller than
# the rise the paper describes.

# %%
tr, te = data.load_tiny_imagenet("train"), data.load_tiny_imagenet("val")
cif_tr, cif_te = data.load_cifar10("train"), data.load_cifar10("test")
halves = np.random.default_rng(cfg.seed).permutation(len(tr.classes))
up_pool, down_pool = halves[: len(halves) // 2], halves[len(halves) // 2:]
SEEDS = list(range(cfg.seeds))


def up_stream(s: int) -> streams.Stream:
    return streams.split_stream(tr.labels, te.labels, n_tasks=cfg.n_tasks, classes_per_task=cfg.classes_per_task,
                                classes=up_pool, seed=cfg.seed + s, train_per_class=cfg.train_per_class,
                                test_per_class=cfg.test_per_class, name="upstream", scenario="task")


down = streams.split_stream(tr.labels, te.labels, n_tasks=cfg.down_tasks, classes_per_task=cfg.down_classes,
                            classes=down_pool, seed=cfg.seed + 1, train_per_class=cfg.down_train_per_class,
                            test_per_class=cfg.down_test_per_class, name="downstream", scenario="task")
cifar = streams.stream_from_groups(cif_tr.labels, cif_te.labels, [list(range(10))], seed=cfg.seed,
                                   train_per_class=cfg.cifar_train_per_class,
                                   test_per_class=cfg.cifar_test_per_class, task_names=["CIFAR-10"])
FT_TASK = "CIFAR-10"  # the downstream task fine-tuned on (full FT, GLAD, fine-tuning along the stream)


def prep(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float (N, 3, S, S) in [-1, 1] at the ViT's size."""
    return torch.cat([backbones.preprocess(images[i:i + 1024], cfg.image_size, (0.5,) * 3, (0.5,) * 3)
                      for i in range(0, len(images), 1024)])


def task_tensors(stream: streams.Stream, t: int, ds_tr: data.ImageSet, ds_te: data.ImageSet) -> dict[str, torch.Tensor]:
    """A task's images at the ViT's size, with labels 0..C-1 within the task (a head per task)."""
    (xtr, ytr), (xte, yte) = (stream.task_data(t, ds, split, local=True) for ds, split in ((ds_tr, "train"), (ds_te, "test")))
    return {"xtr": prep(xtr), "ytr": ytr, "xte": prep(xte), "yte": yte}


t0 = time.perf_counter()
up_data = {s: [task_tensors(up_stream(s), t, tr, te) for t in range(cfg.n_tasks)] for s in SEEDS}
down_data = {f"TinyIN D{t + 1}": task_tensors(down, t, tr, te) for t in range(len(down))}
down_data["CIFAR-10"] = task_tensors(cifar, 0, cif_tr, cif_te)
print(f"prepared in {time.perf_counter() - t0:.1f} s")
up = up_stream(SEEDS[0])
for k, t in enumerate(up.tasks):
    print(f"upstream U{k + 1} (seed 0): {len(t.train)} train / {len(t.test)} test — "
          + ", ".join(tr.class_names[c] for c in t.classes[:5]) + ", …")
for name, d in list(down_data.items())[:2] + list(down_data.items())[-1:]:
    print(f"downstream {name}: {len(d['xtr'])} train / {len(d['xte'])} test images, {int(d['ytr'].max()) + 1} classes")
n_test = {name: len(d["yte"]) for name, d in down_data.items()}
print(f"{len(down_data)} downstream tasks, {sum(n_test.values())} test images: a transfer score near 30 % has a "
      f"standard error of {100 * (0.3 * 0.7 / sum(n_test.values())) ** 0.5:.2f} points")

# %%
show_idx = [0, 1 * cfg.down_test_per_class, 2 * cfg.down_test_per_class, 3 * cfg.down_test_per_class][: cfg.n_show]
show_x = down_data["TinyIN D1"]["xte"][show_idx]
to_img = lambda x: ((x.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()  # noqa: E731
wrap = lambda name: "\n".join(textwrap.wrap(name, 14))  # noqa: E731
fig, axes = plt.subplots(2, 6, figsize=(12, 4.8))
for k in range(6):
    i = k * len(up.tasks[0].train) // 6
    axes[0, k].imshow(to_img(up_data[0][0]["xtr"][i]))
    axes[0, k].set_title(wrap(tr.class_names[int(tr.labels[up.tasks[0].train[i]])]), fontsize=8)
    j = k * len(down.tasks[0].test) // 6
    axes[1, k].imshow(to_img(down_data["TinyIN D1"]["xte"][j]))
    axes[1, k].set_title(wrap(tr.class_names[int(te.labels[down.tasks[0].test[j]])]), fontsize=8)
for ax in axes.flat:
    ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
axes[0, 0].set_ylabel("upstream U1"), axes[1, 0].set_ylabel("downstream D1")
fig.suptitle(f"What the ViT sees: {cfg.image_size}×{cfg.image_size} px, {vcfg.grid}×{vcfg.grid} patches of {cfg.patch} px")
fig.tight_layout()
plots.show(fig, CH, "examples",
           caption="What the ViT sees: each image cut into a grid of patches, the tokens the transformer attends "
                   "over.")

# %% [markdown]
# ## The model: the book's own ViT
#
# No ImageNet ViT is available offline, so this chapter trains one from scratch: `cl_lib.vit`, a plain
# pre-norm ViT (patch embedding, a CLS token, learned positions, blocks, final LayerNorm). Its representation
# is the CLS token and the mean patch token, concatenated: a masked-modelling learner never trains its CLS
# token directly, and the mean patch token is what such models are usually probed with. The attention keeps
# its probabilities for the pictures, and carries the two (empty) adaptor slots GLAD fills later.

# %%
plots.show_code(vit.Attention.forward, vit.VisionTransformer.tokens, vit.VisionTransformer.forward)

# %% [markdown]
# The masked-modelling learner: a random mask per image (exactly the requested fraction of
# `mask_block`×`mask_block` patch cells), the mask token, a linear pixel head, and the L1 loss on masked
# patches only.

# %%
plots.show_code(mim.random_mask, mim.normalise_patches, mim.masked_l1, mim.SimMIM)

# %% [markdown]
# ## The experiment, per seed
#
# Each seed runs everything below on its own upstream stream, from its own random initialisation; the seeds run
# side by side, one process per CPU core (`cl_lib.parallel`), and each seed's results are cached.
#
# **Three upstream learners**, all from the same random initialisation and the same images in the same order:
#
# * **supervised CL** — sequential fine-tuning, one new linear head per task, nothing to protect the past;
# * **masked-modelling CL** — the same images without labels, the MIM loss above;
# * **joint** — the non-continual reference: the union of all upstream tasks at once, shuffled, for as many
#   epochs as each CL learner spent per task (so the same number of gradient steps), with labels (one head over
#   all upstream classes) and without (MIM).
#
# AdamW, a fresh optimiser per task; light augmentation (random horizontal flip and a ±`patch`/2-pixel shift).
# After each task we keep the backbone's weights; supervised CL is also tested on every task seen so far with
# that task's head (task-incremental), to see its forgetting.
#
# **Transfer after every task**, measured on the frozen backbone's features of each downstream task (train
# features fit the probe, test features score it): **k-NN** (cosine, similarity-weighted votes: it reads the
# geometry of the features, no training) and a **linear probe** (multinomial logistic regression by L-BFGS on
# standardised features). The random initialisation is probed too: the CL learners' task 0. The **transfer score**
# of a backbone is the accuracy over all downstream test images; the **trend** along the stream is the
# least-squares slope of that score over tasks 1..T, times T − 1: the rise a straight line through *every* point
# gives from the first task to the last, less at the mercy of one noisy end point than last − first.
#
# **Fine-tuning along the stream.** The paper's second half of the claim: transfer rises *without a noticeable loss
# in fine-tuning performance*. So we also fine-tune on CIFAR-10 (every weight, a new head) from the backbone after the
# first and after the last upstream task.
#
# **GLAD on the supervised CL model.** From the final supervised CL backbone, on CIFAR-10: full fine-tuning; **GLAD**
# with the soft constraint (adaptors, head and backbone train; the backbone at the same learning rate as full
# fine-tuning, pulled towards $\theta_0$); the same **with its adaptors switched off** (adaptors frozen at the
# identity: the pull alone, which isolates what the adaptors add); and GLAD with the **hard** constraint (frozen
# backbone), whose adaptor-free path must be the pre-trained model exactly.
#
# **Masked modelling judged by fine-tuning.** A masked-modelling encoder is not built to be read by a probe: MAE and
# SimMIM are judged by fine-tuning it. So the final masked-modelling backbone is fine-tuned on CIFAR-10 exactly as the
# supervised one is, beside the same fine-tuning from the random initialisation.

# %%
plots.show_code(probes.knn_accuracy, probes.linear_probe_accuracy, glad.add_glad, glad.pull, glad.adaptor_free)


# %%
def augment(x: torch.Tensor) -> torch.Tensor:
    """Random horizontal flip and a random shift of up to half a patch (reflect-padded crop), per image."""
    return train.flip_and_shift(x, max(1, cfg.patch // 2))


def new_vit(s: int) -> vit.VisionTransformer:
    torch.manual_seed(cfg.seed + s)
    return vit.VisionTransformer(vcfg)


def load(state: dict) -> vit.VisionTransformer:
    m = vit.VisionTransformer(vcfg)
    m.load_state_dict(state)
    return m


def adamw(params) -> torch.optim.Optimizer:
    return train.make_optimizer(params, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)


def embed(model: vit.VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """Representations of x under the frozen model, on cfg.device."""
    return probes.embed(model.to(cfg.device), x, device=cfg.device)


def transfer(state: dict, tasks: list[str] | None = None) -> dict[str, dict[str, float]]:
    """k-NN and linear-probe accuracy of a backbone state on every downstream task (or on `tasks`)."""
    model, out = load(state), {}
    for name, d in down_data.items():
        if tasks is not None and name not in tasks:
            continue
        ftr, fte = embed(model, d["xtr"]), embed(model, d["xte"])
        out[name] = {"k-NN": probes.knn_accuracy(ftr, d["ytr"], fte, d["yte"], cfg.knn_k),
                     "linear": probes.linear_probe_accuracy(ftr, d["ytr"], fte, d["yte"], steps=100,
                                                            weight_decay=1e-3)}
    return out


def run_upstream(learner: str, s: int) -> dict:
    """One learner along seed s's upstream stream; the backbone after every task (and R for supervised)."""
    train.seed_everything(cfg.seed + s)
    model, data_s, T = new_vit(s).to(cfg.device), up_data[s], cfg.n_tasks
    heads = nn.ModuleList(nn.Linear(model.num_features, cfg.classes_per_task) for _ in range(T)).to(cfg.device)
    sim = mim.SimMIM(model, norm_pix=cfg.norm_pix).to(cfg.device)
    R, states, losses = np.full((T, T), np.nan), [], []
    for t in range(T):
        d = data_s[t]
        if learner == "supervised":
            net = nn.Sequential(model, heads[t])
            losses.append(train.fit(net, d["xtr"], d["ytr"], epochs=cfg.epochs, optimizer=adamw(net.parameters()),
                                    batch_size=cfg.batch_size, transform=augment, seed=cfg.seed + s + t, device=cfg.device))
            R[t, : t + 1] = [train.accuracy(nn.Sequential(model, heads[j]), data_s[j]["xte"], data_s[j]["yte"],
                                            device=cfg.device) for j in range(t + 1)]
        else:
            losses.append(mim.fit_mim(sim, d["xtr"], epochs=cfg.epochs, optimizer=adamw(sim.parameters()),
                                      ratio=cfg.mask_ratio, block=cfg.mask_block, batch_size=cfg.batch_size,
                                      seed=cfg.seed + s + t, transform=augment, device=cfg.device))
        states.append({k: v.cpu().clone() for k, v in model.state_dict().items()})
    return {"states": states, "R": R, "losses": losses, "mim_head": sim.head.state_dict()}


def run_joint(learner: str, s: int) -> dict:
    """The same budget of gradient steps on the union of the upstream tasks, shuffled (non-continual)."""
    train.seed_everything(cfg.seed + s)
    model = new_vit(s).to(cfg.device)
    x = torch.cat([d["xtr"] for d in up_data[s]])
    y = torch.cat([d["ytr"] + t * cfg.classes_per_task for t, d in enumerate(up_data[s])])
    if learner == "supervised":
        net = nn.Sequential(model, nn.Linear(model.num_features, cfg.n_tasks * cfg.classes_per_task)).to(cfg.device)
        train.fit(net, x, y, epochs=cfg.epochs, optimizer=adamw(net.parameters()), batch_size=cfg.batch_size,
                  transform=augment, seed=cfg.seed + s, device=cfg.device)
    else:
        sim = mim.SimMIM(model, norm_pix=cfg.norm_pix).to(cfg.device)
        mim.fit_mim(sim, x, epochs=cfg.epochs, optimizer=adamw(sim.parameters()), ratio=cfg.mask_ratio,
                    block=cfg.mask_block, batch_size=cfg.batch_size, seed=cfg.seed + s, transform=augment,
                    device=cfg.device)
    return {k: v.cpu().clone() for k, v in model.state_dict().items()}


def finetune(state: dict, kind: str, s: int) -> dict:
    """Fine-tune a backbone on FT_TASK, its head started from the linear probe (LP-FT): 'full' (every weight), 'glad' (adaptors + backbone under the
    soft constraint), 'glad off' (the same with the adaptors frozen at the identity: the pull alone) or 'glad frozen'
    (adaptors only, the hard constraint). Returns the test accuracy and the backbone's weights."""
    train.seed_everything(cfg.seed + s)
    model, d = load(state), down_data[FT_TASK]
    head = probes.probe_head(embed(model, d["xtr"]).cpu(), d["ytr"], steps=100, weight_decay=1e-3)  # LP-FT
    penalty = None
    if kind == "full":
        params = [{"params": model.parameters(), "lr": cfg.lr_ft}]
    else:
        adaptors = glad.add_glad(model, freeze=kind == "glad frozen")
        params = [{"params": adaptors, "lr": cfg.lr_glad}]
        if kind == "glad off":
            for p in adaptors:
                p.requires_grad_(False)
        if kind != "glad frozen":
            params.append({"params": [p for n, p in model.named_parameters() if "adaptor" not in n], "lr": cfg.lr_soft})
            penalty = lambda: cfg.pull * glad.pull(model, state)  # noqa: E731  the soft constraint
    model.to(cfg.device), head.to(cfg.device)
    net = nn.Sequential(model, head)
    train.fit(net, d["xtr"], d["ytr"], epochs=cfg.ft_epochs, batch_size=cfg.batch_size, transform=augment,
              optimizer=torch.optim.AdamW(params + [{"params": head.parameters(), "lr": cfg.lr_head}], weight_decay=0.0),
              seed=cfg.seed + s, device=cfg.device, penalty=penalty)
    return {"acc": train.accuracy(net, d["xte"], d["yte"], device=cfg.device),
            "state": {k: v.cpu().clone() for k, v in model.state_dict().items()}}


def free_state(state: dict) -> dict:
    """A GLAD model's adaptor-free backbone (the task-general path)."""
    return {k: v for k, v in state.items() if "adaptor" not in k}


OTHERS = [n for n in down_data if n != FT_TASK]  # what a fine-tuned backbone still offers the other tasks


def run_job(s: int, learner: str) -> dict:
    """One job of seed s. 'supervised' / 'masked modelling': the upstream stream, transfer after every task, then
    fine-tuning on FT_TASK (supervised: from the first and last backbone, and GLAD's variants; masked modelling: from
    its last backbone and from the random initialisation). 'joint': the joint twins. The first seed keeps its weights
    for the figures; the others keep their numbers."""
    if learner == "joint":  # and the transfer of the random initialisation both CL learners start from
        return {"transfer_joint": {n: transfer(run_joint(n, s)) for n in cfg.joint},
                "transfer_init": transfer(new_vit(s).state_dict())}
    up = run_upstream(learner, s)
    out = {"up": up, "transfer": [transfer(st) for st in up["states"]]}
    if learner == "supervised":  # the paper's "no loss in fine-tuning performance" is about supervised CL
        ft = {k: finetune(up["states"][-1], k, s) for k in ("full", "glad", "glad off", "glad frozen")}
        out["ft_along"] = {0: finetune(up["states"][0], "full", s)["acc"], cfg.n_tasks - 1: ft["full"]["acc"]}
        out["glad"] = {k: v["acc"] for k, v in ft.items()}
        out["transfer_after_ft"] = {"full": transfer(ft["full"]["state"], OTHERS),
                                    "glad": transfer(free_state(ft["glad"]["state"]), OTHERS)}
        out["moved"] = {k: glad.pull(load(free_state(ft[k]["state"])), up["states"][-1]).item() ** 0.5
                        for k in ("full", "glad", "glad off")}  # ‖θ − θ₀‖ after each
        if s == SEEDS[0]:
            out["ft_states"] = {k: v["state"] for k, v in ft.items()}
    else:  # masked modelling, judged by fine-tuning
        out["mim_ft"] = {"masked modelling": finetune(up["states"][-1], "full", s)["acc"],
                         "random init": finetune(new_vit(s).state_dict(), "full", s)["acc"]}
    if s != SEEDS[0]:
        up["states"] = up["states"][-1:]
    return out


def merge(parts: dict[str, dict]) -> dict:
    """One seed's jobs as one record: per-learner entries under their learner's name."""
    run = {k: {n: p[k] for n, p in parts.items() if k in p} for k in ("up", "transfer", "ft_along")}
    for p in parts.values():
        run.update({k: v for k, v in p.items() if k not in run})
    for n in run["transfer"]:  # every transfer curve starts at the random initialisation
        run["transfer"][n] = [run["transfer_init"]] + run["transfer"][n]
    return run


LEARNERS = ("masked modelling", "supervised", "joint")
JOBS = [(s, n) for s in SEEDS for n in LEARNERS]  # the heavier jobs first: balanced cores
done = experiment.over_seeds(lambda job: run_job(*job), JOBS, cfg=cfg, name="ch01_job",  # cached: see chapter 00
                             data=[tr.digest(), cif_tr.digest()])
runs = [merge({n: done[s, n] for n in LEARNERS}) for s in SEEDS]
run0 = runs[0]
tasks_down = list(down_data)


def mean_tr(res: dict, probe: str, tasks: list[str] = tasks_down) -> float:
    """The transfer score: accuracy over all test images of `tasks` (each task weighted by its test images)."""
    return float(sum(res[n][probe] * n_test[n] for n in tasks) / sum(n_test[n] for n in tasks))


curve = {(n, p): np.array([[mean_tr(r, p) for r in run["transfer"][n]] for run in runs])
         for n in ("supervised", "masked modelling") for p in ("k-NN", "linear")}  # (seeds, 1 + tasks)
joint_tr = {(n, p): np.array([mean_tr(run["transfer_joint"][n], p) for run in runs]) for n in cfg.joint
            for p in ("k-NN", "linear")}


def trend(c: np.ndarray) -> np.ndarray:
    """Per seed, the least-squares slope of the transfer score over tasks 1..T, times T − 1: the rise from the first
    task to the last along a straight line through every point (c: seeds × (1 + T), column 0 the initialisation)."""
    ts = np.arange(1, c.shape[1])
    return np.array([np.polyfit(ts, row[1:], 1)[0] * (len(ts) - 1) for row in c])


for (n, p), c in curve.items():
    print(f"{n:17s} {p:6s} transfer score (%), 0..{cfg.n_tasks} tasks seen (mean over seeds):",
          np.round(c.mean(0) * 100, 1), f"trend {np.round(trend(c) * 100, 2)} points per seed")
for (n, p), c in joint_tr.items():
    print(f"joint {n:11s} {p:6s} {c.mean() * 100:.1f} ± {c.std() * 100:.1f}")

# %% [markdown]
# ## Transfer after every task
#
# Left and middle: the transfer score (accuracy over all 9,000 downstream test images) of each probe against the
# number of upstream tasks seen, mean ± std over the seeds; 0 is the random initialisation both CL learners start from,
# dashed lines are the joint learners. Right: what the supervised learner *forgets* upstream at the same time —
# the task-IL accuracy matrix of the first seed.

# %%
xs = np.arange(0, cfg.n_tasks + 1)
colors = {"supervised": "C0", "masked modelling": "C1"}
fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [1, 1, 0.9]}, layout="constrained")
top = 10 * np.ceil(max(max(c.max() for c in curve.values()), max(c.max() for c in joint_tr.values())) * 12)
for ax, probe in zip(axes[:2], ("k-NN", "linear")):
    for name in ("supervised", "masked modelling"):
        c = curve[(name, probe)] * 100
        ax.errorbar(xs, c.mean(0), yerr=c.std(0), marker="o", capsize=3, color=colors[name], label=f"{name} CL")
        fit = np.polyfit(xs[1:], c.mean(0)[1:], 1)  # the trend the claims test, through tasks 1..T
        ax.plot(xs[1:], np.polyval(fit, xs[1:]), color=colors[name], lw=1, ls="-.", alpha=0.7)
    for name in cfg.joint:
        ax.axhline(joint_tr[(name, probe)].mean() * 100, color=colors[name], ls="--", label=f"joint {name}")
    ax.set(xlabel="upstream tasks seen (0 = random initialisation)", ylabel="transfer score (% of test images)",
           xticks=xs, ylim=(0, top), title=f"Transfer by {probe} to unseen tasks ({len(SEEDS)} seeds)")
    ax.axhline(100 / cfg.down_classes, color="0.5", ls=":", lw=1, label="chance")  # the axis starts at 0: honest gaps
    ax.legend(fontsize=8, loc="lower right")
plots.accuracy_matrix(run0["up"]["supervised"]["R"], axes[2], "Supervised CL upstream\n(task-IL, seed 0)",
                      names=[f"U{t + 1}" for t in range(cfg.n_tasks)])
plots.show(fig, CH, "transfer_vs_tasks",
           caption="Transfer score of each probe as upstream tasks accumulate (0 = random initialisation, dashed = "
                   "joint learners, dash-dotted = the least-squares trend over tasks 1..T); right, what the "
                   "supervised learner forgets upstream meanwhile.")

# %% [markdown]
# Per data set (mean over seeds), since a score over both can hide one that goes the other way: the ten Tiny
# ImageNet tasks together, and CIFAR-10 — other photographs, other classes.

# %%
groups = {f"Tiny ImageNet, {cfg.down_tasks} unseen tasks": [n for n in tasks_down if n != "CIFAR-10"],
          "CIFAR-10": ["CIFAR-10"]}
fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 3.8), sharey=True)
for ax, (title, members) in zip(np.atleast_1d(axes), groups.items()):
    for name in ("supervised", "masked modelling"):
        for probe, ls in (("k-NN", "-"), ("linear", ":")):
            vals = np.array([[mean_tr(r, probe, members) for r in run["transfer"][name]] for run in runs]) * 100
            ax.plot(xs, vals.mean(0), ls=ls, marker="o", color=colors[name], label=f"{name}, {probe}")
    ax.set(xlabel="upstream tasks seen", title=title, xticks=xs)
np.atleast_1d(axes)[0].set_ylabel("downstream accuracy (%)")
np.atleast_1d(axes)[0].legend(fontsize=8)
fig.tight_layout()
plots.show(fig, CH, "transfer_per_task",
           caption="Transfer per data set: check whether either moves against the trend of the score.")

# %% [markdown]
# **Reading the curves** (what to look for; whether each holds in this run, with its numbers, is the claims
# cell's job at the end of the chapter):
#
# * *Supervised CL* forgets upstream — the first columns of its task-IL matrix fade row after row. The paper finds
#   its transfer to unseen tasks rising at the same time: follow the dash-dotted trend line through tasks 1..T, not
#   only the two end points.
# * The *linear probe* reads something k-NN does not: a random ViT's features, standardised and probed by
#   L-BFGS, are already a baseline well above chance — compare the random-initialisation point.
# * *Masked-modelling CL* from scratch on a few thousand 32-px images has only started on its pretext task (see
#   the reconstructions below), and probes read little from it; masked models are judged by fine-tuning, which the
#   GLAD section does.
# * *Joint* supervised training, with the same number of gradient steps, against its continual counterpart.

# %% [markdown]
# What the masked-modelling learner does with its pretext task, after the last upstream task (seed 0): masked
# input, its reconstruction, and the original, on downstream images it never saw.

# %%
mim_final = load(run0["up"]["masked modelling"]["states"][-1])
sim_final = mim.SimMIM(mim_final, norm_pix=cfg.norm_pix)
sim_final.head.load_state_dict(run0["up"]["masked modelling"]["mim_head"])
mask = mim.random_mask(len(show_x), vcfg.grid, cfg.mask_ratio, block=cfg.mask_block,
                       generator=torch.Generator().manual_seed(cfg.seed))
recon = mim.reconstruct(sim_final, show_x, mask)
patch_mask = mask.view(-1, vcfg.grid, vcfg.grid).repeat_interleave(cfg.patch, 1).repeat_interleave(cfg.patch, 2)
fig, axes = plt.subplots(3, len(show_x), figsize=(2.2 * len(show_x), 6.6))
for k in range(len(show_x)):
    for r, (img, lab) in enumerate([(torch.where(patch_mask[k], torch.tensor(0.0), show_x[k]), "masked input"),
                                    (recon[k], "reconstruction"), (show_x[k], "original")]):
        axes[r, k].imshow(to_img(img)), axes[r, k].set_xticks([]), axes[r, k].set_yticks([])
        axes[r, k].grid(False)
        if k == 0:
            axes[r, k].set_ylabel(lab)
fig.suptitle(f"Masked modelling after U{cfg.n_tasks}: {int(cfg.mask_ratio * 100)} % of the patches masked")
plots.show(fig, CH, "mim_reconstruction",
           caption="Masked input, reconstruction, original: how much of an unseen image the masked-modelling learner "
                   "can fill in.")

# %% [markdown]
# The learner predicts *normalised* patches, so each masked patch is drawn with the original patch's mean and
# standard deviation (as MAE's figures are): its colour is given away, and what the model contributes is the
# structure inside the patch. At `quick` scale that structure is nearly flat — the learner has only started on its
# pretext task, consistent with what the probes read from it above.

# %% [markdown]
# ## Inside the ViT: how much each layer moves along the stream
#
# The representational shift of chapter 0, for the ViT (first seed): $1-\mathrm{CKA}$ between each block's output
# (mean token) on downstream test images after upstream task $t$ and after task $t-1$ (the random initialisation
# for $t = 1$). Where does learning the stream change the network, and does it settle?

# %%
probe_x = torch.cat([d["xte"][:32] for d in down_data.values()])


def block_outputs(state: dict) -> dict[str, torch.Tensor]:
    m = load(state)
    return shift.capture(m, {f"block {i + 1}": blk for i, blk in enumerate(m.blocks)}, probe_x, device=cfg.device)


init_out = block_outputs(new_vit(SEEDS[0]).state_dict())
step_shift = {}
for name in ("supervised", "masked modelling"):
    outs = [init_out] + [block_outputs(st) for st in run0["up"][name]["states"]]
    step_shift[name] = np.stack([1 - shift.layer_cka(outs[t], outs[t + 1]) for t in range(cfg.n_tasks)], 1)
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
vmax = max(v.max() for v in step_shift.values())
for ax, (name, v) in zip(axes, step_shift.items()):
    plots.layer_shift(v, ax, layers=list(init_out), title=f"{name} CL: shift per task",
                      label="1 − CKA with the model one task earlier")
    ax.collections[0].set_clim(0, vmax)
fig.tight_layout()
plots.show(fig, CH, "cka_along_stream",
           caption="1 − CKA of each ViT block between consecutive upstream tasks: look for the layers that keep "
                   "moving and whether the shift settles along the stream.")
for name, v in step_shift.items():
    print(f"{name}: 1 − CKA per task, mean over blocks: {np.round(v.mean(0), 3)}")

# %% [markdown]
# ## Inside the ViT: attention along the stream
#
# For each image, the CLS token's attention over the patches in the chosen layer (mean over heads), drawn over
# the image, and the **attention rollout** (Abnar & Zuidema, 2020): multiply the layers' head-averaged attention
# matrices, each with the identity added for the residual path, to estimate how much each input patch contributes
# to the CLS output. Pick the upstream task and the layer (the book shows the last of each); colour bars give the
# attention weight (1/64 would be uniform).

# %%
plots.show_code(vit.attention_maps, vit.attention_rollout, vit.mean_attention_distance)

# %%
g = vcfg.grid
attn_along = {name: [vit.attention_maps(load(st), show_x) for st in run0["up"][name]["states"]]
              for name in ("supervised", "masked modelling")}


def overlay(ax: plt.Axes, image: torch.Tensor, amap: torch.Tensor, vmax: float):
    """An attention map (g × g) upsampled over the image, with its own colour scale."""
    ax.imshow(to_img(image))
    im = ax.imshow(amap.numpy(), cmap="inferno", alpha=0.6, vmin=0, vmax=vmax, extent=(-0.5, cfg.image_size - 0.5,
                                                                                       cfg.image_size - 0.5, -0.5),
                   interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
    return im


def draw_attention(task: int, layer: int) -> None:
    """CLS attention of one layer (head-averaged) and the rollout, both CL learners, after upstream task `task`:
    the images on top, then one row per learner and map, each row with its own colour scale (bar on its right)."""
    fig, axes = plt.subplots(5, len(show_x), figsize=(2.3 * len(show_x) + 1.8, 2.2 * 5), layout="constrained")
    for k in range(len(show_x)):
        axes[0, k].imshow(to_img(show_x[k]), interpolation="nearest")
        axes[0, k].set_title(f"image {k + 1}", fontsize=10)
    axes[0, 0].set_ylabel("input", fontsize=10)
    r = 1
    for name in attn_along:
        attns = attn_along[name][task - 1]
        roll = vit.attention_rollout(attns)[:, 0, 1:].reshape(-1, g, g)
        for what, maps in ((f"layer {layer}", attns[layer - 1].mean(1)[:, 0, 1:].reshape(-1, g, g)),
                           ("rollout", roll / roll.sum((1, 2), keepdim=True))):
            for k in range(len(show_x)):
                im = axes[r, k].imshow(maps[k].numpy(), cmap="inferno", vmin=0, vmax=float(maps.max()),
                                       interpolation="nearest")
            axes[r, 0].set_ylabel(f"{'supervised' if name == 'supervised' else 'MIM'}:\n{what}", fontsize=10)
            fig.colorbar(im, ax=axes[r, :], shrink=0.9, pad=0.01, label="share of CLS attention")
            r += 1
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
    fig.suptitle(f"Where the CLS token looks after upstream task U{task} (seed 0; {g}×{g} patches)")
    plots.show(fig, CH, f"attention_after_U{task}_layer{layer}",
               caption="The CLS token's attention in the chosen layer and the attention rollout, over four images: "
                       "does attention land on the object?")


plots.controls(draw_attention, {"task": (1, cfg.n_tasks), "layer": (1, vcfg.depth)},
               {"task": cfg.n_tasks, "layer": vcfg.depth}, labels={"task": "after task", "layer": "layer"})

# %% [markdown]
# The heads of the last layer separately, along the stream, for the first image: do heads specialise, and
# do they keep what they looked at? Left: each head's map after each task (one colour scale). Right: how much of
# each head's attention moved since task U1 (total-variation distance between its maps: 0 % = the same places,
# 100 % = nowhere in common).

# %%
last = {name: torch.stack([attn_along[name][t][-1][0, :, 0, 1:] for t in range(cfg.n_tasks)]) for name in attn_along}
vmax = max(float(v.max()) for v in last.values())
fig = plt.figure(figsize=(1.25 * cfg.n_tasks + 7.5, 1.25 * 2 * vcfg.heads + 0.6), layout="constrained")
left, right = fig.subfigures(1, 2, width_ratios=[1.25 * cfg.n_tasks + 0.8, 6.5])
axes = left.subplots(2 * vcfg.heads, cfg.n_tasks)
for r, name in enumerate(last):
    for t in range(cfg.n_tasks):
        for h in range(vcfg.heads):
            ax = axes[r * vcfg.heads + h, t]
            im = ax.imshow(last[name][t, h].reshape(g, g).numpy(), cmap="inferno", vmin=0, vmax=vmax,
                           interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
            if t == 0:
                ax.set_ylabel(f"{'sup.' if name == 'supervised' else 'MIM'} h{h + 1}", fontsize=10)
            if r == 0 and h == 0:
                ax.set_title(f"after U{t + 1}", fontsize=10)
left.colorbar(im, ax=axes, fraction=0.04, label="share of CLS attention (last layer)")
ax = right.subplots()
for name, ls in (("supervised", "-"), ("masked modelling", "--")):
    p = last[name] / last[name].sum(-1, keepdim=True)
    moved = 0.5 * (p - p[:1]).abs().sum(-1) * 100  # (tasks, heads): total variation from the map after U1
    for h in range(vcfg.heads):
        ax.plot(np.arange(1, cfg.n_tasks + 1), moved[:, h].numpy(), ls=ls, marker="o", color=f"C{h}",
                label=f"{'sup.' if name == 'supervised' else 'MIM'} h{h + 1}")
ax.set(xlabel="after upstream task", ylabel="attention moved since U1 (%)", ylim=(0, None),
       xticks=np.arange(1, cfg.n_tasks + 1), xticklabels=[f"U{t + 1}" for t in range(cfg.n_tasks)],
       title="Does each head keep where it looked?")
ax.legend(fontsize=8, ncol=2)
fig.suptitle("Last layer, CLS attention per head on image 1 (the first image above)")
plots.show(fig, CH, "heads_along_stream",
           caption="Each head of the last layer along the stream (left) and how much of its attention moved since "
                   "task U1 (right): do heads keep where they look?")

# %% [markdown]
# **Mean attention distance** (Dosovitskiy et al., 2021, Fig. 7): for each layer, the attention-weighted distance
# in pixels between a query patch and the patches it attends to, averaged over heads, queries and images. Small =
# local, convolution-like heads; large = global heads. At this scale every layer sits close to what uniform
# attention gives, so the figure draws the *difference* from uniform attention (px): the mean over heads (line) and
# the most local and most global head (band). Below zero: more local than uniform.

# %%
ij = torch.stack(torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij"), -1).reshape(-1, 2).float()
uniform = float(torch.cdist(ij, ij).mean() * cfg.patch)
per_head = {name: np.stack([vit.mean_attention_distance(vit.attention_maps(load(st), probe_x), g, cfg.patch).numpy()
                            for st in [new_vit(SEEDS[0]).state_dict()] + run0["up"][name]["states"]])
            for name in attn_along}  # (1 + tasks, depth, heads)
dist = {name: d.mean(2) for name, d in per_head.items()}
span = max(1.0, max(float(np.abs(d - uniform).max()) for d in per_head.values()) * 1.15)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True, layout="constrained")
layers = np.arange(1, vcfg.depth + 1)
for ax, (name, d) in zip(axes, per_head.items()):
    for t in (0, len(d) - 1):  # the start and the end of the stream (the printout gives every task)
        c = "0.45" if t == 0 else "C0"
        ax.plot(layers, d[t].mean(1) - uniform, marker="o", color=c, label="random init" if t == 0 else f"after U{t}")
        ax.fill_between(layers, d[t].min(1) - uniform, d[t].max(1) - uniform, color=c, alpha=0.2)
    ax.axhline(0, color="grey", ls=":", label="uniform attention")
    ax.set(xlabel="layer", ylabel="mean attention distance − uniform (px)", xticks=layers, ylim=(-span, span),
           title=f"{name} CL (seed 0)")
axes[1].legend(fontsize=8, title="band: most local to most global head", title_fontsize=8)
plots.show(fig, CH, "attention_distance",
           caption="Mean attention distance per layer minus that of uniform attention (px): below zero a layer is "
                   "more local than uniform; the band spans the most local to the most global head.")
for name, curve_ in dist.items():
    print(f"{name}: mean attention distance per layer (px) at init {np.round(curve_[0], 1)}, "
          f"after U{cfg.n_tasks} {np.round(curve_[-1], 1)} (uniform: {uniform:.1f})")

# %% [markdown]
# **What to look for in the attention.** Compare each layer's distance (printed above) with what uniform attention
# gives: heads close to it are still nearly global averages between patches, as a ViT a few epochs from scratch is
# expected to be. In the maps above, look at where the CLS token's attention goes in the supervised and the
# masked-modelling learner. In large ViTs, lower layers develop local heads (small distance) and upper layers
# global ones; that structure needs far more data and steps than `quick` affords.

# %% [markdown]
# ## GLAD: fine-tune downstream, keep the generic model
#
# The supervised CL model after the last upstream task is the pre-trained model. On CIFAR-10 we compare (every
# seed):
#
# * **linear probe** — frozen backbone, a linear head fitted by L-BFGS (the probe above);
# * **GLAD, frozen backbone** — the hard constraint: adaptors and a head train, the backbone does not;
# * **GLAD, adaptors off** — the soft constraint without adaptors: backbone (pulled towards $\theta_0$) and head;
# * **GLAD** (the book's main variant) — identity-initialised adaptors on every attention's logits and output, a
#   head, and the backbone under the soft constraint;
# * **full fine-tuning** — every weight and a new head train, at the same learning rate, with no pull.
#
# Then the question GLAD is built for: after fine-tuning on CIFAR-10, is the *adaptor-free* model still a good
# pre-trained model for the *other* unseen tasks (the ten Tiny ImageNet tasks)? For full fine-tuning, the only model
# left is the fine-tuned one.

# %%
plots.show_code(glad.LogitAdaptor, glad.OutputAdaptor)

# %%
pre_state = run0["up"]["supervised"]["states"][-1]
frozen = load(pre_state)
glad.add_glad(frozen)
frozen.load_state_dict(run0["ft_states"]["glad frozen"])
unchanged = all(torch.equal(free_state(frozen.state_dict())[k], pre_state[k]) for k in pre_state)
with glad.adaptor_free(frozen):
    same_out = torch.equal(embed(frozen, show_x), embed(load(pre_state), show_x))
print(f"hard constraint: adaptor-free path identical to the pre-trained model: weights {unchanged}, outputs {same_out}")
glad_model = load(pre_state)
glad.add_glad(glad_model, freeze=False)
glad_model.load_state_dict(run0["ft_states"]["glad"])
acc_ft = {"linear probe": np.array([r["transfer"]["supervised"][-1][FT_TASK]["linear"] for r in runs]),
          "GLAD, frozen backbone": np.array([r["glad"]["glad frozen"] for r in runs]),
          "GLAD, adaptors off": np.array([r["glad"]["glad off"] for r in runs]),
          "GLAD": np.array([r["glad"]["glad"] for r in runs]),
          "full fine-tuning": np.array([r["glad"]["full"] for r in runs])}
keep = {"pre-trained": np.array([mean_tr(r["transfer"]["supervised"][-1], "linear", OTHERS) for r in runs]),
        "GLAD's adaptor-free path": np.array([mean_tr(r["transfer_after_ft"]["glad"], "linear", OTHERS) for r in runs]),
        "after full fine-tuning": np.array([mean_tr(r["transfer_after_ft"]["full"], "linear", OTHERS) for r in runs])}
moved = {k: np.array([r["moved"][k] for r in runs]) for k in ("full", "glad", "glad off")}
norm0 = float(sum(v.pow(2).sum() for v in pre_state.values()) ** 0.5)
for k, v in acc_ft.items():
    print(f"{FT_TASK} accuracy, {k:22s}: {v.mean() * 100:.1f} ± {v.std() * 100:.1f} %")
for k, v in keep.items():
    print(f"linear transfer to the {len(OTHERS)} Tiny ImageNet tasks, {k:25s}: {v.mean() * 100:.1f} ± {v.std() * 100:.1f} %")
for k, v in moved.items():
    print(f"‖θ − θ₀‖ after {k:8s}: {v.mean():.3f} ({v.mean() / norm0 * 100:.2f} % of ‖θ₀‖ = {norm0:.1f})")

# %%
fig, axes = plt.subplots(1, 3, figsize=(17, 4.4), gridspec_kw={"width_ratios": [1.2, 0.9, 0.8]})
vals = np.array(list(acc_ft.values())) * 100
axes[0].bar(list(acc_ft), vals.mean(1), yerr=vals.std(1), capsize=3, color=["C7", "C9", "C4", "C2", "C3"])
for i, (v, e) in enumerate(zip(vals.mean(1), vals.std(1))):
    axes[0].text(i, v + e + 1, f"{v:.1f}", ha="center", fontsize=9)
axes[0].set(ylabel=f"{FT_TASK} test accuracy (%)", title=f"Fine-tuned on {FT_TASK} ({len(SEEDS)} seeds)", ylim=(0, 100))
axes[0].tick_params(axis="x", labelsize=8, rotation=15)
vals = np.array(list(keep.values())) * 100
axes[1].bar(["pre-trained", "GLAD's\nadaptor-free path", "after full\nfine-tuning"], vals.mean(1), yerr=vals.std(1),
            capsize=3, color=["C7", "C2", "C3"])
lo = max(0.0, 10 * np.floor(vals.min() / 10) - 10)
axes[1].set(ylabel="linear-probe score on the Tiny ImageNet tasks (%)", ylim=(lo, lo + 30),
            title="What is left for the other tasks")
temps = glad.temperatures(glad_model).numpy()
span = max(float(np.abs(temps - 1).max()), 1e-3)
im = axes[2].imshow(temps, cmap="coolwarm", vmin=1 - span, vmax=1 + span)
axes[2].set(xlabel="head", ylabel="layer", xticks=range(vcfg.heads), xticklabels=[f"h{h + 1}" for h in range(vcfg.heads)],
            yticks=range(vcfg.depth), yticklabels=[f"{l + 1}" for l in range(vcfg.depth)],
            title="GLAD logit temperature γ (seed 0)")
axes[2].grid(False)
for (l, h), v in np.ndenumerate(temps):
    axes[2].text(h, l, f"{v:.2f}", ha="center", va="center", fontsize=8)
fig.colorbar(im, ax=axes[2], label="γ (1 = unchanged, > 1 sharper)")
fig.tight_layout()
plots.show(fig, CH, "glad_vs_finetuning",
           caption=f"On {FT_TASK}: the linear probe, GLAD's variants and full fine-tuning; middle, what the model left "
                   "behind still transfers to the other tasks (its axis spans 30 points); right, the temperatures GLAD "
                   "learned.")

# %% [markdown]
# **Reading the bars.** Under the hard constraint the adaptor-free path is the pre-trained model exactly (printed
# above: weights and outputs identical), so its left-behind model transfers as well as before *by construction* —
# and its accuracy is what adaptors alone, on frozen features, can do. Under the soft constraint the backbone moves,
# less than under full fine-tuning (the ‖θ − θ₀‖ printed above), and the middle panel measures what that keeps for
# the other tasks. What the adaptors themselves buy is the gap between GLAD and GLAD with its adaptors switched off
# (the same pull, the same head, the same steps). Right: the temperatures GLAD learned; where γ rose above 1 the
# adaptor made that head's attention more discrete (sharper) for CIFAR-10 — the book's reading of "attention
# discretization" made visible — and where it fell below 1, more diffuse.
#
# And the pictures: last-layer CLS attention and rollout on CIFAR-10 test images, for the pre-trained model, GLAD
# with its adaptors, and the fully fine-tuned model (seed 0).

# %%
ft_x = down_data[FT_TASK]["xte"][[k * cfg.cifar_test_per_class for k in range(cfg.n_show)]]
views = {"pre-trained": vit.attention_maps(load(pre_state), ft_x), "GLAD": vit.attention_maps(glad_model, ft_x),
         "full fine-tuning": vit.attention_maps(load(run0["ft_states"]["full"]), ft_x)}
vmax = max(float(a[-1].mean(1)[:, 0, 1:].max()) for a in views.values())
fig, axes = plt.subplots(len(ft_x), 2 * len(views), figsize=(2.2 * 2 * len(views), 2.3 * len(ft_x)))
for k in range(len(ft_x)):
    for v, (name, attns) in enumerate(views.items()):
        im = overlay(axes[k, 2 * v], ft_x[k], attns[-1][k].mean(0)[0, 1:].reshape(g, g), vmax)
        roll = vit.attention_rollout(attns)[k, 0, 1:].reshape(g, g)
        overlay(axes[k, 2 * v + 1], ft_x[k], roll / roll.sum(), float((roll / roll.sum()).max()))
        if k == 0:
            axes[k, 2 * v].set_title(f"{name}\nlast layer", fontsize=8)
            axes[k, 2 * v + 1].set_title(f"{name}\nrollout", fontsize=8)
fig.colorbar(im, ax=axes, fraction=0.02, label="CLS attention, last layer")
plots.show(fig, CH, "attention_glad_vs_ft",
           caption="Last-layer attention and rollout of the pre-trained model, GLAD and full fine-tuning on the same "
                   "images: which one moves the attention away from the pre-trained maps?")

# %% [markdown]
# ## The book's pre-trained ViT
#
# The final masked-modelling CL backbone of the first seed is written with its SHA-256, so that other chapters can
# load it with `vit.load_weights(path, sha256)`. In the `full` profile this is a ViT-Tiny-sized model at 64 px; in
# `quick` it is the small model of this run.

# %%
wpath = config.cache_dir("weights") / f"vit_{CH}_{cfg.profile}.pt"
sha = vit.save_weights(mim_final, wpath)
reloaded = vit.load_weights(wpath, sha)
weights_round_trip = torch.equal(embed(reloaded, show_x), embed(mim_final, show_x))
print(f"saved {wpath.name}: {wpath.stat().st_size / 1e6:.1f} MB, sha256 {sha}; reloaded outputs identical: "
      f"{weights_round_trip}")

# %% [markdown]
# ## Finding a setting where the findings show
#
# The chapter's first version trained the ViT on 8×8 patches of 4 px, 40 images per class and 4 epochs per task
# (about 25 steps per task), and tested transfer on 1,500 images: the learner stayed where it started (k-NN transfer
# after the last task − random initialisation −0.2 points) and the test's standard error was the size of the effect.
# A step of the 8×8-patch model costs four times one on 4×4 patches of 8 px, so the same CPU time buys four times the
# images. The settings tried (`scripts/explore_pretrainers.py`, supervised CL, 3 seeds; mean gap in points, its
# one-sided 95 % lower bound in brackets; *trend* = least-squares rise over tasks 1..T):
#
# | upstream setting (transfer test) | k-NN trend | k-NN last − init | linear trend | linear last − init |
# |---|---|---|---|---|
# | 8×8 patches of 4 px, 40 img/class, 4 epochs (1,500 test images) | +1.3 (+0.8) | −0.2 (−1.9) | −0.6 (−2.7) | +0.5 (−2.0) |
# | 4×4 patches of 8 px, 160 img/class, 5 epochs (7,000) | +1.6 (+0.4) | +6.0 (+4.3) | +1.2 (+0.8) | +8.0 (+6.3) |
# | **4×4 patches, 140 img/class, 4 epochs (9,000): this chapter** | the claims record | | | |
#
# The chapter's row trades a little data for time (each quick chapter has four minutes). Fine-tuning downstream went
# the same way. A fresh head trained by AdamW reached less than the L-BFGS probe on held-out CIFAR-10 images (1,000
# training images the fine-tuning never sees, 2 seeds): backbone learning rate 3·10⁻³ 21.8 %, 10⁻³ 24.5 %,
# 3·10⁻⁴ 25.0 %, 10⁻⁴ 23.2 %, head alone 21.5 %, against the probe's 27.1 %. Started from the probe (LP-FT, Kumar et
# al., 2022) with a head learning rate of 5·10⁻⁴ it passes the probe: 3·10⁻⁴ 26.4 %, **10⁻⁴ 28.6 %**, 3·10⁻⁵ 28.6 %.
# So every fine-tuning here — full, GLAD's variants, from masked modelling, from random weights — starts from the
# probe's head at those rates. GLAD, in the settings tried (gaps in points, bound in brackets):
#
# | GLAD setting | GLAD − full FT | GLAD − adaptors off | GLAD − probe |
# |---|---|---|---|
# | on a Tiny ImageNet task (500 test images), fresh head; backbone 10⁻⁴, pull 10⁻², adaptors 10⁻² | −2.4 (−2.4) | +0.1 (−0.8) | −1.1 (−6.3) |
# | the same, backbone 3·10⁻⁴, pull 10⁻³, adaptors 5·10⁻² | +0.8 (−3.2) | +0.9 (−3.2) | +2.1 (−2.3) |
# | on CIFAR-10 (5,000 test images), fresh head, 160 img/class, 5 epochs upstream | −0.7 (−2.5) | −0.6 (−2.5) | −0.7 (−2.8) |
# | on CIFAR-10 (4,000), LP-FT at the held-out rates, pull 10⁻³ | −0.4 (−2.9) | −0.4 (−2.9) | −0.1 (−1.6) |
# | the same, pull 10, in the exploration script (4 Tiny tasks for the other tasks' transfer) | −0.4 (−1.9) | −0.2 (−1.4) | −0.3 (−1.5) |
# | **on CIFAR-10 (4,000), LP-FT at the held-out rates, pull 10: this chapter** | the claims record | | |
#
# The pull's strength matters more than its form suggests. At 10⁻³ it was inert: with AdamW, its gradient
# 2λ(θ − θ₀) was a few millionths of the task's, and GLAD with its adaptors off reached *exactly* full fine-tuning's
# accuracy on every seed. At λ = 10 the pull acts (adaptors off and full fine-tuning part) — and still buys nothing
# measurable for the other tasks (+0.3 points, bound −0.3, in the exploration).
#
# In none of them do the adaptors add to the soft constraint, and the middle panel of the GLAD figure says why:
# fine-tuning moves this backbone by about one percent of its norm (‖θ − θ₀‖, printed beside the figure) and leaves
# the other tasks' transfer where it was, so a constraint that keeps the backbone near θ₀ has nothing to protect.
# GLAD's findings stay reports at quick; the `full` profile, with its 30 fine-tuning epochs, is where the backbone moves.

# %% [markdown]
# ## Claims, checked on the numbers above
#
# Each claim is a gap per seed between the learner the claim credits and the one that lacks it; it holds when
# the one-sided 95 % Student-t bound of the mean gap clears a threshold fixed before the run:
# 1. **Supervised CL forgets upstream** (task-IL forgetting above 4 points).
# 2. **Transfer rises along the stream** — the paper's central claim: the least-squares trend of the transfer score
#    over tasks 1..T, by k-NN and by the linear probe, above zero; and the last backbone above the random
#    initialisation by more than a point (the same learner with the stream switched off).
# 3. **No loss in fine-tuning performance**: fine-tuning on CIFAR-10 from the last backbone no worse than from the
#    first by more than 3 points.
# 4. **Masked modelling, judged by fine-tuning**, gives a better start than random weights (the same fine-tuning,
#    the pre-training switched off).
# 5. Checks: GLAD's adaptor-free path under the hard constraint is the pre-trained model bit for bit; the saved
#    weights reload to identical outputs.
#
# Recorded, not asserted (their numbers below): joint supervised against supervised CL; GLAD against full
# fine-tuning (within 3 points: its bound clears by a margin one CPU's kernels can erase), against GLAD with its
# adaptors off, against the L-BFGS probe, and what its adaptor-free path keeps for the other tasks; masked-modelling
# CL's k-NN transfer against the random initialisation.

# %%
R_sups = [r["up"]["supervised"]["R"] for r in runs]
claims = Claims(cfg)
claims.claim("supervised CL: task-IL forgetting upstream", [metrics.forgetting(R) for R in R_sups], above=0.04)
k_sup, k_mim = curve[("supervised", "k-NN")], curve[("masked modelling", "k-NN")]
l_sup = curve[("supervised", "linear")]
claims.claim("supervised CL: k-NN transfer trend over tasks 1..T (least-squares rise, first to last)", trend(k_sup),
             above=0.0, paper="transfer quality rises along the stream")
claims.claim("supervised CL: linear-probe transfer trend over tasks 1..T (least-squares rise, first to last)",
             trend(l_sup), above=0.0, paper="transfer quality rises along the stream")
claims.claim("supervised CL: k-NN transfer after the last task − random initialisation", k_sup[:, -1] - k_sup[:, 0],
             above=0.01)
ft0, ftT = (np.array([r["ft_along"]["supervised"][t] for r in runs]) for t in (0, cfg.n_tasks - 1))
claims.claim(f"supervised CL: fine-tuning on {FT_TASK} from the last backbone − from the first (not degraded)",
             ftT - ft0, above=-0.03, paper="no noticeable loss in fine-tuning performance")
claims.report("joint supervised − supervised CL, k-NN transfer after the last task",
              np.array([mean_tr(r["transfer_joint"]["supervised"], "k-NN") for r in runs]) - k_sup[:, -1], above=0.0,
              detail="with four times the images per task, the continual learner comes within a point of joint")
# Its bound cleared −3 points by 0.1 point at quick (per-seed spread 1.5 points): a margin another CPU's kernels can
# erase, so it is recorded with its threshold rather than asserted.
claims.report(f"GLAD − full fine-tuning, {FT_TASK} accuracy", acc_ft["GLAD"] - acc_ft["full fine-tuning"],
              above=-0.03, paper="GLAD competitive with full fine-tuning")
claims.report(f"GLAD − GLAD with its adaptors switched off, {FT_TASK} accuracy",
              acc_ft["GLAD"] - acc_ft["GLAD, adaptors off"], above=0.005,
              paper="the attention adaptors improve downstream accuracy")
claims.report(f"GLAD − the L-BFGS linear probe on the same backbone, {FT_TASK} accuracy",
              acc_ft["GLAD"] - acc_ft["linear probe"], above=0.0,
              paper="GLAD adds to what the frozen features give")
claims.report("GLAD's adaptor-free path − the fully fine-tuned backbone, linear transfer to the other unseen tasks",
              keep["GLAD's adaptor-free path"] - keep["after full fine-tuning"], above=0.0,
              paper="the adaptor-free path stays the task-general model")
claims.check("GLAD with the hard constraint: its adaptor-free path is the pre-trained model (weights and outputs "
             "identical)", unchanged and same_out)
claims.check("the saved ViT weights reload to identical outputs", weights_round_trip)
mim_ft = {k: np.array([r["mim_ft"][k] for r in runs]) for k in ("masked modelling", "random init")}
claims.claim(f"masked-modelling CL − random initialisation, {FT_TASK} accuracy after full fine-tuning",
             mim_ft["masked modelling"] - mim_ft["random init"], above=0.0,
             paper="unsupervised CL with masked modelling gives a model worth fine-tuning")
claims.report("masked-modelling CL: k-NN transfer after the last task − random initialisation", k_mim[:, -1] - k_mim[:, 0],
              paper="unsupervised CL with masked modelling transfers")
if "masked modelling" in cfg.joint:  # quick leaves the joint masked-modelling twin out (time); full runs it
    claims.report("joint masked modelling − masked-modelling CL, k-NN transfer",
                  np.array([mean_tr(r["transfer_joint"]["masked modelling"], "k-NN") for r in runs]) - k_mim[:, -1],
                  paper="continual masked modelling transfers about as well as joint masked modelling")
claims.done()

# %% [markdown]
# **What the numbers say** (printed from the claims record above, so that it is true of this run):

# %%
say = lambda statement: claims[statement].brief()  # noqa: E731
rise_k = claims["supervised CL: k-NN transfer trend over tasks 1..T (least-squares rise, first to last)"]
print(f"Supervised CL forgets upstream (task-IL forgetting {say('supervised CL: task-IL forgetting upstream')}) while "
      f"its transfer to unseen tasks rises: k-NN trend {rise_k.brief()}, linear-probe trend "
      f"{say('supervised CL: linear-probe transfer trend over tasks 1..T (least-squares rise, first to last)')}; last "
      f"backbone − random initialisation {say('supervised CL: k-NN transfer after the last task − random initialisation')}"
      + (". The paper's finding is shown." if rise_k.holds else ". No rise is shown in this run."))
print(f"Fine-tuning from the last backbone − from the first: "
      f"{say(f'supervised CL: fine-tuning on {FT_TASK} from the last backbone − from the first (not degraded)')}; "
      f"joint − continual k-NN transfer: {say('joint supervised − supervised CL, k-NN transfer after the last task')}.")
print(f"Masked modelling judged by fine-tuning, − random initialisation: "
      f"{say(f'masked-modelling CL − random initialisation, {FT_TASK} accuracy after full fine-tuning')}; judged by "
      f"k-NN: {say('masked-modelling CL: k-NN transfer after the last task − random initialisation')}.")
print(f"GLAD (soft constraint) − full fine-tuning: {say(f'GLAD − full fine-tuning, {FT_TASK} accuracy')}; − the same "
      f"without adaptors: {say(f'GLAD − GLAD with its adaptors switched off, {FT_TASK} accuracy')}; − the probe: "
      f"{say(f'GLAD − the L-BFGS linear probe on the same backbone, {FT_TASK} accuracy')}; its adaptor-free path − "
      f"the fully fine-tuned backbone on the other tasks: "
      f"{say('GLAD' + chr(39) + 's adaptor-free path − the fully fine-tuned backbone, linear transfer to the other unseen tasks')}.")


# %% [markdown]
# ## Exercises
#
# 1. The chapter's GLAD uses one strength of the soft constraint (`pull`). Sweep
#    $\lambda$ in $\lambda\lVert\theta - \theta_0\rVert^2$ from the hard constraint (frozen backbone, $\lambda \to \infty$)
#    down to 0: how do downstream accuracy and the transfer of the adaptor-free model trade off as $\lambda$ falls?
# 2. Turn off the logit adaptor, then the output adaptor. Which one carries GLAD's downstream accuracy?
# 3. Mask ratio: re-run the masked-modelling learner with `mask_ratio` 0.3 and 0.8. Does transfer follow the
#    pretext loss?
# 4. Supervised CL forgets upstream (task-IL matrix). Evaluate the *forgotten* task U1 with a fresh linear
#    probe on the final backbone instead of its old head: how much of the "forgetting" is the head, how
#    much the features?
# 5. Prove that with $\gamma = 1$ and a constant bias $\beta = c\mathbf{1}$ the logit adaptor leaves attention
#    unchanged (softmax is shift-invariant). What does that say about the degrees of freedom of $\beta$?
#
# Hints and worked solutions (they run): `chapters/solutions/01_pretrainers.py`.
#
# ## References
#
# - J. Yoon, S. J. Hwang, Y. Cao. *Continual Learners are Incremental Model Generalizers.* ICML 2023,
#   PMLR 202:40129–40146, [arXiv 2306.12026](https://arxiv.org/abs/2306.12026). (The claim and the two proposals are the paper's; the choice of
#   SimMIM, the form of the GLAD adaptors and the probes are the book's interpretation — no code is public.)
# - Z. Xie et al. *SimMIM: A Simple Framework for Masked Image Modeling.* CVPR 2022.
# - K. He et al. *Masked Autoencoders Are Scalable Vision Learners.* CVPR 2022.
# - A. Dosovitskiy et al. *An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale.* ICLR 2021
#   (ViT; mean attention distance).
# - H. Touvron et al. *Training data-efficient image transformers & distillation through attention.* ICML 2021 (ViT-Ti).
# - S. Abnar and W. Zuidema. *Quantifying Attention Flow in Transformers.* ACL 2020 (attention rollout).
# - R. Wightman. *PyTorch Image Models (timm).* 2019– (the ViT here follows its vision_transformer).
# - Every work the book cites, each linked: the site's *Bibliography* page (from `chapters/references.bib`).

# %%
print("Data:", data.citation("tiny_imagenet"))
print("Data:", data.citation("cifar10"))

# %%
print(cfg.report())
