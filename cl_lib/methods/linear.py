"""The plainest learner: one linear head on frozen features, trained with Adam task after task (chapter 06).

`masked=True` is the task-masked loss (each task's loss sees only its own classes' logits, so the head's old rows
are not pushed down by the new task's examples); `masked=False` is naive fine-tuning of the head.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import train


class LinearHead:
    """A linear head as a learner (`cl_lib.methods.Learner`): a fresh Adam per task, `epochs` over the task."""

    def __init__(self, dim: int, n_classes: int, *, masked: bool, epochs: int, lr: float, batch_size: int, seed: int):
        train.seed_everything(seed)
        self.model, self.masked, self.epochs, self.lr, self.batch_size = nn.Linear(dim, n_classes), masked, epochs, lr, batch_size
        self.seed, self.t, self.seen, self.flops = seed, 0, 0, 0.0

    def learn(self, z: torch.Tensor, y: torch.Tensor) -> None:
        classes = slice(int(y.min()), int(y.max()) + 1) if self.masked else None
        opt = train.make_optimizer(self.model.parameters(), "adam", lr=self.lr)
        train.fit(self.model, z, y, epochs=self.epochs, optimizer=opt, batch_size=self.batch_size, classes=classes,
                  seed=self.seed + self.t)
        self.t, self.seen = self.t + 1, max(self.seen, int(y.max()) + 1)
        # forward 2·D·C and backward 4·D·C per example and epoch (Adam's update is per parameter, not per example)
        self.flops += 6.0 * self.epochs * len(z) * self.model.in_features * self.model.out_features

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(z)

    def nbytes(self) -> int:
        """The rows (weights and bias) of the classes seen so far."""
        return (self.model.in_features + 1) * self.seen * 4
