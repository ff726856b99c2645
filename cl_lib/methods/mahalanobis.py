"""Prototypes under a shared, shrunk covariance: streaming LDA (chapter 06).

* `SharedCovariance` — SLDA (Hayes & Kanan, CVPR-W 2020) and the shared-covariance form of FeCAM (Goswami et al.,
  NeurIPS 2023): class means and one covariance Σ of the features around their class means, shrunk towards a
  multiple of the identity, Σ_α = (1 − α) Σ + α (tr Σ / D) I. A feature z scores −½ (z − μ_c)ᵀ Σ_α⁻¹ (z − μ_c) for
  class c (a Mahalanobis distance; up to a term common to every class, the linear discriminant
  zᵀΣ_α⁻¹μ_c − ½ μ_cᵀΣ_α⁻¹μ_c that is computed).
* `RanDumb` (Prabhu et al., NeurIPS 2024) — the same classifier on random Fourier features of the L2-normalised
  features, φ(z) = √(2/M) cos(zW + b), W ~ N(0, σ⁻² I), b ~ U[0, 2π): an approximation of an RBF kernel's feature
  map drawn before any data arrives.

Like NCM, both keep sums only (per-class sums and counts, and Σ zzᵀ), so the order of the tasks cannot change
them; unlike NCM, the covariance decorrelates the features before comparing them with the means. Each counts the
multiply-adds of its training (`flops`), so chapter 06 can compare learners by compute, not only by seconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class SharedCovariance:
    """Class means and one shared covariance, shrunk by `shrinkage` α ∈ [0, 1]; scores are Mahalanobis (LDA)."""

    n_classes: int
    dim: int
    shrinkage: float = 0.1
    sums: torch.Tensor = field(init=False)
    counts: torch.Tensor = field(init=False)
    outer: torch.Tensor = field(init=False)
    flops: float = field(init=False, default=0.0)
    _head: tuple[torch.Tensor, torch.Tensor] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not 0.0 <= self.shrinkage <= 1.0:
            raise ValueError(f"shrinkage must lie in [0, 1]; got {self.shrinkage}.")
        self.sums = torch.zeros(self.n_classes, self.dim, dtype=torch.float64)
        self.counts = torch.zeros(self.n_classes, dtype=torch.float64)
        self.outer = torch.zeros(self.dim, self.dim, dtype=torch.float64)

    def learn(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Add one task's features (N, D) and labels to the sums, then solve for the discriminant once."""
        z = z.double()
        self.sums.index_add_(0, y, z)
        self.counts += torch.bincount(y, minlength=self.n_classes).double()
        self.outer += z.T @ z
        self.flops += 2.0 * len(z) * self.dim ** 2 + len(z) * self.dim
        self._head = None  # solved at the next `scores` (once, however many tasks came in between)

    def covariance(self) -> torch.Tensor:
        """Σ_α: the pooled within-class covariance Σ zzᵀ − Σ_c n_c μ_c μ_cᵀ over N − (classes seen), shrunk."""
        seen = self.counts > 0
        means = self.sums[seen] / self.counts[seen, None]
        n, k = float(self.counts.sum()), int(seen.sum())
        within = (self.outer - (means * self.counts[seen, None]).T @ means) / max(n - k, 1.0)
        scale = float(within.diagonal().mean().clamp(min=1e-12))
        return (1 - self.shrinkage) * within + self.shrinkage * scale * torch.eye(self.dim, dtype=torch.float64)

    def discriminant(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W, b) with scores z Wᵀ + b: W = μ Σ_α⁻¹ (C, D), b = −½ diag(μ Σ_α⁻¹ μᵀ), by one Cholesky solve."""
        means = self.sums / self.counts.clamp(min=1)[:, None]
        cov = self.covariance()
        L, info = torch.linalg.cholesky_ex(cov)
        jitter = 1e-9 * float(cov.diagonal().mean().clamp(min=1e-12))
        while info:  # singular without shrinkage (fewer examples than dimensions): the smallest ridge that solves
            L, info = torch.linalg.cholesky_ex(cov + jitter * torch.eye(self.dim, dtype=torch.float64))
            jitter *= 10
        W = torch.cholesky_solve(means.T, L).T
        self.flops += self.dim ** 3 / 3 + 2.0 * self.dim ** 2 * self.n_classes
        return W, -0.5 * (W * means).sum(1)

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        """Linear-discriminant scores (N, classes); classes not seen yet get −inf."""
        if not bool((self.counts > 0).any()):
            raise RuntimeError("SharedCovariance.scores before any learn(): nothing has been learnt yet.")
        if self._head is None:
            self._head = self.discriminant()
        W, b = self._head
        return (z.double() @ W.T + b).masked_fill(self.counts[None] == 0, float("-inf"))

    def nbytes(self) -> int:
        """float32 statistics: the covariance (its D(D+1)/2 distinct entries) and a mean and count per class seen."""
        return (self.dim * (self.dim + 1) // 2 + (self.dim + 1) * int((self.counts > 0).sum())) * 4


@dataclass
class RanDumb:
    """Random Fourier features of the normalised features (`proj_dim` of them, bandwidth `sigma`), then
    `SharedCovariance` on them."""

    n_classes: int
    dim: int
    proj_dim: int = 2000
    sigma: float = 1.0
    shrinkage: float = 0.1
    seed: int = 0
    W: torch.Tensor = field(init=False)
    b: torch.Tensor = field(init=False)
    lda: SharedCovariance | None = field(init=False, default=None)  # made at the first task (M × M statistics)
    _last: tuple[torch.Tensor, torch.Tensor] | None = field(init=False, default=None)  # (z, φ(z)) of the last scores

    def __post_init__(self) -> None:
        g = torch.Generator().manual_seed(self.seed)
        self.W = torch.randn(self.dim, self.proj_dim, generator=g, dtype=torch.float64) / self.sigma
        self.b = torch.rand(self.proj_dim, generator=g, dtype=torch.float64) * 2 * math.pi

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        """φ(z) = √(2/M) cos(ẑW + b), ẑ = z / ‖z‖: E[φ(x)ᵀφ(y)] = exp(−‖x̂ − ŷ‖² / 2σ²)."""
        return math.sqrt(2.0 / self.proj_dim) * torch.cos(F.normalize(z.double(), dim=1) @ self.W + self.b)

    def learn(self, z: torch.Tensor, y: torch.Tensor) -> None:
        if self.lda is None:
            self.lda = SharedCovariance(self.n_classes, self.proj_dim, self.shrinkage)
        self.lda.learn(self.embed(z), y)
        self.lda.flops += 2.0 * len(z) * self.dim * self.proj_dim

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        if self.lda is None:
            raise RuntimeError("RanDumb.scores before any learn(): nothing has been learnt yet.")
        if self._last is None or self._last[0] is not z:  # the same test set after every task: embed it once
            self._last = (z, self.embed(z))
        return self.lda.scores(self._last[1])

    @property
    def flops(self) -> float:
        return 0.0 if self.lda is None else self.lda.flops

    def nbytes(self) -> int:
        """The statistics of the random features (W and b regrow from the seed)."""
        return 0 if self.lda is None else self.lda.nbytes()
