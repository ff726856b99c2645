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

# %% [markdown]
# ## Exercise 5 — fine-tuning with more data
# **Hint.** Chapter 06's Part 1b uses 40 training images per class; the prefix has 100. Run chapter 04's loop
# (`confit.fine_tune_stream`) on all of them, naive and hierarchical, and put NCM on frozen features of the same
# images beside them (task-incremental: each task's prediction among its own two classes). One seed keeps it short.
#
# **Expected result.** More data does *not* close the gap: with all hundred images per class both fine-tuned
# networks end further below NCM on frozen features than with forty (about ten points here), and ConFiT stays
# within a few points of naive fine-tuning. More steps per task move the backbone further from what the old
# tasks' classifiers relied on; the regime where adapting the backbone pays (chapter 04's `full`) needs larger
# images, far more data per task and a domain the pretrained features do not already separate.

# %%
from cl_lib import data
from cl_lib.methods import confit

tiny_tr, tiny_te = data.load("tiny_imagenet", "train"), data.load("tiny_imagenet", "val")
n_ft = 5
rows_tr = [np.asarray(task.train) for task in st.tasks[:n_ft]]
rows_te = [np.asarray(task.test) for task in st.tasks[:n_ft]]


def task_il(scores_of, rows) -> float:
    """Final task-IL accuracy: each prefix task's test examples, the prediction among its own classes."""
    accs = []
    for t, r in enumerate(rows):
        sl = st.task_slice(t)
        accs.append(float((scores_of(r)[:, sl].argmax(1) + sl.start == yte[r]).float().mean()))
    return float(np.mean(accs))


ncm5 = prototypes.NCM(C, D)
for r in rows_tr:
    ncm5.update(tiny.z_train[r], ytr[r])
print(f"NCM on frozen features, 100 per class: final task-IL accuracy {task_il(lambda r: ncm5.scores(tiny.z_test[r]), rows_te) * 100:.1f} %")
for hierarchical in (False, True):
    train.seed_everything(0)
    b = backbones.create("tf_efficientnet_lite0")
    net = nn.Sequential(b.model, nn.Linear(b.num_features, C))
    prep = lambda x: b.preprocess(x, 64)  # noqa: E731
    cft = confit.ConFiT.attach(net, prep(tiny_tr.images[tiny.train_index[rows_tr[0][:2]]]))
    mode = "xconv" if hierarchical else "shared"
    R = confit.fine_tune_stream(
        cft, net[1], [(tiny_tr.images[tiny.train_index[r]], ytr[r]) for r in rows_tr],
        [(tiny_te.images[tiny.test_index[r]], yte[r]) for r in rows_te], [st.task_slice(t) for t in range(n_ft)],
        hierarchical=hierarchical, epochs=5, lr=0.01, momentum=0.9, batch_size=32, transform=prep, seed=0,
        modes=(mode,))[mode]
    print(f"{'ConFiT' if hierarchical else 'naive fine-tuning'}, 100 per class: final task-IL accuracy "
          f"{np.mean(R[-1]) * 100:.1f} %")
