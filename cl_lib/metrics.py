"""Continual-learning metrics from an accuracy matrix R, where R[i, j] is the accuracy on task j after
training on tasks 0..i (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018; Rebuffi et al. 2017)."""
from __future__ import annotations

import numpy as np


def _check(R: np.ndarray) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"An accuracy matrix is square (tasks x tasks); got shape {R.shape}.")
    if np.isnan(np.tril(R)).any():
        raise ValueError("R[i, j] must be filled for every j <= i (the tasks seen after task i).")
    return R


def average_accuracy(R: np.ndarray) -> float:
    """Mean accuracy over all tasks after the last one: (1/T) sum_j R[T-1, j]."""
    R = _check(R)
    return float(R[-1].mean())


def average_incremental_accuracy(R: np.ndarray) -> float:
    """Mean over steps i of the average accuracy on the tasks seen so far (Rebuffi et al.)."""
    R = _check(R)
    return float(np.mean([R[i, : i + 1].mean() for i in range(len(R))]))


def forgetting(R: np.ndarray) -> float:
    """Mean over tasks j < T-1 of the drop from their best earlier accuracy to the final one (Chaudhry et al.)."""
    R = _check(R)
    T = len(R)
    if T < 2:
        return 0.0
    return float(np.mean([R[j:T - 1, j].max() - R[T - 1, j] for j in range(T - 1)]))


def backward_transfer(R: np.ndarray) -> float:
    """BWT: mean over j < T-1 of R[T-1, j] - R[j, j]; negative means forgetting (Lopez-Paz & Ranzato)."""
    R = _check(R)
    T = len(R)
    if T < 2:
        return 0.0
    return float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)]))


def seen_accuracy(R: np.ndarray) -> list[float]:
    """Mean accuracy on the tasks seen so far, after each task: the curve every chapter draws (chapter 0)."""
    R = _check(R)
    return [float(R[i, : i + 1].mean()) for i in range(len(R))]


def summary(R: np.ndarray) -> dict[str, float]:
    """The usual numbers in one dict (fractions in [0, 1])."""
    return {"average accuracy": average_accuracy(R), "average incremental accuracy": average_incremental_accuracy(R),
            "forgetting": forgetting(R), "BWT": backward_transfer(R)}
