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
# # Chapter 05 — hints and worked solutions
#
# Each exercise: a **hint**, a **worked solution** that runs in one to two minutes on a laptop CPU (MiniLM's top
# two layers fused, as in the chapter's quick profile, with fewer examples and iterations), and the **expected
# result**.

# %%
import copy
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from torch import nn

from cl_lib import backbones, config, text
from cl_lib.methods import cold_fusion

backbone = backbones.create("all-MiniLM-L6-v2")
LAYER = 4
pretrained = text.UpperLayers(backbone, LAYER)
cold_fit = cold_fusion.FitConfig(epochs=2, batch_size=32, lr_body=1e-4, lr_head=1e-2)
names = text.intent_datasets()  # CLINC150's ten domains, then Banking77


def task(name: str, split: str, per_class: int) -> text.TextTask:
    return text.intent_task(backbone, name, split, layer=LAYER, per_class=per_class, seed=0 if split == "train" else 1)


def fuse(seen: list[str], iterations: int, contributors: int, per_class: int = 6, seed: int = 0) -> nn.Module:
    data = {n: task(n, "train", per_class) for n in seen}
    body = copy.deepcopy(pretrained)
    cold_fusion.cold_fusion(body, lambda n: data[n], seen, iterations=iterations, contributors=contributors, cfg=cold_fit,
                            seed=seed)
    return body


def probe_gain(body: nn.Module, unseen: list[str]) -> dict[str, float]:
    """Linear-probe accuracy of `body` minus the pretrained body's, per unseen data set (4 shots per intent)."""
    out = {}
    for n in unseen:
        shots, test = task(n, "train", 4), task(n, "test", 5)
        out[n] = (cold_fusion.probe_accuracy(body, shots, test, cold_fit) -
                  cold_fusion.probe_accuracy(pretrained, shots, test, cold_fit))
    return out


# %% [markdown]
# ## Exercise 1 — rotate the seen/unseen split
# **Hint.** Keep two CLINC150 domains and Banking77 unseen in each fold; fuse on the rest; compare each unseen data
# set's probe gain over the pretrained body.
#
# **Expected result.** The CLINC150 domains gain at least as much as Banking77 when unseen: fusing on CLINC150's
# other domains teaches CLINC150's style of utterances, which transfers less to another source.

# %%
folds = [["kitchen_and_dining", "work", "banking77"], ["travel", "utility", "banking77"]]
for unseen in folds:
    seen = [n for n in names if n not in unseen]
    gains = probe_gain(fuse(seen, iterations=2, contributors=4), unseen)
    print("unseen", unseen, "probe gain (points):", {k: round(v * 100, 1) for k, v in gains.items()})

# %% [markdown]
# ## Exercise 2 — how many contributors per iteration?
# **Hint.** Hold iterations × contributors = 4 and try m = 1, 2, 4. With m = 1 there is nothing to average: the
# shared body is whatever the single contributor returns (sequential fine-tuning through the schedule).
#
# **Expected result.** With the *product* fixed, more iterations of fewer contributors gain more on the unseen data
# sets at this size (m = 1 is plain sequential fine-tuning through 4 data sets: 4 steps of descent, against 1 step
# averaging 4 bodies for m = 4). The paper's finding is about a different budget — more contributors at a fixed
# number of iterations brings more data, and beyond a few contributors that barely helps. Compare chapter 05's
# claim "ColD Fusion − one round of fusing", which holds the number of examples fixed instead.

# %%
seen = [n for n in names if n not in folds[0]]
for m in (1, 2, 4):
    gains = probe_gain(fuse(seen, iterations=4 // m, contributors=m), folds[0])
    print(f"m = {m} contributors × {4 // m} iterations: mean probe gain on unseen {np.mean(list(gains.values())) * 100:+.1f} points")

# %% [markdown]
# ## Exercise 3 — a weighted average
# **Hint.** Weight each contributor's body by its number of examples. A repository that does not control its
# contributors cannot verify their data sizes: a contributor claiming a huge data set would dominate the model.
#
# **Expected result.** The weighted and uniform averages differ only when the data sizes differ; the uniform
# average bounds every contributor's influence to 1/m.

# %%
def weighted_average(states: list[dict], weights: list[float]) -> dict:
    w = torch.tensor(weights, dtype=torch.float64) / sum(weights)
    return {k: sum(wi * s[k].double() for wi, s in zip(w, states)).to(states[0][k].dtype) for k in states[0]}


bodies = []
for n in ("travel", "banking77"):  # 15 and 77 intents: very different data sizes
    b = copy.deepcopy(pretrained)
    cold_fusion.finetune(b, task(n, "train", 4), cold_fit, seed=0)
    bodies.append((cold_fusion.body_state(b), len(task(n, "train", 4))))
uniform = cold_fusion.average_bodies([s for s, _ in bodies])
weighted = weighted_average([s for s, _ in bodies], [n for _, n in bodies])
print(f"data sizes {[n for _, n in bodies]}; distance uniform ↔ weighted: "
      f"{cold_fusion.parameter_distance(uniform, weighted):.4f}; distance weighted ↔ Banking77's body: "
      f"{cold_fusion.parameter_distance(weighted, bodies[1][0]):.4f} (uniform: "
      f"{cold_fusion.parameter_distance(uniform, bodies[1][0]):.4f})")

# %% [markdown]
# ## Exercise 4 — the fused weights do not depend on the number of processes
# **Hint.** Launch `cl_lib.distributed` under torchrun with 2 and then 3 processes and 4 contributors; each process
# sums its contributors' bodies, the all-reduce adds the sums, and the result is divided by m = 4 (the number of
# contributors), never by the world size — which would be wrong whenever a process runs several contributors or
# none.
#
# **Expected result.** The three fused bodies (in-process, 2 and 3 processes) agree to float rounding (max |Δ|
# around 1e-7).

# %%
out = {}
settings = {**config.chapter_settings("05_cold_fusion"), "seed": 0, "contributors": 4, "train_per_class": 4, "epochs": 1}
args = ["--datasets", "banking,travel,utility,work", "--iterations", "1", "--settings", json.dumps(settings)]
env = dict(os.environ, PYTHONPATH=str(config.ROOT), OMP_NUM_THREADS="1")
with tempfile.TemporaryDirectory() as tmp:
    for n in (0, 2, 3):
        path = os.path.join(tmp, f"fused_{n}.pt")
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"] if n else [sys.executable]
        subprocess.run(launch + ["-m", "cl_lib.distributed", *args, "--out", path], check=True, env=env,
                       capture_output=True, text=True)
        out[n] = torch.load(path, weights_only=True)["body"]
for n in (2, 3):
    diff = max(float((out[n][k] - out[0][k]).abs().max()) for k in out[0])
    print(f"{n} processes vs in-process: max |Δ| = {diff:.2e}")
    assert diff < 1e-4

# %% [markdown]
# ## Exercise 5 — averaging BatchNorm statistics
# **Hint.** A BN's running mean is a property of the data *and* the weights before it. Average two BN networks and
# compare the averaged running mean with the mean the averaged network actually produces on data.
#
# **Expected result.** They differ: averaged statistics are not the statistics of the averaged model. The fix is to
# recompute them after fusing with a forward pass in train mode over some data — which the repository would need
# (a small public, unlabelled set of the contributors' domain).

# %%
torch.manual_seed(0)
x = torch.randn(256, 3, 8, 8)


def bn_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=None))  # momentum None: exact averages


nets = []
for s in range(2):
    torch.manual_seed(s)
    n = bn_net()
    n.train()(x + s)  # each contributor's data and weights
    nets.append(n)
avg = bn_net()
avg.load_state_dict({k: (nets[0].state_dict()[k].float() + nets[1].state_dict()[k].float()) / 2
                     for k in nets[0].state_dict()}, strict=False)
with torch.no_grad():
    true_mean = avg[0](torch.cat([x, x + 1])).mean((0, 2, 3))
print("averaged running mean:", avg[1].running_mean.numpy().round(3))
print("the averaged net's mean:", true_mean.numpy().round(3))
assert not torch.allclose(avg[1].running_mean, true_mean, atol=1e-3)
