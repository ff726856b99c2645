"""ADA (cl_lib.methods.ada): adapters start as the identity, the backbone never trains, the transferability
scores on hand-worked cases, centred logits, distillation, and the pool's bookkeeping."""
import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

from cl_lib import backbones, probes, text, train
from cl_lib.methods import ada


@pytest.fixture(scope="module")
def backbone():
    return backbones.create("all-MiniLM-L6-v2")


TEXTS = ["how do i freeze my account", "what is the weather like in paris", "play some jazz please", "hi there"]


def synthetic_task(n: int, n_cls: int, seed: int, L: int = 6) -> tuple[text.Hidden, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(n, L, dtype=torch.long)
    mask[::2, L - 2:] = 0  # some padding
    return text.Hidden(torch.randn(n, L, 384, generator=g).half(), mask), torch.arange(n) % n_cls


def test_a_fresh_adapter_is_the_identity(backbone):
    enc = ada.AdaptedEncoder(backbone, first_layer=3)
    tok = backbones.tokenize(backbone, TEXTS)
    with torch.no_grad():
        plain = backbone.model(tok["input_ids"], tok["attention_mask"])
        adapted = enc.plug(ada.AdapterSet(len(enc.points), 384, 8)).encode(tok["input_ids"], tok["attention_mask"])
    assert torch.equal(plain, adapted)
    # the cached-hidden-state path gives the same embeddings as the whole encoder
    assert torch.allclose(ada.embed(enc, None, text.hidden_states(backbone, TEXTS, layer=3)), plain, atol=1e-3)
    assert len(enc.points) == 6 and enc.points[0] == (3, "attn") and enc.points[-1] == (5, "ffn")


def test_a_trained_adapter_changes_the_output_and_the_backbone_never_changes(backbone):
    before = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    enc = ada.AdaptedEncoder(backbone, first_layer=5)
    x, y = synthetic_task(12, 3, seed=0)
    a, head = ada.AdapterSet(len(enc.points), 384, 8), nn.Linear(384, 3)
    a0 = [p.clone() for p in a.parameters()]
    z0 = ada.embed(enc, None, x)
    ada.train_task(enc, a, head, x, y, epochs=2, lr=1e-2, lr_head=1e-2, batch_size=4)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), a0)), "the adapter should train"
    assert not torch.allclose(ada.embed(enc, a, x), z0, atol=1e-4), "a trained adapter changes the embeddings"
    assert torch.allclose(ada.embed(enc, None, x), z0), "unplugged, the encoder is the backbone again"
    assert all(not p.requires_grad for p in enc.model.parameters())
    assert all(torch.equal(before[k], v) for k, v in enc.model.state_dict().items()), "the encoder's copy is frozen"
    assert all(torch.equal(before[k], v) for k, v in backbone.model.state_dict().items()), "the caller's backbone too"
    assert not enc.train().model.training, "the frozen backbone stays in eval mode (no dropout)"


def test_bad_arguments_are_refused_with_a_clear_error(backbone):
    with pytest.raises(ValueError, match="first_layer"):
        ada.AdaptedEncoder(backbone, first_layer=6)
    with pytest.raises(ValueError, match="positions"):
        ada.AdaptedEncoder(backbone, first_layer=5, positions=("mlp",))
    enc = ada.AdaptedEncoder(backbone, first_layer=5)
    sets = [ada.AdapterSet(len(enc.points), 384, 4) for _ in range(2)]
    with pytest.raises(ValueError, match="Fusion"):
        enc.plug(sets)
    x, y = synthetic_task(6, 3, seed=0)
    with pytest.raises(ValueError, match="selection"):
        ada.slot_scores("entropy", enc, sets, [[nn.Linear(384, 3)]] * 2, x, y, np.random.default_rng(0))
    with pytest.raises(ValueError, match="K=0"):
        ada.run_ada(enc, [(x, y)], [(x, y)], sets[:1], [nn.Linear(384, 3)], K=0, epochs=1, lr=1e-3)


def test_fusion_runs_every_adapter(backbone):
    enc = ada.AdaptedEncoder(backbone, first_layer=5)
    sets = [ada.AdapterSet(len(enc.points), 384, 4) for _ in range(3)]
    tok = backbones.tokenize(backbone, TEXTS[:2])
    calls = []
    for s in sets:
        s.blocks[0].register_forward_hook(lambda *a: calls.append(1))
    fus = [ada.Fusion(384) for _ in enc.points]
    with torch.no_grad():
        z = enc.plug(sets, fus).encode(tok["input_ids"], tok["attention_mask"])
    assert len(calls) == 3 and z.shape == (2, 384)
    enc.plug(sets[0])
    assert train.latency(lambda: enc.encode(tok["input_ids"], tok["attention_mask"]), repeats=2) > 0


def test_coding_rate_and_transrate_hand_worked():
    # Z = I_2 (n = d = 2): R = 1/2 logdet(I + 2/2 Z^T Z) = 1/2 log 4
    assert math.isclose(float(probes.coding_rate(torch.eye(2, dtype=torch.float64), 1.0)), 0.5 * math.log(4))
    # four points on the axes, two classes on two lines: R(Z) = log 5, R(Z_c) = log 3 each -> TrR = log(5/3)
    z = torch.tensor([[2.0, 0], [-2, 0], [0, 2], [0, -2]])
    y = torch.tensor([0, 0, 1, 1])
    assert math.isclose(probes.transrate(z, y), math.log(5 / 3), rel_tol=1e-9)
    # features that separate the classes transfer better than the same features with classes mixed
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    good = torch.nn.functional.one_hot(y, 8).float() * 3 + 0.3 * torch.randn(60, 8, generator=g)
    noise = torch.randn(60, 8, generator=g)
    assert probes.transrate(good, y) > probes.transrate(noise, y) + 0.3  # 1.17 vs 0.63
    assert probes.transrate(good, y) > probes.transrate(good, y[torch.randperm(60, generator=g)]) + 0.5  # vs 0.19


def test_leep_hand_worked():
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    # a source whose labels determine the target labels: P(y|z) = 1, LEEP = log 1 = 0
    sharp = torch.nn.functional.one_hot(torch.tensor([2, 0, 1, 2, 0, 1]), 3).float()
    assert math.isclose(probes.leep(sharp, y), 0.0, abs_tol=1e-12)
    # an uninformative source: P(y|z) is the prior 1/3, LEEP = log 1/3
    flat = torch.full((6, 4), 0.25)
    assert math.isclose(probes.leep(flat, y), math.log(1 / 3), rel_tol=1e-9)
    assert probes.leep(0.5 * sharp + 0.5 / 3, y) > probes.leep(flat[:, :3], y)


def test_centred_logits_sum_to_zero_per_head_and_ignore_a_shift():
    z = torch.randn(5, 7)
    h1, h2 = nn.Linear(7, 3), nn.Linear(7, 4)
    c = ada.centred_logits(z, [h1, h2])
    assert c.shape == (5, 7)
    assert torch.allclose(c[:, :3].sum(1), torch.zeros(5), atol=1e-5)
    assert torch.allclose(c[:, 3:].sum(1), torch.zeros(5), atol=1e-5)
    with torch.no_grad():
        h2.bias += 10.0
    assert torch.allclose(ada.centred_logits(z, [h1, h2]), c, atol=1e-4)


def test_distillation_moves_the_student_towards_both_teachers_and_leaves_them_alone(backbone):
    torch.manual_seed(0)
    enc = ada.AdaptedEncoder(backbone, first_layer=5)
    x, y = synthetic_task(16, 3, seed=1)
    old, new = ada.AdapterSet(len(enc.points), 384, 8), ada.AdapterSet(len(enc.points), 384, 8)
    h_old, h_new = nn.Linear(384, 3), nn.Linear(384, 3)
    ada.train_task(enc, old, h_old, x, y, epochs=3, lr=1e-2, lr_head=1e-2, batch_size=8, seed=0)
    ada.train_task(enc, new, h_new, x, (y + 1) % 3, epochs=3, lr=1e-2, lr_head=1e-2, batch_size=8, seed=1)
    snap = [p.clone() for m in (old, new, h_old, h_new) for p in m.parameters()]
    with torch.no_grad():
        target = torch.cat([ada.centred_logits(ada.embed(enc, old, x), [h_old]),
                            ada.centred_logits(ada.embed(enc, new, x), [h_new])], 1)

    @torch.no_grad()
    def err(a: ada.AdapterSet) -> float:
        return float(((ada.centred_logits(ada.embed(enc, a, x), [h_old, h_new]) - target) ** 2).mean())

    student = ada.distil(enc, old, [h_old], new, h_new, x, epochs=20, lr=1e-2, batch_size=8)
    assert err(student) < 0.5 * err(old), (err(student), err(old))
    after = [p for m in (old, new, h_old, h_new) for p in m.parameters()]
    assert all(torch.equal(p, q) for p, q in zip(snap, after)), "teachers and heads must not change"


def test_pool_never_exceeds_K_and_tasks_follow_their_slot(backbone, monkeypatch):
    enc = ada.AdaptedEncoder(backbone, first_layer=5)
    T, K = 5, 2
    tasks = [synthetic_task(6, 3, seed=t) for t in range(T)]
    adapters = [ada.AdapterSet(len(enc.points), 384, 4) for _ in range(T)]
    for a in adapters:  # non-identity adapters, so that merges change something
        for p in a.parameters():
            nn.init.normal_(p, std=0.05)
    heads = [nn.Linear(384, 3) for _ in range(T)]
    snap = [[p.clone() for p in a.parameters()] for a in adapters]
    # scores fixed by hand (0-based): task 2 prefers slot 1, task 3 slot 0, task 4 slot 1
    wanted = iter([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    monkeypatch.setattr(ada, "slot_scores", lambda *args: next(wanted))
    res = ada.run_ada(enc, tasks, tasks, adapters, heads, K=K, epochs=1, lr=1e-3, batch_size=4)
    assert res.slots == [[0], [0, 1], [0, 1, 1], [0, 1, 1, 0], [0, 1, 1, 0, 1]]
    assert len(res.pool) == K
    assert res.params[K - 1] == res.params[-1] - (T - K) * train.n_params(heads[0]), "only heads grow once full"
    assert res.pool[0] is not adapters[0] and res.pool[1] is not adapters[1], "both slots were distilled"
    # task 0 (slot 0) is re-tested only after task 3 merges into slot 0; task 1 (slot 1) after tasks 2 and 4
    R = res.R
    assert R[1, 0] == R[2, 0] and R[3, 1] == R[2, 1]
    assert all(torch.equal(p, q) for a, s in zip(adapters, snap) for p, q in zip(a.parameters(), s)), \
        "the per-task adapters handed to ADA are never modified"


def test_keep_old_trains_a_new_head_on_the_kept_adapter(backbone):
    """The fair 'distillation off' variant: the slot keeps the old adapter and the new task's head is refitted to
    it; the caller's heads are never replaced in place, and the task uses the refitted head."""
    enc = ada.AdaptedEncoder(backbone, first_layer=5)
    tasks = [synthetic_task(6, 3, seed=t) for t in range(2)]
    adapters = [ada.AdapterSet(len(enc.points), 384, 4) for _ in range(2)]
    heads = [nn.Linear(384, 3) for _ in range(2)]
    before = heads[1].weight.detach().clone()
    merge = functools.partial(ada.keep_old, head_epochs=30, lr_head=0.05)
    res = ada.run_ada(enc, tasks, tasks, adapters, heads, K=1, epochs=1, lr=1e-3, batch_size=4, merge=merge)
    assert res.pool[0] is adapters[0], "the slot keeps the old adapter"
    assert res.heads[1] is not heads[1] and torch.equal(heads[1].weight, before), "the caller's head is untouched"
    x, y = tasks[1]
    assert res.R[1, 1] == ada.accuracy(enc, adapters[0], res.heads[1], x, y) == 1.0, \
        "the new task is tested with the head refitted on the kept adapter (30 epochs fit 6 examples)"
