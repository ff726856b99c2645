"""Prototype classifiers of chapter 06: hand-worked means, and ridge prototypes equal batch least squares."""
import torch

from cl_lib.methods.prototypes import NCM, RidgePrototypes


def test_ncm_means_by_hand_and_prediction():
    ncm = NCM(n_classes=3, dim=2)
    ncm.update(torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.tensor([0, 0]))   # class 0 mean (2, 0)
    ncm.update(torch.tensor([[0.0, 2.0]]), torch.tensor([1]))                   # class 1 mean (0, 2)
    assert torch.allclose(ncm.means()[:2], torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=torch.float64))
    assert ncm.counts.tolist() == [2, 1, 0]
    # (1, 0.1) is closer in angle to (2, 0); class 2 is unseen and never predicted
    assert ncm.predict(torch.tensor([[1.0, 0.1], [0.1, 1.0], [-1.0, -1.0]])).tolist()[:2] == [0, 1]
    assert 2 not in ncm.predict(torch.randn(50, 2)).tolist()


def test_ncm_is_order_free():
    z, y = torch.randn(40, 5), torch.arange(40) % 4
    a, b = NCM(4, 5), NCM(4, 5)
    a.update(z[:20], y[:20]), a.update(z[20:], y[20:])
    b.update(z[20:], y[20:]), b.update(z[:20], y[:20])
    assert torch.allclose(a.means(), b.means())


def test_ridge_prototypes_equal_batch_least_squares_on_the_union():
    torch.manual_seed(0)
    z, y = torch.randn(60, 6), torch.arange(60) % 5
    rp = RidgePrototypes(n_classes=5, dim=6, proj_dim=16, ridge=0.5, seed=3)
    for t in range(3):                                    # three tasks, statistics accumulated
        rp.update(z[t * 20:(t + 1) * 20], y[t * 20:(t + 1) * 20])
    H = torch.relu(z.double() @ rp.W)
    Y = torch.nn.functional.one_hot(y, 5).double()
    lam = 0.5 * (H ** 2).sum(0).mean()  # ridge is relative to the mean diagonal of the Gram matrix
    batch = torch.linalg.solve(H.T @ H + lam * torch.eye(16, dtype=torch.float64), H.T @ Y)
    assert torch.allclose(rp.prototypes(), batch, atol=1e-8)
    # without the projection (proj_dim = 0) it is plain ridge regression on z
    lin = RidgePrototypes(n_classes=5, dim=6, proj_dim=0, ridge=1e-12)
    lin.update(z, y)
    lstsq = torch.linalg.lstsq(z.double(), Y).solution
    assert torch.allclose(lin.prototypes(), lstsq, atol=1e-5)


def test_ridge_prototypes_fit_separable_classes_and_hide_unseen():
    centers = torch.tensor([[5.0, 0.0], [0.0, 5.0], [-5.0, 0.0]])
    y = torch.arange(30) % 2
    z = centers[y] + 0.1 * torch.randn(30, 2)
    rp = RidgePrototypes(n_classes=3, dim=2, proj_dim=64, ridge=0.01)
    rp.update(z, y)
    assert (rp.predict(z) == y).all()
    assert 2 not in rp.predict(torch.randn(100, 2) * 5).tolist()
