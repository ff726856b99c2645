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
# # Chapter 02 — hints and worked solutions
#
# Each exercise: a **hint**, a **worked solution** that runs in about a minute on a laptop CPU (on chapter 02's
# cached CIFAR-10 and Tiny ImageNet features, smaller bottlenecks), and the **expected result**.

# %%
import numpy as np
import torch
from torch import nn

from cl_lib import backbones, features, probes, streams, train
from cl_lib.methods import dkvb

lite0 = backbones.create("tf_efficientnet_lite0")
cifar = features.feature_split(lite0, "cifar10", n_classes=10, train_per_class=200, test_per_class=100, seed=0,
                               image_size=64)
tiny = features.feature_split(lite0, "tiny_imagenet", n_classes=20, train_per_class=100, test_per_class=25, seed=0,
                              image_size=64)
stream = streams.split_stream(cifar.y_train, cifar.y_test, n_tasks=5, classes_per_task=2, seed=0)
lut = stream.label_map(10)
ytr, yte = lut[cifar.y_train], lut[cifar.y_test]


def bottleneck(codebooks=64, n_keys=256, dim_key=8, identity=False) -> dkvb.Bottleneck:
    return dkvb.create(tiny.z_train, 10, codebooks=codebooks, n_keys=n_keys, dim_key=dim_key, steps=40,
                       identity=identity, seed=0)


def run(b: dkvb.Bottleneck, lr=0.3, epochs=10, masked=True) -> dict:
    """Values trained task after task on key indices; final balanced accuracy (all classes) and training loss."""
    idx = dkvb.key_indices(b, cifar.z_train)
    losses = []
    for t, task in enumerate(stream.tasks):
        h = dkvb.train_values(b, idx[task.train], ytr[task.train], epochs=epochs, lr=lr, batch_size=256, clip=1.0,
                              label_smoothing=0.1, seed=t)
        losses.append(h[-1])
    pred = dkvb.forward(b, cifar.z_test, masked=masked).argmax(1)
    return {"acc": train.balanced_accuracy(pred, yte), "loss": float(np.mean(losses)),
            "unused": float((b.counts == 0).float().mean())}


# %% [markdown]
# ## Exercise 1 — more training can hurt
# **Hint.** A key fetched by two tasks holds one value for both; the longer the later task trains it, the further
# its value moves towards the later task's classes.
#
# **Expected result.** 10× the learning rate or 10× the epochs lowers each task's training loss a little, and the
# final class-incremental accuracy does not improve: whatever the extra training gains on the current task, it
# takes from the earlier tasks that share its keys. (With label smoothing and logits averaged over codebooks the
# loss stays close to ln 10; the argmax is what moves.)

# %%
for lr, epochs in ((0.3, 10), (3.0, 10), (0.3, 100)):
    r = run(bottleneck(), lr=lr, epochs=epochs)
    print(f"lr {lr}, {epochs} epochs: last-epoch training loss {r['loss']:.3f}, final balanced accuracy {r['acc'] * 100:.1f} %")

# %% [markdown]
# ## Exercise 2 — an identity split instead of random projections
# **Hint.** `identity=True` with C·d_k = m: 1280 = 160 × 8. Each codebook then sees 8 consecutive feature
# dimensions, some of which are nearly always zero after EfficientNet's ReLU-like activations.
#
# **Expected result.** At this size, little difference (about a point in either): EfficientNet's pooled features
# are dense enough that consecutive 8-dimensional blocks spread the data over the keys about as well as random
# directions do. The random projection's advantage is that it does not depend on how the encoder orders its
# dimensions.

# %%
for identity in (False, True):
    r = run(bottleneck(codebooks=160, n_keys=256, dim_key=8, identity=identity))
    print(f"identity split {identity}: unused keys {r['unused'] * 100:.1f} %, final balanced accuracy {r['acc'] * 100:.1f} %")

# %% [markdown]
# ## Exercise 3 — why an MLP with an untuned recipe fails to learn later tasks
# **Hint.** Count the hidden ReLU units that are zero for every training example of the current task after each
# task (dead units); with Adam at a high learning rate, units die and never recover.
#
# **Expected result.** The number of dead units grows along the stream; a 10× smaller learning rate keeps more
# units alive.

# %%
for lr in (1e-3, 1e-4):
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(1280, 128), nn.ReLU(), nn.Linear(128, 10))
    dead = []
    for t, task in enumerate(stream.tasks):
        train.fit(mlp, cifar.z_train[task.train], ytr[task.train], epochs=10, batch_size=64, seed=t,
                  optimizer=train.make_optimizer(mlp.parameters(), "adam", lr=lr))
        with torch.no_grad():
            act = mlp[1](mlp[0](cifar.z_train))
        dead.append(int((act.max(0).values == 0).sum()))
    print(f"Adam lr {lr}: dead hidden units after each task {dead}")

# %% [markdown]
# ## Exercise 4 — make used-key masking matter
# **Hint.** With N = 4096 keys per codebook and 2,000 training examples, most keys are never fetched in training;
# their values stay zero, and a test example snapped to one gets no vote from that codebook.
#
# **Expected result.** The masked accuracy is above the unmasked one, and the gap grows with N: the more unused
# keys, the more test heads land on empty values without the mask.

# %%
for n_keys in (256, 4096):
    b = bottleneck(codebooks=32, n_keys=n_keys)
    masked = run(b)
    unmasked = train.balanced_accuracy(dkvb.forward(b, cifar.z_test, masked=False).argmax(1), yte)
    print(f"N = {n_keys}: unused keys {masked['unused'] * 100:.0f} %, masked {masked['acc'] * 100:.1f} %, "
          f"unmasked {unmasked * 100:.1f} %")

# %% [markdown]
# ## Exercise 5 — one codebook, one key per example: a nearest-neighbour classifier
# **Hint.** With C = 1, an identity projection (d_k = m) and the training features as keys, snapping finds the
# nearest training example; if its value is that example's one-hot label, the decoder returns its label.
#
# **Expected result.** The bottleneck's predictions equal 1-nearest-neighbour's exactly. Many codebooks of
# moderately many keys instead vote over *regions* of many low-dimensional projections: a smoothed, ensembled
# nearest-neighbour with memory fixed in advance.

# %%
m = cifar.z_train.shape[1]
b = dkvb.Bottleneck(torch.eye(m)[None], cifar.z_train.float()[None], nn.functional.one_hot(ytr, 10).float()[None],
                    torch.ones(1, len(ytr)))
pred_b = dkvb.forward(b, cifar.z_test, masked=False).argmax(1)
d = torch.cdist(cifar.z_test.float(), cifar.z_train.float())
pred_nn = ytr[d.argmin(1)]
print(f"bottleneck vs 1-NN: {(pred_b == pred_nn).float().mean() * 100:.1f} % identical predictions; 1-NN accuracy "
      f"{(pred_nn == yte).float().mean() * 100:.1f} %")
assert torch.equal(pred_b, pred_nn)
