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
# # Chapter 01 — hints and worked solutions
#
# Each exercise: a **hint**, a **worked solution** that runs in about a minute on a laptop CPU (a smaller ViT and
# stream than the chapter's), and the **expected result**. The numbers printed are this run's.

# %%
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cl_lib import probes, streams, train, vit
from cl_lib.methods import glad, mim

torch.manual_seed(0)
up, tr, te = streams.split_dataset("tiny_imagenet", n_tasks=2, classes_per_task=5, seed=0, train_per_class=40,
                                   test_per_class=20, scenario="task")
down, dtr, dte = streams.split_dataset("tiny_imagenet", n_tasks=1, classes_per_task=5, seed=7, train_per_class=40,
                                       test_per_class=20, scenario="task")


def prep(x: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC 64 px -> normalised NCHW 32 px (the chapter's quick input)."""
    x = x.permute(0, 3, 1, 2).float() / 255
    return (F.interpolate(x, size=32, mode="bilinear", antialias=True, align_corners=False) - 0.5) / 0.25


U = [(prep(x), y) for x, y in (up.task_data(t, tr, "train", local=True) for t in range(2))]
U_test = [(prep(x), y) for x, y in (up.task_data(t, te, "test", local=True) for t in range(2))]
D1, D1_test = (prep(dtr.images[down.tasks[0].train]), down.task_data(0, dtr, "train", local=True)[1]), \
    (prep(dte.images[down.tasks[0].test]), down.task_data(0, dte, "test", local=True)[1])
CFG = vit.ViTConfig(img_size=32, patch=4, dim=48, depth=3, heads=4, mlp_ratio=2.0)
FEAT = vit.VisionTransformer(CFG).num_features  # the width of the features a head reads


def pretrain_supervised(epochs: int = 4) -> tuple[vit.VisionTransformer, list[nn.Linear]]:
    torch.manual_seed(0)
    model, heads = vit.VisionTransformer(CFG), [nn.Linear(FEAT, 5) for _ in U]
    for t, (x, y) in enumerate(U):
        net = nn.Sequential(model, heads[t])
        train.fit(net, x, y, epochs=epochs, batch_size=64, seed=t,
                  optimizer=train.make_optimizer(net.parameters(), "adamw", lr=1e-3, weight_decay=0.05))
    return model, heads


def d1_accuracy(model: nn.Module, params, epochs: int = 6, penalty: float = 0.0) -> float:
    """Fine-tune `params` (+ a new head) on D1; with `penalty`, λ‖θ − θ0‖² on the backbone."""
    torch.manual_seed(1)
    head = nn.Linear(FEAT, 5)
    net = nn.Sequential(model, head)
    theta0 = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW([{"params": params, "lr": 3e-3}, {"params": head.parameters(), "lr": 5e-3}], weight_decay=0)
    for xb, yb in ((D1[0][i], D1[1][i]) for i in train.minibatches(len(D1[1]), epochs, 32)):
        loss = F.cross_entropy(net(xb), yb)
        if penalty:
            loss = loss + penalty * sum(((p - p0) ** 2).sum() for p, p0 in zip(model.parameters(), theta0))
        opt.zero_grad(), loss.backward(), opt.step()
    return train.accuracy(net, *D1_test)


base, heads = pretrain_supervised()
state0 = {k: v.clone() for k, v in base.state_dict().items()}


def fresh() -> vit.VisionTransformer:
    m = vit.VisionTransformer(CFG)
    m.load_state_dict(state0)
    return m


def transfer(model: nn.Module) -> float:
    """Linear-probe accuracy on the upstream tasks' test sets (how general the features still are)."""
    return float(np.mean([probes.linear_probe_accuracy(probes.embed(model, x), y, probes.embed(model, xt), yt, steps=100)
                          for (x, y), (xt, yt) in zip(U, U_test)]))


# %% [markdown]
# ## Exercise 1 — a soft constraint instead of a frozen backbone
# **Hint.** Train the backbone with the adaptors, adding $\lambda\lVert\theta - \theta_0\rVert^2$ to the loss; λ = ∞
# is GLAD (frozen), λ = 0 is full fine-tuning with adaptors. Measure D1 accuracy and the upstream transfer of the
# adaptor-free model.
#
# **Expected result.** As λ falls, D1 accuracy tends to rise and the adaptor-free model's transfer to the upstream
# tasks tends to fall: the frozen backbone (λ = ∞) keeps transfer exactly, at the cost of downstream accuracy.

# %%
for lam in (None, 1.0, 0.0):
    model = fresh()
    adaptors = glad.add_glad(model)
    if lam is not None:
        for p in model.parameters():
            p.requires_grad_(True)
    params = list(model.parameters()) if lam is not None else adaptors
    acc = d1_accuracy(model, params, penalty=lam or 0.0)
    with glad.adaptor_free(model):
        tr_acc = transfer(model)
    print(f"λ = {'∞ (GLAD)' if lam is None else lam}: D1 accuracy {acc * 100:.1f} %, adaptor-free transfer {tr_acc * 100:.1f} %")

# %% [markdown]
# ## Exercise 2 — which adaptor carries GLAD?
# **Hint.** After `add_glad`, set `requires_grad_(False)` on every `logit_adaptor` (then every `out_adaptor`)
# parameter before training.
#
# **Expected result.** At this scale neither adaptor carries GLAD alone: switching either off leaves D1 accuracy
# within a point or two of GLAD with both — the new head does most of the work (compare chapter 01's "GLAD,
# adaptors off"). The paper's model, far larger, is where the two adaptors' roles can separate.

# %%
for off in ("none", "logit_adaptor", "out_adaptor"):
    model = fresh()
    glad.add_glad(model)
    params = [p for blk in model.blocks for name in ("logit_adaptor", "out_adaptor") if name != off
              for p in getattr(blk.attn, name).parameters()]
    print(f"switched off: {off:14s} D1 accuracy {d1_accuracy(model, params) * 100:.1f} %")

# %% [markdown]
# ## Exercise 3 — mask ratio
# **Hint.** `mim.fit_mim(..., ratio=r)`; compare the final pretext loss and the k-NN transfer to D1 for r = 0.3
# and 0.8.
#
# **Expected result.** The pretext loss is not comparable across ratios (a harder task has a higher loss), so it
# cannot say which ratio transfers better; here the lower ratio transfers better by a few points (on 20 test
# images per class, a difference of the order of the noise).

# %%
x_up = torch.cat([x for x, _ in U])
for ratio in (0.3, 0.8):
    torch.manual_seed(0)
    sim = mim.SimMIM(vit.VisionTransformer(CFG))
    hist = mim.fit_mim(sim, x_up, epochs=4, optimizer=torch.optim.AdamW(sim.parameters(), lr=1e-3), ratio=ratio,
                       block=2, batch_size=64, seed=0)
    knn = probes.knn_accuracy(probes.embed(sim.encoder, D1[0]), D1[1], probes.embed(sim.encoder, D1_test[0]), D1_test[1], 10)
    print(f"mask ratio {ratio}: final pretext loss {hist[-1]:.3f}, k-NN transfer to D1 {knn * 100:.1f} %")

# %% [markdown]
# ## Exercise 4 — is U1 forgotten by the head or by the features?
# **Hint.** After the last task, evaluate U1 with its old head, then with a fresh linear probe trained on U1's
# training features of the final backbone.
#
# **Expected result.** The fresh probe recovers much of U1's accuracy: a large part of task-IL "forgetting" is the
# old head no longer matching the moved features, not the features losing the information.

# %%
old_head = train.accuracy(nn.Sequential(base, heads[0]), *U_test[0])
fresh_probe = probes.linear_probe_accuracy(probes.embed(base, U[0][0]), U[0][1], probes.embed(base, U_test[0][0]),
                                           U_test[0][1], steps=100)
print(f"U1 after the last task: old head {old_head * 100:.1f} %, fresh linear probe {fresh_probe * 100:.1f} %")

# %% [markdown]
# ## Exercise 5 — the degrees of freedom of the logit bias
# **Hint.** softmax(l + c·1) = softmax(l) for any constant c: adding the same bias to every key's logit cancels in
# the normalisation. So β has one redundant degree of freedom per head and query.
#
# **Expected result.** With γ = 1 and β = c·1 the attention output is unchanged (to rounding); a non-constant β
# changes it.

# %%
model = fresh()
glad.add_glad(model)
x = U_test[0][0][:8]
with torch.no_grad():
    before = model(x)
    for blk in model.blocks:
        blk.attn.logit_adaptor.beta.fill_(3.7)
    shifted = model(x)
    model.blocks[0].attn.logit_adaptor.beta.normal_()
    changed = model(x)
print(f"max |Δ| constant bias: {(before - shifted).abs().max():.2e}; random bias: {(before - changed).abs().max():.2e}")
assert torch.allclose(before, shifted, atol=1e-5) and not torch.allclose(before, changed, atol=1e-3)
