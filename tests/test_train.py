import numpy as np
import torch
from torch import nn

from cl_lib import streams, train


def _data(n=60, d=5, k=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 4
    y = torch.arange(n) % k
    return centres[y] + torch.randn(n, d, generator=g), y


def _run(seed):
    x, y = _data()
    train.seed_everything(seed)
    m = nn.Linear(5, 6)
    opt = train.make_optimizer(m.parameters(), "sgd", lr=0.1)
    losses = train.fit(m, x, y, epochs=3, optimizer=opt, batch_size=16, seed=seed)
    return m, losses


def test_fit_is_deterministic_and_learns():
    (a, la), (b, lb), (c, _) = _run(1), _run(1), _run(2)
    assert torch.equal(a.weight, b.weight) and la == lb
    assert not torch.equal(a.weight, c.weight)
    assert la[-1] < la[0]


def test_classes_slice_restricts_logits_and_shifts_labels():
    x, y = _data()
    keep = y >= 3  # classes 3..5 only
    m = nn.Linear(5, 6)
    before = m.weight.detach().clone()
    opt = train.make_optimizer(m.parameters(), "sgd", lr=0.1, momentum=0.0)
    train.fit(m, x[keep], y[keep], epochs=2, optimizer=opt, classes=slice(3, 6))
    assert torch.equal(m.weight[:3], before[:3])  # logits outside the slice get no gradient
    assert not torch.equal(m.weight[3:], before[3:])
    pred = train.predict(m, x[keep], classes=slice(3, 6))
    assert pred.min() >= 3 and pred.max() <= 5


def test_evaluate_row_scenarios():
    """Hand-worked: the model is the identity, so each input row is its own logits."""
    s = streams.stream_from_groups(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3]), [[0, 1], [2, 3]],
                                   scenario="class")
    A, B = [1.0, 0, 5, 0], [2.0, 1, 0, 0]    # task 1: labels 0 and 1
    C, D = [9.0, 0, 0, 1], [0.0, 0, 1, 0]    # task 2: labels 3 and 2
    test = [(torch.tensor([A, B]), torch.tensor([0, 1])), (torch.tensor([C, D]), torch.tensor([3, 2]))]
    m = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        m.weight.copy_(torch.eye(4))
    # class-IL after task 1: only classes 0-1 in play -> A right (0), B wrong (0); task 2 not yet seen
    assert np.array_equal(train.evaluate_row(m, s, test, after=0), [0.5, np.nan], equal_nan=True)
    # class-IL after task 2: all four classes -> A predicts 2, B 0, C 0, D 2
    assert train.evaluate_row(m, s, test, after=1).tolist() == [0.0, 0.5]
    s.scenario = "task"  # each task's own logits: A 0 (right), B 0 (wrong), C 3 (right), D 2 (right)
    assert train.evaluate_row(m, s, test, after=0).tolist() == [0.5, 1.0]


def test_balanced_accuracy_weighs_classes_equally():
    y = torch.tensor([0, 0, 0, 0, 1])
    p = torch.tensor([0, 0, 0, 0, 0])
    assert train.balanced_accuracy(p, y) == 0.5
    assert (p == y).float().mean() == 0.8
