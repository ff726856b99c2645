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


def test_forward_flops_by_hand():
    """2 per multiply-add: a Linear(4→3) on 2 examples is 2·2·4·3 = 48 (the bias is not counted); a depthwise 3×3
    convolution over 8 channels of a 4×4 map is 2·8·16·9 = 2,304 (each output sees one channel, not eight)."""
    assert train.forward_flops(nn.Linear(4, 3), torch.zeros(2, 4)) == 48
    dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    dw.train()
    assert train.forward_flops(dw, torch.zeros(1, 8, 4, 4)) == 2304
    assert dw.training  # left as it was


def test_count_flops_adds_every_pass_run():
    """Whatever the function runs is counted: two passes of a Linear(4→3) on 2 examples are 2 · 48 = 96, and a
    function that computes nothing costs 0."""
    lin = nn.Linear(4, 3)
    assert train.count_flops(lambda: (lin(torch.zeros(2, 4)), lin(torch.ones(2, 4)))) == 96
    assert train.count_flops(lambda: None) == 0


def test_flip_and_shift_keeps_shape_and_draws_each_image_from_its_own_flipped_or_shifted_copy():
    import torch.nn.functional as F
    torch.manual_seed(0)
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    out = train.flip_and_shift(x, 1)
    assert out.shape == x.shape
    padded = [F.pad(v, (1,) * 4, mode="reflect") for v in (x, x.flip(-1))]
    for i in range(2):  # each output is one of the 2 x 9 crops of its own image, never the other image's
        crops = [p[i, :, a:a + 4, b:b + 4] for p in padded for a in range(3) for b in range(3)]
        assert any(torch.equal(out[i], c) for c in crops)
    still = train.flip_and_shift(x, 0)  # no shift: the image or its mirror
    assert all(torch.equal(still[i], x[i]) or torch.equal(still[i], x[i].flip(-1)) for i in range(2))
