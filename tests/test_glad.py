"""The book's ViT (attention maps, rollout, distance, weights file) and GLAD-style attention adaptors."""
import pytest
import torch
from torch import nn

from cl_lib import vit
from cl_lib.methods import glad

CFG = vit.ViTConfig(img_size=8, patch=2, dim=16, depth=2, heads=2, mlp_ratio=2.0)


def small(seed=0):
    torch.manual_seed(seed)
    model = vit.VisionTransformer(CFG)
    for p in model.parameters():  # larger weights than the init, so attention is far from uniform
        p.data.add_(0.3 * torch.randn_like(p))
    return model


def test_attention_rows_sum_to_one_and_shapes():
    model, x = small(), torch.randn(3, 3, 8, 8)
    maps = vit.attention_maps(model, x)
    assert len(maps) == CFG.depth
    for a in maps:
        assert a.shape == (3, CFG.heads, 1 + 16, 1 + 16)
        assert torch.allclose(a.sum(-1), torch.ones(3, CFG.heads, 17), atol=1e-5)
        assert (a >= 0).all()
    assert all(blk.attn.attn is None and not blk.attn.keep_attn for blk in model.blocks)  # nothing left behind
    roll = vit.attention_rollout(maps)
    assert torch.allclose(roll.sum(-1), torch.ones(3, 17), atol=1e-5)


def test_rollout_of_identity_attention_is_identity():
    eye = torch.eye(5).expand(1, 2, 5, 5)
    assert torch.allclose(vit.attention_rollout([eye, eye, eye]), torch.eye(5).unsqueeze(0))


def test_mean_attention_distance_hand_worked():
    # 2x2 grid, patch 3 px; every patch attends only to its right/left neighbour → distance 3 px
    a = torch.zeros(1, 1, 5, 5)
    for q, k in [(1, 2), (2, 1), (3, 4), (4, 3)]:
        a[0, 0, q, k] = 1.0
    a[0, 0, 0, 0] = 1.0
    assert vit.mean_attention_distance([a], grid=2, patch=3).item() == pytest.approx(3.0)
    uniform = torch.full((1, 1, 5, 5), 0.2)  # CLS column dropped, rows renormalised over 4 patches
    expected = (0 + 3 + 3 + 3 * 2 ** 0.5) / 4
    assert vit.mean_attention_distance([uniform], grid=2, patch=3).item() == pytest.approx(expected, rel=1e-5)


def test_identity_adaptors_reproduce_the_base_attention_exactly():
    model, x = small(), torch.randn(2, 3, 8, 8)
    before, out_before = vit.attention_maps(model, x), model(x)
    glad.add_glad(model)
    after, out_after = vit.attention_maps(model, x), model(x)
    for a, b in zip(before, after):
        assert torch.equal(a, b)
    assert torch.equal(out_before, out_after)


def test_add_glad_freezes_the_backbone_and_counts_parameters():
    model = small()
    new = glad.add_glad(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in new}
    per_layer = CFG.heads * (1 + 1 + 16) + 2 * CFG.heads * (CFG.dim // CFG.heads)  # γ, β over 17 keys, scale, shift
    assert sum(p.numel() for p in new) == CFG.depth * per_layer
    assert glad.temperatures(model).shape == (CFG.depth, CFG.heads)


def test_adaptor_free_path_is_unchanged_by_glad_training():
    model, x, y = small(), torch.randn(16, 3, 8, 8), torch.arange(16) % 3
    reference = small()  # same seed: the untouched backbone
    adaptors = glad.add_glad(model)
    head = nn.Linear(model.num_features, 3)
    opt = torch.optim.Adam(adaptors + list(head.parameters()), lr=0.05)
    for _ in range(8):
        loss = nn.functional.cross_entropy(head(model(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # the adaptors did move, and the adapted model differs from the backbone ...
    assert (glad.temperatures(model) - 1).abs().max() > 1e-3
    assert not torch.allclose(model(x), reference(x))
    # ... but without them it is the backbone, bit for bit
    with glad.adaptor_free(model):
        assert torch.equal(model(x), reference(x))
    assert model.blocks[0].attn.adapt  # restored after the block
    for k, v in reference.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)


def test_logit_adaptor_temperature_sharpens_attention():
    logits = torch.tensor([[[[1.0, 0.0, -1.0]]]])
    ad = glad.LogitAdaptor(heads=1, tokens=3)
    with torch.no_grad():
        ad.gamma.fill_(3.0)
    p0, p1 = logits.softmax(-1), ad(logits).softmax(-1)
    assert p1.max() > p0.max()  # more discrete
    ent = lambda p: -(p * p.log()).sum()
    assert ent(p1) < ent(p0)


def test_weights_roundtrip_with_checksum(tmp_path):
    model, x = small(), torch.randn(2, 3, 8, 8)
    path = tmp_path / "vit.pt"
    sha = vit.save_weights(model, path)
    assert len(sha) == 64
    loaded = vit.load_weights(path, sha)
    assert loaded.cfg == CFG
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match="SHA-256"):
        vit.load_weights(path, "0" * 64)
    with pytest.raises(FileNotFoundError, match="chapter 01"):
        vit.load_weights(tmp_path / "missing.pt")


def test_bad_shapes_give_clear_errors():
    with pytest.raises(ValueError, match="multiple of patch"):
        vit.ViTConfig(img_size=10, patch=4)
    with pytest.raises(ValueError, match="divisible by heads"):
        vit.ViTConfig(dim=10, heads=4)
    with pytest.raises(ValueError, match="resize"):
        small()(torch.randn(1, 3, 16, 16))


def test_soft_constraint_trains_the_backbone_and_pull_is_the_squared_distance():
    model = small()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    adaptors = glad.add_glad(model, freeze=False)
    assert all(p.requires_grad for p in model.parameters())
    assert glad.pull(model, reference).item() == 0.0  # at θ₀ the penalty is zero, adaptors do not count
    with torch.no_grad():
        model.blocks[0].attn.qkv.weight[0, :3] += torch.tensor([1.0, 2.0, 2.0])  # moved by a vector of norm 3
        adaptors[0].add_(5.0)  # adaptors are not part of the backbone: no pull on them
    assert glad.pull(model, reference).item() == pytest.approx(9.0)


def test_a_pull_keeps_the_backbone_near_its_start():
    """Fine-tuning with penalty λ‖θ − θ₀‖² ends nearer θ₀ than the same steps without it."""
    from cl_lib import train
    x, y = torch.randn(64, 3, 8, 8), torch.randint(0, 3, (64,))
    moved = {}
    for lam in (0.0, 10.0):
        model = small()
        reference = {k: v.clone() for k, v in model.state_dict().items()}
        glad.add_glad(model, freeze=False)
        net = nn.Sequential(model, nn.Linear(model.num_features, 3))
        train.fit(net, x, y, epochs=3, batch_size=16, optimizer=torch.optim.SGD(net.parameters(), lr=0.05),
                  penalty=(lambda m=model, r=reference, l=lam: l * glad.pull(m, r)) if lam else None)
        moved[lam] = glad.pull(model, reference).item()
    assert moved[0.0] > 0 and moved[10.0] < 0.5 * moved[0.0]


def test_probe_head_is_the_standardised_probe_on_raw_features():
    from cl_lib import probes
    torch.manual_seed(0)
    z = torch.randn(60, 5) * torch.tensor([1.0, 10.0, 0.1, 3.0, 1.0]) + 4.0
    y = torch.randint(0, 3, (60,))
    mu, sd = z.mean(0), z.std(0) + 1e-6
    clf = probes.fit_linear((z - mu) / sd, y, 3, steps=50)
    head = probes.probe_head(z, y, 3, steps=50)
    assert torch.allclose(head(z), clf((z - mu) / sd), atol=1e-4)
    acc = (head(z).argmax(1) == y).float().mean().item()
    assert acc == probes.linear_probe_accuracy(z, y, z, y, steps=50)
