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
# # Chapter 03 — hints and worked solutions
#
# Each exercise: a **hint**, a **worked solution** that runs in about a minute on a laptop CPU (four CLINC150
# domains, adapters in MiniLM's last two layers as in the chapter's quick profile), and the **expected result**.

# %%
import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cl_lib import backbones, data, probes, streams, text, train
from cl_lib.methods import ada

torch.manual_seed(0)
tr, te = data.load_clinc150("train"), data.load_clinc150("test")
domains = ["banking", "travel", "utility", "work"]
stream = streams.stream_from_groups(tr.labels, te.labels, [tr.groups[d] for d in domains], scenario="task", seed=0,
                                    train_per_class=8, test_per_class=10, task_names=domains)
backbone = backbones.create("all-MiniLM-L6-v2")
encoder = ada.AdaptedEncoder(backbone, 4)
T = len(stream)


def sets(split: str) -> list[tuple[text.Hidden, torch.Tensor]]:
    ds = tr if split == "train" else te
    return [(text.cached_hidden_states(backbone, ds, layer=4, indices=getattr(task, split)),
             stream.task_data(t, ds, split, local=True)[1]) for t, task in enumerate(stream.tasks)]


train_sets, test_sets = sets("train"), sets("test")
KW = dict(epochs=8, lr=1e-2, lr_head=3e-2, batch_size=32)


def fresh(t: int) -> tuple[ada.AdapterSet, nn.Linear]:
    torch.manual_seed(1000 + t)
    return ada.AdapterSet(len(encoder.points), encoder.dim, 24), nn.Linear(encoder.dim, 15)


adapters, heads = [], []
for t in range(T):
    a, h = fresh(t)
    ada.train_task(encoder, a, h, *train_sets[t], seed=t, **KW)
    adapters.append(a), heads.append(h)


def run(merge=ada.distil) -> np.ndarray:
    return ada.run_ada(encoder, train_sets, test_sets, adapters, heads, K=1, epochs=4, lr=1e-2, seed=0, merge=merge).R


# %% [markdown]
# ## Exercise 1 — distil on more than the current task's data
# **Hint.** Wrap `ada.distil` so that its `x` is the current task's utterances plus unlabelled utterances of the
# earlier domains (`text.Hidden.concat`), and pass the wrapper as `merge`. With K = 1 every task shares one slot.
#
# **Expected result.** The columns of the earlier tasks recover: the student now sees inputs from the domains its
# old teacher was good at, so it is pulled towards the old teacher where it matters.

# %%
seen_x: list[text.Hidden] = []


def distil_with_history(enc, old, old_heads, new, new_head, x, **kw):
    out = ada.distil(enc, old, old_heads, new, new_head, text.Hidden.concat([x, *seen_x]) if seen_x else x, **kw)
    return out


class Remember:  # records each task's inputs as run_ada goes (the merge only sees the current task)
    def __call__(self, enc, old, old_heads, new, new_head, x, **kw):
        out = distil_with_history(enc, old, old_heads, new, new_head, x, **kw)
        seen_x.append(x)
        return out


seen_x.append(train_sets[0][0])  # task 1 fills the slot without a merge
R_plain, R_more = run(), run(Remember())
print("final row, distilling on the current task only:", np.round(R_plain[-1] * 100, 1))
print("final row, distilling on all domains seen     :", np.round(R_more[-1] * 100, 1))

# %% [markdown]
# ## Exercise 2 — KL instead of centred-logit regression
# **Hint.** Replace the MSE on centred logits by KL(softmax(teacher/τ) ‖ softmax(student/τ)) per head, τ = 2. The
# softmax ignores a constant added to all logits of a head, so centring changes nothing for KL; for MSE it removes
# a free offset the student would otherwise have to match.
#
# **Expected result.** Accuracy moves by at most a few points at this size; neither loss is clearly better.

# %%
def distil_kl(enc, old, old_heads, new, new_head, x, y=None, *, epochs, lr, batch_size=32, seed=0, tau=2.0):
    heads_ = list(old_heads) + [new_head]
    with torch.no_grad():
        z_old, z_new = ada.embed(enc, old, x), ada.embed(enc, new, x)
        target = [h(z_old) for h in old_heads] + [new_head(z_new)]
    student = copy.deepcopy(old)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    enc.plug(student)
    for idx in train.minibatches(len(x), epochs, batch_size, seed):
        z = enc(*x.take(idx))
        loss = sum(F.kl_div(F.log_softmax(h(z) / tau, 1), F.softmax(tg[idx] / tau, 1), reduction="batchmean")
                   for h, tg in zip(heads_, target))
        opt.zero_grad(), loss.backward(), opt.step()
    return student


R_kl = run(distil_kl)
print(f"final mean accuracy: centred MSE {R_plain[-1].mean() * 100:.1f} %, KL (τ = 2) {R_kl[-1].mean() * 100:.1f} %")

# %% [markdown]
# ## Exercise 3 — is TransRate a good predictor?
# **Hint.** For each new task, score every earlier adapter (and the frozen backbone, `None`) with TransRate on the
# task's training data, then fine-tune a copy of that adapter on the task and measure its test accuracy; correlate.
#
# **Expected result.** A positive rank correlation: starts that TransRate scores higher tend to fine-tune to higher
# accuracy. With a handful of (task, start) pairs and 8 examples per intent the estimate is noisy — rerun with
# another seed before trusting its size.

# %%
scores, accs = [], []
for t in range(1, T):
    for start in [None] + adapters[:t]:
        z = ada.embed(encoder, start, train_sets[t][0])
        scores.append(probes.transrate(z.cpu(), train_sets[t][1]))
        a = copy.deepcopy(start) if start is not None else fresh(t)[0]
        _, h = fresh(t)
        ada.train_task(encoder, a, h, *train_sets[t], seed=t, **{**KW, "epochs": 4})
        accs.append(ada.accuracy(encoder, a, h, *test_sets[t]))
rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
rho = np.corrcoef(rank(scores), rank(accs))[0, 1]
print(f"Spearman correlation of TransRate with the fine-tuned accuracy over {len(scores)} (task, start) pairs: {rho:.2f}")

# %% [markdown]
# ## Exercise 4 — the shared adapter with a smaller learning rate
# **Hint.** `ada.run_sequential` with `lr` 1e-2, 3e-3 and 1e-3; for each, the final mean accuracy (ACC) and the
# newest task's accuracy. Put ADA's point on the same axes.
#
# **Expected result.** A smaller learning rate forgets less but learns the newest task less well: the points trace
# a trade-off curve; ADA sits at or above it (it keeps the newest task's accuracy without giving up the old ones).

# %%
for lr in (1e-2, 3e-3, 1e-3):
    a, _ = fresh(0)
    R = ada.run_sequential(encoder, train_sets, test_sets, [fresh(t)[1] for t in range(T)], adapters=a,
                           **{**KW, "lr": lr})
    print(f"shared adapter, lr {lr:.0e}: ACC {R[-1].mean() * 100:.1f} %, newest task {R[-1, -1] * 100:.1f} %")
print(f"ADA (K = 1): ACC {R_plain[-1].mean() * 100:.1f} %, newest task {R_plain[-1, -1] * 100:.1f} %")

# %% [markdown]
# ## Exercise 5 — FLOPs of AdapterFusion
# **Hint.** Per token and insertion point, with A adapters of bottleneck r on width D: each adapter costs
# 2·(2·D·r) FLOPs (down and up projections); fusion adds the query (2D²), A keys and A values (2·2·A·D²) and the
# A-way softmax weighting (≈ 4AD). Check with `torch.utils.flop_counter.FlopCounterMode`.
#
# **Expected result.** The count grows linearly in A with slope ≈ 4D² + 4Dr per token and point: the fusion's key
# and value projections dominate, which is why latency grows with the number of adapters while ADA's does not.

# %%
from torch.utils.flop_counter import FlopCounterMode

D, r, tokens = encoder.dim, 24, 10
for A in (1, 2, 4, 8):
    blocks, fusion = [ada.Adapter(D, r) for _ in range(A)], ada.Fusion(D)
    y = torch.randn(tokens, D)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        outs = torch.stack([b(y) for b in blocks])
        fusion(y, outs)
    formula = tokens * (A * 4 * D * r + 2 * D * D + 4 * A * D * D)
    print(f"A = {A}: measured {fc.get_total_flops():,} FLOPs, formula (matmuls) {formula:,}")
