"""ConFiT: cross-convolution BN mean recovery, per-task BN statistics, hierarchical stages."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cl_lib.methods import confit


def centred_input(n: int, c: int, h: int, w: int, channel_mean: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Random images whose batch mean at every pixel of channel k is exactly channel_mean[k]."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    noise = noise - noise.mean(0, keepdim=True)
    return noise + channel_mean.view(1, -1, 1, 1)


def test_recovered_mean_matches_empirical_conv_output_mean():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False).double()
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    x = centred_input(64, 3, 9, 9, mu)
    empirical = conv(x).mean((0, 2, 3))
    recovered = confit.xconv_mean(conv, mu.view(3, 1, 1), (9, 9))
    assert torch.allclose(recovered, empirical, atol=1e-10)
    # Interior pixels: the paper's formula sum_c (sum_uv W[o, c, u, v]) mu[c], exactly.
    interior = conv(x).mean(0)[:, 1:-1, 1:-1]
    formula = (conv.weight.sum((2, 3)) @ mu).view(5, 1, 1)
    assert torch.allclose(interior, formula.expand_as(interior), atol=1e-10)
    # Borders lose the taps that fall on the zero padding: the whole-map mean differs from the formula.
    assert not torch.allclose(recovered, formula.flatten(), atol=1e-3)
    corner = (conv.weight[:, :, 1:, 1:].sum((2, 3)) @ mu)  # top-left output sees only the lower-right 2x2 taps
    assert torch.allclose(conv(x).mean(0)[:, 0, 0], corner, atol=1e-10)


def test_stride2_phase_means_and_recovery():
    x = torch.zeros(2, 1, 4, 4)
    x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2] = 1.0, 2.0, 3.0, 4.0
    pm = confit.phase_means(x, (2, 2))
    assert pm.shape == (1, 2, 2)
    assert pm.flatten().tolist() == [1.0, 2.0, 3.0, 4.0]
    assert torch.equal(confit.phase_fill(pm, (4, 4)), x[:1])
    assert torch.equal(confit.phase_fill(pm, (3, 5))[0, 0], x[0, 0, :3, [0, 1, 0, 1, 0]])
    # A stride-2 conv sees each input phase at fixed taps: one mean per channel would be wrong, per phase is exact.
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=True).double()
    phase_mu = torch.randn(2, 2, 2, dtype=torch.float64) * 3
    x = centred_input(32, 2, 8, 8, torch.zeros(2)) + confit.phase_fill(phase_mu, (8, 8))
    empirical = conv(x).mean((0, 2, 3))
    assert torch.allclose(confit.phase_means(x, (2, 2)), phase_mu, atol=1e-10)
    assert torch.allclose(confit.xconv_mean(conv, phase_mu, (8, 8)), empirical, atol=1e-10)
    pooled = phase_mu.mean((1, 2)).view(2, 1, 1)
    assert not torch.allclose(confit.xconv_mean(conv, pooled, (8, 8)), empirical, atol=1e-3)


def test_depthwise_and_tf_same_padding_convs():
    from timm.layers import Conv2dSame

    torch.manual_seed(2)
    mu = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False).double()
    x = centred_input(16, 4, 7, 7, mu)
    assert torch.allclose(confit.xconv_mean(dw, mu.view(4, 1, 1), (7, 7)), dw(x).mean((0, 2, 3)), atol=1e-10)
    # Depthwise: output channel k depends on input channel k only.
    interior = dw(x).mean(0)[:, 3, 3]
    assert torch.allclose(interior, dw.weight.sum((1, 2, 3)) * mu, atol=1e-10)
    same = Conv2dSame(4, 6, 3, stride=2, bias=False).double()  # pads asymmetrically, at run time
    phase_mu = torch.randn(4, 2, 2, dtype=torch.float64)
    x = centred_input(16, 4, 9, 9, torch.zeros(4), seed=3) + confit.phase_fill(phase_mu, (9, 9))
    assert torch.allclose(confit.xconv_mean(same, phase_mu, (9, 9)), same(x).mean((0, 2, 3)), atol=1e-10)


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8)
        self.bn_free = nn.BatchNorm2d(8)  # fed by a ReLU, not by a conv: no Xconv pair
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn_free(F.relu(self.bn2(self.conv2(h))))
        return self.fc(h.mean((2, 3)))



def test_channels_last_pairs_phase_means_and_recovery():
    """The book's images arrive in NHWC memory order (a permute of uint8 HWC arrays), so its convs run channels_last:
    the pairs, phase means and Xconv must not depend on the memory order."""
    torch.manual_seed(4)
    net = TinyNet().double()
    x = torch.randn(2, 3, 10, 12, dtype=torch.float64)
    nhwc = TinyNet().double()
    nhwc.load_state_dict(net.state_dict())
    nhwc.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    key = lambda ps: [(p.conv_name, p.bn_name, p.input_hw, p.period) for p in ps]  # noqa: E731
    assert key(confit.find_conv_bn(nhwc, x_cl)) == key(confit.find_conv_bn(net, x))
    phase_mu = torch.randn(3, 2, 2, dtype=torch.float64)
    xs = (centred_input(8, 3, 10, 12, torch.zeros(3), seed=5) + confit.phase_fill(phase_mu, (10, 12)))
    xs_cl = xs.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(confit.phase_means(xs_cl, (2, 2)), phase_mu, atol=1e-10)
    assert torch.allclose(confit.xconv_mean(nhwc.conv1, phase_mu, (10, 12)), nhwc.conv1(xs_cl).mean((0, 2, 3)), atol=1e-10)

def test_pairs_found_from_forward_order_with_shapes():
    net = TinyNet()
    pairs = confit.find_conv_bn(net, torch.randn(2, 3, 10, 12))
    assert [(p.conv_name, p.bn_name, p.input_hw, p.period) for p in pairs] == [
        ("conv1", "bn1", (10, 12), (2, 2)), ("conv2", "bn2", (5, 6), (1, 1))]
    with pytest.raises(ValueError, match="BatchNorm"):
        confit.find_conv_bn(nn.Sequential(nn.Conv2d(3, 3, 1)), torch.randn(1, 3, 4, 4))


def test_tracker_updates_in_train_mode_only_and_stats_restore_without_trace():
    torch.manual_seed(0)
    net = TinyNet()
    cf = confit.ConFiT.attach(net, torch.randn(2, 3, 8, 8))
    assert cf.tracker.means == {}
    net.eval()
    net(torch.randn(4, 3, 8, 8))
    assert cf.tracker.means == {}  # eval passes leave the tracker alone
    net.train()
    xa = torch.randn(4, 3, 8, 8) + 1.0
    net(xa)
    assert torch.allclose(cf.tracker.means["conv1"], confit.phase_means(xa, (2, 2)))  # first batch: its mean
    for k, shift in enumerate((2.0, -3.0)):
        for _ in range(3):
            net(torch.randn(4, 3, 8, 8) + shift)
        with torch.no_grad():
            for m in confit.bn_layers(net).values():
                m.weight.add_(k + 1.0)
        cf.end_task()
    a, b = cf.tasks
    with torch.no_grad():
        for m in confit.bn_layers(net).values():
            m.weight.mul_(10.0)
            m.running_var.add_(5.0)
    live = confit.snapshot(net)
    with cf.for_task(0, "stale"):
        for name, m in confit.bn_layers(net).items():
            for key in confit.BN_KEYS:
                assert torch.equal(getattr(m, key), a.bn[name][key])
    # Restore task 0's stats, then task 1's: nothing of task 0 remains.
    confit.restore(net, a, cf.pairs)
    confit.restore(net, b)
    for name, m in confit.bn_layers(net).items():
        for key in confit.BN_KEYS:
            assert torch.equal(getattr(m, key), b.bn[name][key])
    # Leaving a context gives back the live state exactly.
    confit.restore(net, live)
    with cf.for_task(0, "xconv"):
        expected = confit.xconv_mean(net.conv2, a.input_mean["conv2"], (4, 4))
        assert torch.allclose(net.bn2.running_mean, expected)
        assert torch.equal(net.bn_free.running_mean, a.bn["bn_free"]["running_mean"])  # unpaired: stale
        assert torch.equal(net.bn2.running_var, a.bn["bn2"]["running_var"])  # variances are never recovered
    for name, m in confit.bn_layers(net).items():
        for key in confit.BN_KEYS:
            assert torch.equal(getattr(m, key), live.bn[name][key])
    with cf.for_task(1, "xconv"):  # the last task trained uses its stored stats as they are
        assert torch.equal(net.bn2.running_mean, b.bn["bn2"]["running_mean"])
    with pytest.raises(ValueError, match="mode"):
        cf.for_task(0, "fresh")
    with pytest.raises(IndexError, match="end_task"):
        cf.for_task(5, "stale")


def test_storage_counts_bn_affine_variance_and_input_means():
    net = TinyNet()
    cf = confit.ConFiT.attach(net, torch.randn(2, 3, 8, 8))
    net.train()
    net(torch.randn(4, 3, 8, 8))
    cf.end_task()
    # 3 BNs x 8 channels x (scale, shift, var) + conv1 input 3 ch x 4 phases + conv2 input 8 ch x 1 phase
    assert confit.storage_per_task(cf.tasks[0]) == 3 * 8 * 3 + 3 * 4 + 8
    assert confit.storage_per_task(cf.tasks[0], recovered_means=False) == 3 * 8 * 4 + 3 * 4 + 8


def test_true_bn_means_are_batch_means_and_leave_model_unchanged():
    torch.manual_seed(0)
    net = TinyNet().eval()
    x = torch.randn(6, 3, 8, 8) + 0.7
    before = confit.snapshot(net)
    true = confit.true_bn_means(net, x)
    assert torch.allclose(true["bn1"], net.conv1(x).mean((0, 2, 3)), atol=1e-6)
    for name, m in confit.bn_layers(net).items():
        assert torch.equal(m.running_mean, before.bn[name]["running_mean"])


@pytest.mark.parametrize("epochs, expected", [(10, [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]), (5, [0, 1, 2, 2, 2]),
                                              (4, [0, 0, 2, 2]), (3, [0, 2, 2]), (2, [0, 2]), (1, [0]),
                                              (7, [0, 1, 1, 2, 2, 2, 2])])
def test_stage_boundaries(epochs, expected):
    assert [confit.stage(e, epochs) for e in range(epochs)] == expected


def test_staged_optimiser_trains_exactly_its_stage():
    torch.manual_seed(0)
    net = TinyNet()
    with torch.no_grad():  # non-trivial BN affine parameters (at 1 and 0 a scale's gradient can vanish)
        for m in confit.bn_layers(net).values():
            m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
    head = net.fc
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,))
    bn_names = {f"{n}.{k}" for n in confit.bn_layers(net) for k in ("weight", "bias")}
    schedule = confit.hierarchical_schedule(net, head, 10)
    for epoch, trained in [(0, {"fc.weight", "fc.bias"}), (2, {"fc.weight", "fc.bias"} | bn_names),
                           (5, {n for n, _ in net.named_parameters()})]:
        schedule(epoch)
        before = {n: p.detach().clone() for n, p in net.named_parameters()}
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
        changed = {n for n, p in net.named_parameters() if not torch.equal(p, before[n])}
        assert changed == trained, (epoch, changed ^ trained)
    with pytest.raises(ValueError, match="epoch"):
        confit.hierarchical_schedule(net, head, 0)


@pytest.mark.parametrize("hierarchical", [False, True])
def test_fine_tune_stream_fills_the_lower_triangle_and_stores_every_task(hierarchical):
    torch.manual_seed(0)
    net = TinyNet()  # its 4-way classifier `fc`: two tasks of two classes
    x = torch.randn(16, 3, 8, 8)
    cft = confit.ConFiT.attach(net, x[:2])
    sets = [(x[:8], torch.tensor([0, 1] * 4)), (x[8:], torch.tensor([2, 3] * 4))]
    convs0 = {n: m.weight.detach().clone() for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    after = []
    R = confit.fine_tune_stream(cft, net.fc, sets, sets, [slice(0, 2), slice(2, 4)], hierarchical=hierarchical,
                                epochs=1, lr=0.1, momentum=0.0, batch_size=4, transform=None, seed=0,
                                modes=("xconv",), last_modes=("shared", "stale", "xconv"), after_task=after.append)
    assert after == [0, 1] and len(cft.tasks) == 2
    assert set(R) == {"xconv", "shared", "stale"}
    assert not np.isnan(R["xconv"][np.tril_indices(2)]).any() and np.isnan(R["xconv"][0, 1])
    assert np.isnan(R["shared"][0]).all() and not np.isnan(R["shared"][1]).any()  # the last row only
    assert all(p.requires_grad for p in net.parameters())  # stages undone after each task
    for mode in ("shared", "stale", "xconv"):  # the diagonal, evaluated once: each mode's own evaluation agrees
        with cft.for_task(1, mode):
            assert R[mode][1, 1] == confit.train.accuracy(net, *sets[1], classes=slice(2, 4))
    moved = any(not torch.equal(m.weight, convs0[n]) for n, m in net.named_modules() if isinstance(m, nn.Conv2d))
    # One epoch of hierarchical fine-tuning trains only the classifier (the authors' schedule); naive moves the convs.
    assert moved != hierarchical


def test_fine_tune_stream_with_a_body_learning_rate_of_its_own():
    """SLCA's split (chapter 06): with lr_body = 0 only the head's weights move (BN statistics still update); with
    lr_body = lr the run is plain fine-tuning, step for step."""
    def run(lr_body):
        torch.manual_seed(0)
        net = TinyNet()
        x = torch.randn(16, 3, 8, 8)
        cft = confit.ConFiT.attach(net, x[:2])
        sets = [(x[:8], torch.tensor([0, 1] * 4)), (x[8:], torch.tensor([2, 3] * 4))]
        before = {n: p.detach().clone() for n, p in net.named_parameters()}
        confit.fine_tune_stream(cft, net.fc, sets, sets, [slice(0, 2), slice(2, 4)], hierarchical=False, epochs=1,
                                lr=0.1, momentum=0.9, batch_size=4, transform=None, seed=0, modes=("shared",),
                                lr_body=lr_body)
        return before, {n: p.detach() for n, p in net.named_parameters()}

    before, frozen = run(0.0)
    assert {n for n in before if not torch.equal(before[n], frozen[n])} == {"fc.weight", "fc.bias"}
    _, split = run(0.1)
    _, plain = run(None)
    assert all(torch.equal(split[n], plain[n]) for n in plain)
