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


def test_interval_by_hand():
    # mean 20 %, sample sd 10 points, t(0.975, 2) = 4.303: half-width 4.303 · 10 / √3 = 24.84
    assert metrics.interval(np.array([0.1, 0.2, 0.3])) == "20.0 [-4.8, 44.8]"
    assert metrics.interval(np.array([0.5])) == "50.0"


def test_summarise_by_hand():
    """Two seeds of one learner with a 2-task accuracy matrix, bytes after each task; a joint reference with a final
    accuracy only (no tasks: no per-task bytes)."""
    runs = [{"a": {"R": np.array([[1.0, np.nan], [0.5, 0.8]]), "bytes": [10, 30], "flops": 100.0, "seconds": 1.0},
             "j": {"final": 0.9, "bytes": [50], "seconds": 2.0}},
            {"a": {"R": np.array([[0.9, np.nan], [0.9, 0.6]]), "bytes": [10, 50], "flops": 300.0, "seconds": 3.0},
             "j": {"final": 0.7, "bytes": [50], "seconds": 2.0}}]
    rows = metrics.summarise(runs, ["a", "j"])
    np.testing.assert_allclose(rows["a"]["final"], [0.65, 0.75])
    np.testing.assert_allclose(rows["a"]["forgetting"], [0.5, 0.0])  # 1.0 → 0.5; 0.9 → 0.9
    np.testing.assert_allclose(rows["a"]["avg incremental"], [(1.0 + 0.65) / 2, (0.9 + 0.75) / 2])
    np.testing.assert_allclose(rows["a"]["bytes"], [30, 50])
    np.testing.assert_allclose(rows["a"]["bytes per task"], [20, 40])
    np.testing.assert_allclose(rows["a"]["flops"], [100, 300])
    np.testing.assert_allclose(rows["j"]["final"], [0.9, 0.7])
    assert np.isnan(rows["j"]["flops"]).all() and np.isnan(rows["j"]["bytes per task"]).all()
    assert "forgetting" not in rows["j"]
