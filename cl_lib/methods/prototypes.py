"""Training-free classifiers on frozen features, the baselines a practitioner tries first (chapters 06 and 07).

* `NCM` — nearest class mean (SimpleCIL: Zhou et al., 2023): one running mean per class, cosine similarity.
* `RidgePrototypes` — RanPAC-style (McDonnell et al., NeurIPS 2023): a frozen random projection with a
  nonlinearity, h = relu(z W), then prototypes decoded in closed form by ridge regression,
  P = (G + λI)^-1 Q with G = Σ h hᵀ and Q = Σ h yᵀ accumulated task by task. λ is `ridge` times the mean
  diagonal of G, so the setting does not depend on the features' scale (RanPAC picks λ on held-out data).

Both keep only statistics (sums, counts, Gram matrices): no stored examples, no gradient steps, and the order of
the tasks cannot change the result (the statistics are sums).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class NCM:
    """Nearest class mean: per-class feature sums and counts; predicts the class of the most similar mean."""

    n_classes: int
    dim: int
    sums: torch.Tensor = field(init=False)
    counts: torch.Tensor = field(init=False)
    flops: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.sums = torch.zeros(self.n_classes, self.dim, dtype=torch.float64)
        self.counts = torch.zeros(self.n_classes, dtype=torch.float64)

    def update(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Add one task's features `z` (N, D) with labels `y` (N,) to the class statistics."""
        self.sums.index_add_(0, y, z.double())
        self.counts += torch.bincount(y, minlength=self.n_classes).double()
        self.flops += float(z.numel())  # one addition per feature value

    def means(self) -> torch.Tensor:
        return self.sums / self.counts.clamp(min=1)[:, None]

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        """Cosine similarity to each seen class mean (unseen classes get -inf)."""
        s = F.normalize(z.double(), dim=1) @ F.normalize(self.means(), dim=1).T
        return s.masked_fill(self.counts[None] == 0, float("-inf"))

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        return self.scores(z).argmax(1)

    def learn(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """The learner protocol (`cl_lib.methods.Learner`): one task is one `update`."""
        self.update(z, y)

    def nbytes(self) -> int:
        """Memory of the statistics of the classes seen (float32): a mean and a count per class."""
        return (self.dim + 1) * int((self.counts > 0).sum()) * 4


@dataclass
class RidgePrototypes:
    """Random projection + ReLU, then ridge-regression prototypes from accumulated Gram statistics."""

    n_classes: int
    dim: int
    proj_dim: int = 2000
    ridge: float = 1.0
    seed: int = 0
    W: torch.Tensor = field(init=False)
    G: torch.Tensor = field(init=False)
    Q: torch.Tensor = field(init=False)
    seen: torch.Tensor = field(init=False)
    flops: float = field(init=False, default=0.0)
    _P: torch.Tensor | None = field(init=False, default=None)  # the prototypes, solved at the next `scores`
    _last: tuple[torch.Tensor, torch.Tensor] | None = field(init=False, default=None)  # (z, h(z)) of the last scores

    def __post_init__(self) -> None:
        g = torch.Generator().manual_seed(self.seed)
        self.W = torch.randn(self.dim, self.proj_dim, generator=g, dtype=torch.float64) if self.proj_dim else None
        m = self.proj_dim or self.dim
        self.G = torch.zeros(m, m, dtype=torch.float64)
        self.Q = torch.zeros(m, self.n_classes, dtype=torch.float64)
        self.seen = torch.zeros(self.n_classes, dtype=torch.bool)

    def expand(self, z: torch.Tensor) -> torch.Tensor:
        """h = relu(z W): the frozen random nonlinear features (the identity when proj_dim = 0)."""
        return z.double() if self.W is None else F.relu(z.double() @ self.W)

    def update(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Accumulate G += HᵀH and Q += HᵀY for one task (Y one-hot)."""
        h = self.expand(z)
        self.G += h.T @ h
        self.Q += h.T @ F.one_hot(y, self.n_classes).double()
        self.seen[y.unique()] = True
        n, m = len(z), len(self.G)
        self.flops += (2.0 * n * self.dim * m if self.W is not None else 0.0) + 2.0 * n * m * m + 2.0 * n * m
        self._P = None  # solved at the next `scores` (once, however many tasks came in between)

    def penalty(self) -> float:
        """λ = ridge × mean diagonal of G (scale-free)."""
        return self.ridge * float(self.G.diagonal().mean().clamp(min=1e-12))

    def prototypes(self) -> torch.Tensor:
        """P = (G + λI)^-1 Q: the ridge solution on every example seen so far. G + λI is symmetric positive
        definite, so a Cholesky solve (half the work of a general solve) is exact and stable."""
        A = self.G + self.penalty() * torch.eye(len(self.G), dtype=torch.float64)
        return torch.cholesky_solve(self.Q, torch.linalg.cholesky(A))

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        """Decoded scores (N, classes), from the prototypes solved after the last task; unseen classes −inf."""
        if self._P is None:
            self._P = self.prototypes()
            m = len(self.G)
            self.flops += m ** 3 / 3 + 2.0 * m * m * self.n_classes  # the Cholesky factor and its solve
        if self._last is None or self._last[0] is not z:  # the same test set after every task: expand it once
            self._last = (z, self.expand(z))
        s = self._last[1] @ self._P
        return s.masked_fill(~self.seen[None], float("-inf"))

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        return self.scores(z).argmax(1)

    def learn(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """The learner protocol (`cl_lib.methods.Learner`): one task is one `update`."""
        self.update(z, y)

    def nbytes(self) -> int:
        """Memory of the statistics (float32): the Gram matrix and the class sums of the classes seen; W regrows
        from its seed."""
        return (self.G.numel() + self.Q.shape[0] * int(self.seen.sum())) * 4
