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


def interval(v: np.ndarray) -> str:
    """'mean [lo, hi]' in percent of fractions: the two-sided 95 % Student-t interval over seeds (or the single
    value). Chapters 06 and 07 print every row of their tables with it."""
    from .claims import t_quantile

    v = np.asarray(v, dtype=float) * 100
    if len(v) < 2:
        return f"{v.mean():.1f}"
    half = t_quantile(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return f"{v.mean():.1f} [{v.mean() - half:.1f}, {v.mean() + half:.1f}]"


def summarise(runs: list[dict], names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Per learner, one array over runs (seeds) of each number a comparison table shows: final accuracy, average
    incremental accuracy, forgetting and BWT (from its accuracy matrix "R", or its "final" alone), bytes kept at the
    end and added per task, training FLOPs and seconds. Each run maps a learner's name to {"R" or "final", "bytes"
    (after each task), "flops", "seconds"}. Chapters 06 and 07."""
    rows = {}
    for n in names:
        if "R" in runs[0][n]:
            Rs = [r[n]["R"] for r in runs]
            rows[n] = {"final": np.array([np.mean(R[-1]) for R in Rs]),
                       "avg incremental": np.array([average_incremental_accuracy(R) for R in Rs]),
                       "forgetting": np.array([forgetting(R) for R in Rs]),
                       "BWT": np.array([backward_transfer(R) for R in Rs])}
        else:
            rows[n] = {"final": np.array([r[n]["final"] for r in runs])}
        b = np.array([r[n]["bytes"] for r in runs], dtype=float)
        rows[n]["bytes"] = b[:, -1]
        rows[n]["bytes per task"] = ((b[:, -1] - b[:, 0]) / (b.shape[1] - 1) if b.shape[1] > 1
                                     else np.full(len(b), np.nan))  # joint training: no tasks
        rows[n]["flops"] = np.array([r[n].get("flops", np.nan) for r in runs], dtype=float)
        rows[n]["seconds"] = np.array([r[n]["seconds"] for r in runs])
    return rows


def print_summary(rows: dict[str, dict[str, np.ndarray]], title: str) -> None:
    """`summarise`'s rows as a table: final accuracy with its 95 % interval, average incremental accuracy and
    forgetting (mean ± std), memory kept, training FLOPs and seconds."""
    def mean_sd(v: np.ndarray | None) -> str:
        return "—" if v is None or np.all(np.isnan(v)) else f"{np.mean(v) * 100:.1f} ± {np.std(v) * 100:.1f}"

    print(title)
    print(f"{'learner':>38} | {'final % [95 % interval]':>23} | {'avg incr. %':>11} | {'forgetting':>11} | "
          f"{'kept':>8} | {'train FLOPs':>11} | {'train s':>7}")
    for n, r in rows.items():
        flops = "—" if np.isnan(r["flops"]).all() else f"{np.mean(r['flops']):.2e}"
        print(f"{n:>38} | {interval(r['final']):>23} | {mean_sd(r.get('avg incremental')):>11} | "
              f"{mean_sd(r.get('forgetting')):>11} | {np.mean(r['bytes']) / 1e6:6.2f}MB | {flops:>11} | "
              f"{np.mean(r['seconds']):7.2f}")
