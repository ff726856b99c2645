"""Shared-covariance (SLDA/FeCAM-style) prototypes and RanDumb (cl_lib.methods.mahalanobis, chapter 06)."""
from __future__ import annotations

import math

import pytest
import torch

from cl_lib.methods import mahalanobis, prototypes


def test_pooled_covariance_by_hand():
    """Class 0 at (0,0), (2,0); class 1 at (0,2), (0,4): deviations ±(1,0) and ±(0,1), scatter 2·I over N − k = 2."""
    m = mahalanobis.SharedCovariance(2, 2, shrinkage=0.0)
    m.learn(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 0]))
    m.learn(torch.tensor([[0.0, 2.0], [0.0, 4.0]]), torch.tensor([1, 1]))
    assert torch.allclose(m.covariance(), torch.eye(2, dtype=torch.float64))
    # shrinkage pulls towards (tr Σ / D)·I: deviations ±(2, 0) in both classes give Σ = diag(16, 0) / 2 = diag(8, 0),
    # tr Σ / D = 4, and with α = 0.5: diag(0.5·8 + 0.5·4, 0.5·0 + 0.5·4) = diag(6, 2)
    s = mahalanobis.SharedCovariance(2, 2, shrinkage=0.5)
    s.learn(torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 5.0], [4.0, 5.0]]), torch.tensor([0, 0, 1, 1]))
    assert torch.allclose(s.covariance(), torch.diag(torch.tensor([6.0, 2.0], dtype=torch.float64)))


def test_full_shrinkage_is_the_nearest_euclidean_mean():
    g = torch.Generator().manual_seed(0)
    z, y = torch.randn(300, 6, generator=g), torch.randint(0, 5, (300,), generator=g)
    z += torch.randn(5, 6, generator=g)[y] * 2
    m = mahalanobis.SharedCovariance(5, 6, shrinkage=1.0)
    m.learn(z, y)
    means = torch.stack([z[y == c].mean(0) for c in range(5)]).double()
    nearest = torch.cdist(z.double(), means).argmin(1)
    assert torch.equal(m.scores(z).argmax(1), nearest)


def test_the_covariance_is_what_separates_classes_along_a_quiet_direction():
    """Two classes 1 apart along a direction of std 0.1, beside a nuisance direction of std 3: the Euclidean nearest
    mean is pulled by the nuisance, the Mahalanobis one is not."""
    g = torch.Generator().manual_seed(1)
    n = 400
    y = torch.arange(n) % 2
    z = torch.stack([torch.randn(n, generator=g) * 3, y.float() + 0.1 * torch.randn(n, generator=g)], 1)
    ncm, lda = prototypes.NCM(2, 2), mahalanobis.SharedCovariance(2, 2, shrinkage=0.0)
    for learner in (ncm, lda):
        learner.learn(z[:200], y[:200])
    acc = lambda learner: float((learner.scores(z[200:]).argmax(1) == y[200:]).float().mean())  # noqa: E731
    assert acc(lda) > 0.99 and acc(ncm) < 0.8


def test_task_order_does_not_matter_and_unseen_classes_score_minus_infinity():
    g = torch.Generator().manual_seed(2)
    z, y = torch.randn(120, 8, generator=g), torch.arange(120) % 6
    a, b = mahalanobis.SharedCovariance(6, 8), mahalanobis.SharedCovariance(6, 8)
    tasks = [y < 3, y >= 3]
    for k in (0, 1):
        a.learn(z[tasks[k]], y[tasks[k]])
    for k in (1, 0):
        b.learn(z[tasks[k]], y[tasks[k]])
    assert torch.allclose(a.scores(z), b.scores(z))
    c = mahalanobis.SharedCovariance(6, 8)
    c.learn(z[tasks[0]], y[tasks[0]])
    assert torch.isinf(c.scores(z)[:, 3:]).all() and torch.isfinite(c.scores(z)[:, :3]).all()


def test_random_fourier_features_approximate_the_rbf_kernel():
    r = mahalanobis.RanDumb(2, 5, proj_dim=40000, sigma=0.8, seed=0)
    x = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0, 0, 0], [0.6, 0.8, 0, 0, 0], [0, 0, 0, 1.0, 0]]), dim=1)
    phi = r.embed(x)
    for i, j in ((0, 0), (0, 1), (0, 2)):
        exact = math.exp(-float((x[i] - x[j]).pow(2).sum()) / (2 * 0.8 ** 2))
        assert abs(float(phi[i] @ phi[j]) - exact) < 0.03, (i, j)


def test_bytes_flops_and_bad_input():
    m = mahalanobis.SharedCovariance(10, 4)
    m.learn(torch.randn(20, 4), torch.arange(20) % 3)
    assert m.nbytes() == (4 * 5 // 2 + 5 * 3) * 4  # the covariance's 10 distinct entries, 3 means with counts
    assert m.flops == 2 * 20 * 16 + 20 * 4  # the sums; the discriminant is solved when first needed
    m.scores(torch.zeros(2, 4)), m.scores(torch.zeros(2, 4))
    assert m.flops == pytest.approx(2 * 20 * 16 + 20 * 4 + 4 ** 3 / 3 + 2 * 16 * 10)  # solved once
    ncm = prototypes.NCM(10, 4)
    ncm.learn(torch.randn(20, 4), torch.arange(20) % 3)
    assert ncm.flops == 80
    with pytest.raises(ValueError, match="shrinkage"):
        mahalanobis.SharedCovariance(3, 2, shrinkage=1.5)
    with pytest.raises(RuntimeError, match="before any learn"):
        mahalanobis.SharedCovariance(3, 2).scores(torch.zeros(1, 2))
