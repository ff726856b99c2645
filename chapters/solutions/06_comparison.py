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
# # Chapter 06 — hints and worked solutions
#
# Each exercise: a **hint**, a **worked solution** (on chapter 06's cached Split Tiny ImageNet features; well under
# a minute on a laptop CPU), and the **expected result**.

# %%
import numpy as np
import torch
from torch import nn

from cl_lib import backbones, features, streams, train
from cl_lib.methods import prototypes

lite0 = backbones.create("tf_efficientnet_lite0")
tiny = features.feature_split(lite0, "tiny_imagenet", n_classes=20, train_per_class=100, test_per_class=25, seed=0,
                              image_size=64)
D, C = tiny.z_train.shape[1], tiny.n_classes


def stream_of(seed: int):
    st = streams.split_stream(tiny.y_train, tiny.y_test, n_tasks=10, classes_per_task=2, seed=seed)
    lut = st.label_map(C)
    return st, lut[tiny.y_train], lut[tiny.y_test]


st, ytr, yte = stream_of(0)


def run(learner, st=st, ytr=ytr) -> torch.Tensor:
    for task in st.tasks:
        learner.update(tiny.z_train[task.train], ytr[task.train])
    return learner.scores(tiny.z_test)[:, : st.n_classes]


def accuracy(scores: torch.Tensor, y=yte) -> float:
    return float((scores.argmax(1) == y).float().mean())


# %% [markdown]
# ## Exercise 1 — ridge strength
# **Hint.** `ridge` is relative to the mean diagonal of the Gram matrix. Very small: the decoder interpolates the
# training set (here the expanded dimension is close to the number of examples, the worst case); very large: the
# Gram matrix is swamped by λI and P ∝ Q, i.e. prototypes become (projected) class sums, NCM-like without the
# normalisation.
#
# **Expected result.** An inverted U: accuracy peaks around ridge ≈ 1 and falls towards or below NCM at both ends.

# %%
ncm = accuracy(run(prototypes.NCM(C, D)))
for ridge in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0):
    a = accuracy(run(prototypes.RidgePrototypes(C, D, proj_dim=2000, ridge=ridge)))
    print(f"ridge {ridge:g}: RanPAC {a * 100:.1f} %   (NCM {ncm * 100:.1f} %)")

# %% [markdown]
# ## Exercise 2 — projection size
# **Hint.** The Gram matrix is M × M: memory grows as M², the solve as M³.
#
# **Expected result.** Below the feature width (M = 500 < D = 1280) the expansion loses information and accuracy
# drops to NCM's level; from M ≈ 2000 on accuracy is flat while the bytes kept grow with M²: on these features a
# larger expansion buys nothing.

# %%
for M in (500, 2000, 8000):
    p = prototypes.RidgePrototypes(C, D, proj_dim=M, ridge=1.0)
    a = accuracy(run(p))
    print(f"M = {M}: accuracy {a * 100:.1f} %, statistics kept {p.nbytes() / 1e6:.1f} MB")

# %% [markdown]
# ## Exercise 3 — the order of the tasks
# **Hint.** Run each learner on two class orders of the same classes and compare the final predictions (in data-set
# labels, so that the two label maps do not matter). Statistics that are sums cannot depend on the order.
#
# **Expected result.** NCM's and RanPAC's predictions are identical (up to float rounding of the sums); the linear
# head trained by SGD task after task and DKVB (its values are trained task after task) give different predictions.

# %%
def predictions_in_dataset_labels(make, seed: int) -> torch.Tensor:
    s, ytr_s, _ = stream_of(seed)
    order = torch.tensor(s.class_order)
    if make == "linear":
        torch.manual_seed(0)
        head = nn.Linear(D, C)
        for t, task in enumerate(s.tasks):
            train.fit(head, tiny.z_train[task.train], ytr_s[task.train], epochs=10, batch_size=64, seed=t,
                      optimizer=train.make_optimizer(head.parameters(), "adam", lr=1e-3))
        scores = head(tiny.z_test).detach()[:, : s.n_classes]
    else:
        scores = run(make(), s, ytr_s)
    return order[scores.argmax(1)]


for name, make in (("NCM", lambda: prototypes.NCM(C, D)),
                   ("RanPAC", lambda: prototypes.RidgePrototypes(C, D, proj_dim=2000, ridge=1.0)),
                   ("linear head (SGD)", "linear")):
    a, b = predictions_in_dataset_labels(make, 0), predictions_in_dataset_labels(make, 1)
    print(f"{name:>18}: identical predictions under two task orders: {(a == b).float().mean() * 100:.1f} %")

# %% [markdown]
# ## Exercise 4 — a replay buffer for the naive head
# **Hint.** Keep 5 examples per class seen (their 1280-d features, 4 bytes each) and add them to each task's training
# data. Bytes kept: the head plus the buffer.
#
# **Expected result.** Replay lifts the naive head from near-total forgetting (about 9 % in the chapter) to a useful
# accuracy, at a memory cost several times NCM's statistics; on the frontier it still sits well below the prototype
# learners.

# %%
torch.manual_seed(0)
head, buffer = nn.Linear(D, C), []
for t, task in enumerate(st.tasks):
    idx = torch.as_tensor(task.train)
    x = torch.cat([tiny.z_train[idx]] + [tiny.z_train[b] for b in buffer])
    y = torch.cat([ytr[idx]] + [ytr[b] for b in buffer])
    train.fit(head, x, y, epochs=10, batch_size=64, seed=t, optimizer=train.make_optimizer(head.parameters(), "adam", lr=1e-3))
    for c in task.classes:
        buffer.append(idx[ytr[idx] == int(st.label_map(C)[c])][:5])
kept = (D + 1) * st.n_classes * 4 + sum(len(b) for b in buffer) * D * 4
print(f"naive head + replay (5 per class): final accuracy {accuracy(head(tiny.z_test).detach()[:, : st.n_classes]) * 100:.1f} %, "
      f"bytes kept {kept / 1e6:.2f} MB; NCM {ncm * 100:.1f} % with {(D + 1) * st.n_classes * 4 / 1e6:.2f} MB")
