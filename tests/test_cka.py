import numpy as np
import pytest
import torch

from cl_lib.shift import capture, layer_cka, linear_cka

g = torch.Generator().manual_seed(0)
X = torch.randn(100, 20, generator=g)


def test_identical_is_one():
    assert linear_cka(X, X) == pytest.approx(1.0)


def test_invariant_to_rotation_and_isotropic_scaling():
    Q, _ = torch.linalg.qr(torch.randn(20, 20, generator=g))
    assert linear_cka(X, 3.7 * X @ Q) == pytest.approx(1.0)
    Y = torch.randn(100, 15, generator=g)
    assert linear_cka(X @ Q, Y) == pytest.approx(linear_cka(X, Y))
    assert linear_cka(0.1 * X, Y) == pytest.approx(linear_cka(X, Y))


def test_symmetric_and_not_invariant_to_anisotropic_scaling():
    Y = X + 0.5 * torch.randn(100, 20, generator=g)
    assert linear_cka(X, Y) == pytest.approx(linear_cka(Y, X))
    D = torch.diag(torch.linspace(0.01, 10, 20))
    assert linear_cka(X, X @ D) < 0.95


def test_unrelated_is_low_and_wide_features_agree():
    Y = torch.randn(100, 20, generator=g)
    assert linear_cka(X, Y) < 0.35
    W = torch.randn(100, 500, generator=g)  # wider than n: the Gram-matrix path
    V = W @ torch.linalg.qr(torch.randn(500, 500, generator=g))[0]
    assert linear_cka(W, V) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        linear_cka(X, X[:50])


def test_capture_hooks_per_layer_and_cleanup():
    net = torch.nn.Sequential(torch.nn.Linear(20, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    feats = capture(net, {"fc1": net[0], "fc2": net[2]}, X, batch_size=33)
    assert feats["fc1"].shape == (100, 8) and feats["fc2"].shape == (100, 4)
    assert torch.allclose(feats["fc2"], net(X), atol=1e-6)
    assert not net[0]._forward_hooks and not net[2]._forward_hooks
    assert np.allclose(layer_cka(feats, feats), 1.0)
