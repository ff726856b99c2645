import numpy as np
import pytest

from cl_lib import metrics

# Three tasks. Row i: accuracies after training task i. Worked by hand below.
R = np.array([[0.9, np.nan, np.nan],
              [0.6, 0.8, np.nan],
              [0.3, 0.7, 0.9]])


def test_average_accuracy():
    assert metrics.average_accuracy(R) == pytest.approx((0.3 + 0.7 + 0.9) / 3)


def test_average_incremental_accuracy():
    # steps: 0.9 ; (0.6+0.8)/2 = 0.7 ; (0.3+0.7+0.9)/3 = 0.6333
    assert metrics.average_incremental_accuracy(R) == pytest.approx((0.9 + 0.7 + 1.9 / 3) / 3)


def test_forgetting_uses_best_earlier_accuracy():
    # task 1: best 0.9 -> 0.3 (0.6); task 2: best 0.8 -> 0.7 (0.1); mean 0.35
    assert metrics.forgetting(R) == pytest.approx(0.35)
    # a task that improved after it was learnt, then fell: the max counts, not the diagonal
    R2 = np.array([[0.5, np.nan], [0.2, 0.9]])
    R3 = np.array([[0.5, np.nan, np.nan], [0.8, 0.9, np.nan], [0.4, 0.9, 0.7]])
    assert metrics.forgetting(R2) == pytest.approx(0.3)
    assert metrics.forgetting(R3) == pytest.approx(((0.8 - 0.4) + 0.0) / 2)


def test_backward_transfer():
    # (0.3-0.9 + 0.7-0.8)/2 = -0.35
    assert metrics.backward_transfer(R) == pytest.approx(-0.35)
    R3 = np.array([[0.5, np.nan, np.nan], [0.8, 0.9, np.nan], [0.4, 0.9, 0.7]])
    assert metrics.backward_transfer(R3) == pytest.approx(((0.4 - 0.5) + 0.0) / 2)


def test_no_forgetting_when_nothing_changes():
    Rp = np.array([[0.8, np.nan], [0.8, 0.7]])
    assert metrics.forgetting(Rp) == 0 and metrics.backward_transfer(Rp) == 0


def test_bad_matrices_rejected():
    with pytest.raises(ValueError):
        metrics.average_accuracy(np.ones((2, 3)))
    with pytest.raises(ValueError):
        metrics.average_accuracy(np.array([[np.nan, np.nan], [0.5, 0.5]]))
