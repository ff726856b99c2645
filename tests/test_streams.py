import numpy as np
import pytest
import torch

from cl_lib import streams

ytr = np.repeat(np.arange(10), 20)  # 10 classes x 20 train examples
yte = np.repeat(np.arange(10), 5)


def make(seed=0, **kw):
    return streams.split_stream(ytr, yte, n_tasks=4, classes_per_task=2, seed=seed, **kw)


def test_disjoint_classes_and_sizes():
    s = make(train_per_class=7, test_per_class=3)
    classes = [c for t in s.tasks for c in t.classes]
    assert len(classes) == len(set(classes)) == 8
    for t in s.tasks:
        assert len(t.train) == 14 and len(t.test) == 6
        assert set(ytr[t.train]) == set(t.classes) and set(yte[t.test]) == set(t.classes)
    # no example in two tasks
    all_train = np.concatenate([t.train for t in s.tasks])
    assert len(all_train) == len(set(all_train.tolist()))


def test_deterministic_and_seed_dependent():
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    assert a.class_order == b.class_order
    assert all((x.train == y.train).all() for x, y in zip(a.tasks, b.tasks))
    assert a.class_order != c.class_order


def test_unshuffled_keeps_order():
    s = make(shuffle=False)
    assert [t.classes for t in s.tasks] == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_label_map_and_slices():
    s = make(seed=1)
    lut = s.label_map(10)
    for t, task in enumerate(s.tasks):
        mapped = lut[torch.tensor(task.classes)]
        sl = s.task_slice(t)
        assert mapped.tolist() == list(range(sl.start, sl.stop))
        assert s.seen_slice(t) == slice(0, sl.stop)
    unused = set(range(10)) - set(s.class_order)
    assert all(lut[u] == -1 for u in unused)


def test_groups_and_errors():
    s = streams.stream_from_groups(ytr, yte, [[0, 5, 9], [1]], scenario="task", task_names=["a", "b"])
    assert s.tasks[0].classes == [0, 5, 9] and s.tasks[1].name == "b" and s.scenario == "task"
    with pytest.raises(ValueError, match="disjoint"):
        streams.stream_from_groups(ytr, yte, [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="need 22 classes"):
        streams.split_stream(ytr, yte, n_tasks=11, classes_per_task=2)
    with pytest.raises(ValueError, match="scenario"):
        streams.stream_from_groups(ytr, yte, [[0]], scenario="domain")


def test_held_out_rows_are_a_disjoint_seeded_fifth_of_each_class():
    from cl_lib import features

    y = torch.tensor([0] * 10 + [1] * 5 + [2] * 20)
    fit, val = features.held_out_rows(y, 0.2, seed=3)
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == len(y)
    assert [int((y[val] == c).sum()) for c in range(3)] == [2, 1, 4]
    again = features.held_out_rows(y, 0.2, seed=3)[1]
    assert np.array_equal(val, again) and not np.array_equal(val, features.held_out_rows(y, 0.2, seed=4)[1])
    with pytest.raises(ValueError, match="fraction"):
        features.held_out_rows(y, 1.0)


def test_per_class_subset_skip_gives_the_next_examples_of_the_same_order():
    """Labels 0 ×10 and 1 ×10: 3 per class, then 4 more after skipping those 3, are 7 per class of one order."""
    y = np.repeat([0, 1], 10)
    fit = streams.per_class_subset(y, [0, 1], 3, seed=5)
    held = streams.per_class_subset(y, [0, 1], 4, seed=5, skip=3)
    assert len(fit) == 6 and len(held) == 8 and not set(fit) & set(held)
    assert set(fit) | set(held) == set(streams.per_class_subset(y, [0, 1], 7, seed=5))


def test_task_look_is_fixed_per_task_bounded_and_checked():
    gains, contrast, offset = streams.task_look(3, 0.5)
    again = streams.task_look(3, 0.5)
    assert torch.equal(gains, again[0]) and (contrast, offset) == again[1:]  # a task's camera never changes
    assert gains.shape == (3,) and ((gains - 1).abs() <= 0.5).all() and abs(contrast - 1) <= 0.5 and abs(offset) <= 32
    other = streams.task_look(4, 0.5)
    assert not torch.equal(gains, other[0]) and contrast != other[1]
    g0, c0, o0 = streams.task_look(3, 0.0)
    assert torch.equal(g0, torch.ones(3)) and (c0, o0) == (1.0, 0.0)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"strength must be in \[0, 1\)"):
            streams.task_look(0, bad)


def test_apply_look_by_hand_and_moves_the_channel_means():
    x = torch.tensor([[[[0, 100, 255]]]], dtype=torch.uint8)  # one pixel, (N, H, W, 3)
    assert streams.apply_look(x, 2, 0.0) is x  # strength 0: the images themselves
    gains, contrast, offset = streams.task_look(2, 0.5)
    y = streams.apply_look(x, 2, 0.5)
    assert y.dtype == torch.uint8 and y.shape == x.shape
    for ch, v in enumerate((0, 100, 255)):  # ((v − 127.5)·contrast + 127.5 + offset)·gain, clamped to [0, 255]
        want = min(max(((v - 127.5) * contrast + 127.5 + offset) * float(gains[ch]), 0.0), 255.0)
        assert abs(int(y[0, 0, 0, ch]) - want) <= 0.5 + 1e-4
    grey = torch.full((4, 8, 8, 3), 128, dtype=torch.uint8)
    means = [streams.apply_look(grey, t, 0.5).float().mean((0, 1, 2)) for t in range(5)]
    assert min((a - b).abs().max() for i, a in enumerate(means) for b in means[i + 1:]) > 1  # every task its own
