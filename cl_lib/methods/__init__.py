"""One module per method, each short enough to read in its chapter, each ending with its learner.

A *learner* is what chapter 06 compares on frozen features: it learns one task at a time, scores any features
over every class, says how many bytes it keeps beyond the backbone, and counts the floating-point operations its
training took (`flops`, analytic: 2 per multiply-add). Adding a method to the comparison is one class with these
in the method's module.
"""
from __future__ import annotations

from typing import Protocol

import torch


class Learner(Protocol):
    """The contract of chapter 06's comparison (after PILOT's and Mammoth's one-class-per-method)."""

    def learn(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Learn one task: features `z` (N, D), stream labels `y` (N,)."""

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        """Scores (N, classes) of features `z`; the caller restricts them to the classes seen."""

    def nbytes(self) -> int:
        """Bytes kept beyond the frozen backbone (float32), after the tasks learnt so far."""

    @property
    def flops(self) -> float:
        """Floating-point operations of the training so far (learn calls and any set-up), counted analytically."""
