"""ColD Fusion: the fusion is a parameter-wise mean of bodies only, the distributed engine (2 processes under
torchrun, gloo) gives the in-process loop's fused weights, and a contributor never sees another's data.

Run as a script under torchrun, this file is the distributed worker of the equivalence test.
"""
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from cl_lib.methods import cold_fusion as cf
from cl_lib.text import Hidden, TextTask

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["a", "b", "c", "d", "e"]


class TinyBody(nn.Module):
    """A stand-in for the top layers: token-wise MLP with dropout, masked mean pooling, normalised."""

    def __init__(self, d: int = 6):
        super().__init__()
        self.fc, self.drop = nn.Linear(d, d), nn.Dropout(0.1)

    def forward(self, h, mask):
        x = self.drop(torch.tanh(self.fc(h.float())))
        m = mask.unsqueeze(-1).float()
        return nn.functional.normalize((x * m).sum(1) / m.sum(1), dim=-1)


def tiny_task(name: str, n: int = 24, classes: int = 3, d: int = 6) -> TextTask:
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    mask = torch.ones(n, 5, dtype=torch.long)
    mask[: n // 2, 3:] = 0  # some padding
    return TextTask(name, Hidden(torch.randn(n, 5, d, generator=g).half(), mask), torch.arange(n) % classes, classes)


def tiny_body() -> TinyBody:
    torch.manual_seed(0)
    return TinyBody()


CFG = cf.FitConfig(epochs=2, batch_size=8, lr_body=0.05, lr_head=1e-2, probe_steps=20)


def test_average_is_the_parameterwise_mean():
    a = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([0.0, 1.0])}
    b = {"w": torch.tensor([[3.0, 0.0], [1.0, 4.0]]), "b": torch.tensor([2.0, -1.0])}
    c = {"w": torch.tensor([[2.0, 1.0], [2.0, 1.0]]), "b": torch.tensor([1.0, 3.0])}
    avg = cf.average_bodies([a, b, c])
    assert torch.equal(avg["w"], torch.tensor([[2.0, 1.0], [2.0, 3.0]]))
    assert torch.equal(avg["b"], torch.tensor([1.0, 1.0]))
    assert cf.parameter_distance(a, a) == 0 and cf.parameter_distance(a, b) == pytest.approx((4 + 4 + 4 + 0 + 4 + 4) ** 0.5)
    with pytest.raises(ValueError, match="at least one"):
        cf.average_bodies([])
    with pytest.raises(ValueError, match="heads stay"):
        cf.average_bodies([a, {"w": a["w"], "head.weight": a["b"]}])


def test_one_iteration_fuses_bodies_and_leaves_heads_with_contributors():
    body, tasks = tiny_body(), {n: tiny_task(n) for n in NAMES}
    shared = cf.body_state(body)
    sent = []

    def on_contributor(name, b):
        sent.append(cf.body_state(b))

    fused = cf.fuse_in_process(shared, copy.deepcopy(body), ["a", "c", "d"], tasks.__getitem__, CFG, 0, 0,
                               on_contributor=on_contributor)
    assert set(fused) == set(shared) and not any(k.startswith("head") for k in fused)
    for k in fused:  # the fusion is exactly the mean of what the three contributors sent
        assert torch.allclose(fused[k], sum(s[k] for s in sent) / 3, atol=1e-7)
    assert all(cf.parameter_distance(s, shared) > 1e-3 for s in sent)  # each contributor really trained
    # each contributor starts from the shared body: the one that ran first gives the same result alone
    alone = cf.local_update(shared, copy.deepcopy(body), tasks["a"], CFG, cf.contributor_seed(0, 0, "a"))
    assert cf.parameter_distance(alone, sent[0]) == 0
    # heads have each contributor's own label space; a fine-tune returns a classifier with the right head
    model = cf.finetune(copy.deepcopy(body), TextTask("x", tasks["a"].x, tasks["a"].y % 2, 2), CFG, 0)
    assert model.head.out_features == 2


def test_a_contributor_never_sees_another_contributors_data():
    body, tasks = tiny_body(), {n: tiny_task(n) for n in NAMES}
    loaded = []

    def load(name):
        loaded.append(name)
        return tasks[name]

    schedule = cf.cold_fusion(copy.deepcopy(body), load, NAMES, iterations=3, contributors=2, cfg=CFG, seed=1)
    assert loaded == [n for chosen in schedule for n in chosen]  # only the chosen, each once per iteration
    # the update a contributor sends depends on its own data only: scrambling everyone else's changes nothing
    shared = cf.body_state(body)
    ref = cf.local_update(shared, copy.deepcopy(body), tasks["b"], CFG, 7)
    for n in NAMES:
        if n != "b":
            tasks[n].x.states.normal_()
    assert cf.parameter_distance(cf.local_update(shared, copy.deepcopy(body), tasks["b"], CFG, 7), ref) == 0
    with pytest.raises(ValueError, match="contributors per iteration"):
        cf.sample_contributors(NAMES, 6, 0, 0)


def test_sampling_is_seeded_and_without_replacement():
    a = [cf.sample_contributors(NAMES, 3, 0, t) for t in range(4)]
    assert a == [cf.sample_contributors(NAMES, 3, 0, t) for t in range(4)]
    assert all(len(set(c)) == 3 and set(c) <= set(NAMES) for c in a)
    assert len({tuple(c) for c in a}) > 1  # iterations draw different contributors


def _run_loop(fuse, iterations: int = 2) -> dict:
    body, tasks = tiny_body(), {n: tiny_task(n) for n in NAMES}
    loaded = []

    def load(name):
        loaded.append(name)
        return tasks[name]

    schedule = cf.cold_fusion(body, load, NAMES, iterations=iterations, contributors=3, cfg=CFG, seed=3, fuse=fuse)
    return {"body": cf.body_state(body), "schedule": schedule, "loaded": loaded}


def test_torchrun_two_processes_equal_the_in_process_loop(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
           str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    ref = _run_loop(cf.fuse_in_process)
    assert ranks[0]["schedule"] == ranks[1]["schedule"] == ref["schedule"]
    for r in ranks:  # every process ends with the same fused body, the in-process loop's
        for k, v in ref["body"].items():
            assert torch.allclose(r["body"][k], v, atol=1e-6), k
    # each process loaded only its own contributors' data: rank r ran chosen[r::2] in every iteration
    for rank, r in enumerate(ranks):
        assert r["loaded"] == [n for chosen in ref["schedule"] for n in chosen[rank::2]]
    moved = cf.parameter_distance(ref["body"], cf.body_state(tiny_body()))
    assert moved > 1e-3  # the loop really changed the body


if __name__ == "__main__":  # the worker: launched by torchrun in the test above
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    out = _run_loop(cf.fuse_distributed)
    torch.save(out, Path(sys.argv[1]) / f"rank{dist.get_rank()}.pt")
    dist.destroy_process_group()
