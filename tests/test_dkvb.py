"""The Discrete Key-Value Bottleneck: snapping, EMA k-means keys, localized value updates, masking."""
import pytest
import torch
import torch.nn.functional as F

from cl_lib import train
from cl_lib.methods import dkvb


def small(C: int = 3, N: int = 5, dk: int = 2, m: int = 6, dv: int = 4, seed: int = 0) -> dkvb.Bottleneck:
    g = torch.Generator().manual_seed(seed)
    return dkvb.Bottleneck(dkvb.random_projections(m, C, dk, seed), torch.randn(C, N, dk, generator=g),
                           torch.zeros(C, N, dv), torch.zeros(C, N))


def test_snap_picks_nearest_key_by_hand():
    keys = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]])  # one codebook, three keys
    heads = torch.tensor([[[0.9, 0.2]], [[0.1, 1.2]], [[-0.3, 0.1]], [[0.2, 0.9]]])  # (B=4, C=1, 2)
    # squared distances: (0.9,0.2): 0.85, 0.05, 3.25 → 1;  (0.1,1.2): 1.45, 2.25, 0.65 → 2;
    # (-0.3,0.1): 0.10, 1.70, 3.70 → 0;  (0.2,0.9): 0.85, 1.45, 1.25 → 0
    assert dkvb.snap(heads, keys).squeeze(1).tolist() == [1, 2, 0, 0]


def test_snap_matches_brute_force_and_chunking():
    b = small(C=4, N=7, dk=3)
    h = torch.randn(50, 4, 3)
    brute = ((h[:, :, None, :] - b.keys[None]) ** 2).sum(-1).argmin(-1)
    assert torch.equal(dkvb.snap(h, b.keys), brute)
    assert torch.equal(dkvb.snap(h, b.keys, max_elements=4 * 7 * 3), brute)


def test_masked_keys_are_never_selected():
    b = small(C=2, N=6, dk=2)
    allowed = torch.zeros(2, 6, dtype=torch.bool)
    allowed[0, [1, 4]] = True
    allowed[1, 5] = True
    idx = dkvb.snap(torch.randn(200, 2, 2), b.keys, allowed)
    assert set(idx[:, 0].tolist()) <= {1, 4} and set(idx[:, 1].tolist()) == {5}
    # through forward: only keys with a usage count may be fetched
    b.counts[:] = allowed.float()
    z = torch.randn(100, 6)
    assert allowed[torch.arange(2), dkvb.key_indices(b, z, masked=True)].all()
    with pytest.raises(ValueError, match="at least one allowed key"):
        dkvb.snap(torch.randn(3, 2, 2), b.keys, torch.zeros(2, 6, dtype=torch.bool))


def test_projection_columns_have_unit_norm_and_identity_split():
    p = dkvb.random_projections(10, 4, 3, seed=1)
    assert p.shape == (4, 10, 3)
    assert torch.allclose(p.norm(dim=1), torch.ones(4, 3), atol=1e-6)
    assert torch.equal(p, dkvb.random_projections(10, 4, 3, seed=1))  # seeded
    z = torch.arange(6.0)[None]
    heads = dkvb.project(z, dkvb.random_projections(6, 3, 2, identity=True))
    assert heads.tolist() == [[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]]
    with pytest.raises(ValueError, match="m = C"):
        dkvb.random_projections(7, 3, 2, identity=True)
    with pytest.raises(ValueError, match="features of shape"):
        dkvb.project(torch.randn(2, 5), p)


def test_decode_is_the_mean_of_fetched_values():
    values = torch.zeros(2, 3, 2)
    values[0, 1] = torch.tensor([2.0, 0.0])
    values[1, 2] = torch.tensor([0.0, 4.0])
    values[1, 0] = torch.tensor([6.0, 6.0])
    idx = torch.tensor([[1, 2], [1, 0]])
    assert dkvb.decode(values, idx).tolist() == [[1.0, 2.0], [4.0, 3.0]]


def test_ema_kmeans_finds_two_clusters_and_reseeds_dead_keys():
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([0.0, 0.0]) + 0.05 * torch.randn(500, 2, generator=g)
    b = torch.tensor([5.0, 5.0]) + 0.05 * torch.randn(500, 2, generator=g)
    x = torch.cat([a, b])[:, None, :]  # (n, C=1, d_k=2)
    keys = dkvb.ema_kmeans(x, 2, steps=200, batch_size=64, seed=3)[0]
    keys = keys[keys[:, 0].argsort()]
    assert torch.allclose(keys, torch.tensor([[0.0, 0.0], [5.0, 5.0]]), atol=0.1)
    # many keys for two clusters: every key ends on the data (dead keys are re-seeded onto batch vectors)
    keys = dkvb.ema_kmeans(x, 8, steps=100, batch_size=64, seed=3)[0]
    near = torch.minimum((keys - torch.tensor([0.0, 0.0])).norm(dim=1), (keys - torch.tensor([5.0, 5.0])).norm(dim=1))
    assert (near < 0.3).all()


def test_value_training_leaves_keys_frozen_and_updates_only_fetched_rows():
    b = small(C=3, N=8, dk=2, m=6, dv=4)
    keys, proj = b.keys.clone(), b.proj.clone()
    z = torch.randn(20, 6)
    idx = dkvb.key_indices(b, z)
    dkvb.train_values(b, idx, torch.randint(0, 4, (20,)), epochs=5, batch_size=8)
    assert torch.equal(b.keys, keys) and torch.equal(b.proj, proj)
    fetched = torch.zeros(3, 8, dtype=torch.bool)
    fetched[torch.arange(3), idx] = True
    assert (b.values[~fetched] == 0).all() and (b.values[fetched] != 0).any()
    assert torch.equal(b.counts > 0, fetched)
    assert b.counts.sum() == 20 * 3  # one count per example and codebook


def test_localized_update_leaves_unrelated_inputs_unchanged():
    # identity split, two codebooks; half of each codebook's keys near (+5, +5), half near (-5, -5)
    g = torch.Generator().manual_seed(5)
    keys = torch.cat([5 + torch.randn(2, 5, 2, generator=g), -5 + torch.randn(2, 5, 2, generator=g)], 1)
    b = dkvb.Bottleneck(dkvb.random_projections(4, 2, 2, identity=True), keys, torch.zeros(2, 10, 3), torch.zeros(2, 10))
    z_old, z_new = 5 + torch.randn(30, 4, generator=g), -5 + torch.randn(30, 4, generator=g)
    i_old, i_new = dkvb.key_indices(b, z_old), dkvb.key_indices(b, z_new)
    assert (i_old < 5).all() and (i_new >= 5).all()  # the two groups fetch disjoint keys
    dkvb.train_values(b, i_old, torch.zeros(30, dtype=torch.long), epochs=20)
    before = dkvb.decode(b.values, i_old)
    assert (before.argmax(1) == 0).all()
    dkvb.train_values(b, i_new, torch.full((30,), 2), epochs=20)  # a new class, on other keys
    assert torch.equal(dkvb.decode(b.values, i_old), before)  # the old inputs' logits did not move at all
    assert (dkvb.decode(b.values, i_new).argmax(1) == 2).all()
    # new data that fetches the old keys does move the old inputs' logits: locality, not magic
    dkvb.train_values(b, i_old[:5], torch.full((5,), 1), epochs=1)
    assert not torch.equal(dkvb.decode(b.values, i_old), before)


def test_index_training_equals_full_forward_and_autograd_step():
    b = small(C=4, N=6, dk=3, m=8, dv=5, seed=2)
    b.values.normal_()
    z, y = torch.randn(16, 8), torch.randint(0, 5, (16,))
    # cached indices give the same logits as the full forward pass
    assert torch.allclose(dkvb.decode(b.values, dkvb.key_indices(b, z)), dkvb.forward(b, z, masked=False))
    # one step on indices = one plain SGD step with global grad-norm clipping on the whole table
    table = b.values.clone().requires_grad_()
    loss = F.cross_entropy(dkvb.decode(table, dkvb.key_indices(b, z)), y, label_smoothing=0.1)
    loss.backward()
    grad = table.grad * min(1.0, 0.05 / table.grad.norm().item())
    expected = table.detach() - 0.3 * grad
    dkvb.train_values(b, dkvb.key_indices(b, z), y, epochs=1, lr=0.3, batch_size=16, clip=0.05)
    assert torch.allclose(b.values, expected, atol=1e-6)


def test_training_learns_and_votes():
    b = small(C=8, N=16, dk=2, m=4, dv=2, seed=1)
    z = torch.cat([torch.randn(40, 4) + 3, torch.randn(40, 4) - 3])
    y = torch.arange(2).repeat_interleave(40)
    hist = dkvb.train_values(b, dkvb.key_indices(b, z), y, epochs=200, lr=3.0, batch_size=80)
    assert hist[-1] < hist[0]
    assert (dkvb.forward(b, z).argmax(1) == y).float().mean() > 0.95
    votes = dkvb.key_votes(b)
    assert ((votes == -1) == (b.counts == 0)).all()


def test_bad_input_is_named():
    b = small()
    idx = dkvb.key_indices(b, torch.randn(4, 6))
    with pytest.raises(ValueError, match="labels"):
        dkvb.train_values(b, idx, torch.zeros(3, dtype=torch.long), epochs=1)
    with pytest.raises(ValueError, match=r"Labels must lie in \[0, 4\)"):
        dkvb.train_values(b, idx, torch.tensor([0, 1, 2, 7]), epochs=1)


def test_snap_update_equals_snapping_to_the_keys_allowed_so_far():
    g = torch.Generator().manual_seed(0)
    keys, heads = torch.randn(5, 40, 3, generator=g), torch.randn(33, 5, 3, generator=g)
    allowed, best = torch.zeros(5, 40, dtype=torch.bool), None
    for step in range(4):  # keys become allowed in four growing steps, every codebook from the first
        grow = torch.rand(5, 40, generator=g) < 0.15
        grow[:, step] = True
        best = dkvb.snap_update(heads, keys, grow & ~allowed, best, max_elements=50)  # several chunks
        allowed |= grow
        assert torch.equal(best[0], dkvb.snap(heads, keys, allowed))
    assert torch.equal(dkvb.snap_update(heads, keys, torch.zeros_like(allowed), best)[0], best[0])  # nothing new
    with pytest.raises(ValueError, match="at least one allowed key"):
        only_first = torch.zeros(5, 40, dtype=torch.bool)
        only_first[0, 0] = True
        dkvb.snap_update(heads, keys, only_first)


def test_one_hot_linear_without_bias_under_sgd_is_dkvb_value_training():
    """The decomposition's corner: SGD on a bias-free linear layer over the one-hot codes, with DKVB's loss, clip
    and learning rate, takes exactly DKVB's steps (only the fetched rows move)."""
    torch.manual_seed(0)
    C, N, dv, n = 4, 6, 3, 20
    idx = torch.randint(0, N, (n, C))
    y = torch.randint(0, dv, (n,))
    b = dkvb.Bottleneck(torch.randn(C, 5, 2), torch.randn(C, N, 2), torch.zeros(C, N, dv), torch.zeros(C, N))
    dkvb.train_values(b, idx, y, epochs=2, lr=0.3, batch_size=8, clip=1.0, label_smoothing=0.1, seed=3)
    lin = dkvb.OneHotLinear(C, N, dv, bias=False)
    train.fit(lin, idx, y, epochs=2, batch_size=8, seed=3, clip=1.0, label_smoothing=0.1,
              optimizer=train.make_optimizer(lin.parameters(), "sgd", lr=0.3, momentum=0.0))
    assert torch.allclose(lin.scores.weight.view(C, N, dv), b.values, atol=1e-6)
    untouched = torch.ones(C * N, dtype=torch.bool)
    untouched[dkvb.flat_index(idx, N).flatten()] = False
    assert torch.all(lin.scores.weight[untouched] == 0), "keys never fetched are never moved"
    with_bias = dkvb.OneHotLinear(C, N, dv, bias=True)
    assert with_bias(idx).shape == (n, dv) and with_bias.bias is not None
