"""Representational shift: linear CKA, and per-layer features captured with forward hooks.

Linear CKA (Kornblith et al., ICML 2019) compares two representations of the same n examples:
CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), with Xc, Yc column-centred. It is 1 for
identical representations and invariant to orthogonal transforms and isotropic scaling.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA between (n, p) and (n, q) feature matrices of the same n examples."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA compares the same examples: got {x.shape[0]} and {y.shape[0]} rows.")
    x = x.double().flatten(1)
    y = y.double().flatten(1)
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    # n x n Gram form is cheaper when features are wide
    if x.shape[1] > x.shape[0] or y.shape[1] > y.shape[0]:
        kx, ky = x @ x.T, y @ y.T
        hsic, nx, ny = (kx * ky).sum(), kx.norm(), ky.norm()
    else:
        hsic, nx, ny = (y.T @ x).norm() ** 2, (x.T @ x).norm(), (y.T @ y).norm()
    if nx == 0 or ny == 0:
        return float("nan")
    return float(hsic / (nx * ny))


def per_example(t: torch.Tensor) -> torch.Tensor:
    """Default reduction of a layer's output to (N, C): spatial mean for (N, C, H, W), token mean for (N, L, D)."""
    if isinstance(t, (tuple, list)):
        t = t[0]
    if t.dim() == 4:
        return t.mean((2, 3))
    if t.dim() == 3:
        return t.mean(1)
    return t.flatten(1)


@contextmanager
def hooks(layers: Mapping[str, nn.Module], reduce: Callable[[torch.Tensor], torch.Tensor] = per_example
          ) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Within the block, every forward through `layers` appends its reduced output (on CPU) to the dict."""
    store: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    handles = [m.register_forward_hook(lambda _m, _i, out, name=name: store[name].append(reduce(out).detach().float().cpu()))
               for name, m in layers.items()]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def capture(model: nn.Module, layers: Mapping[str, nn.Module], x: torch.Tensor, *,
            transform: Callable[[torch.Tensor], torch.Tensor] | None = None, batch_size: int = 128,
            device: str = "cpu", reduce: Callable[[torch.Tensor], torch.Tensor] = per_example) -> dict[str, torch.Tensor]:
    """Per-layer features (N, C) of inputs `x`, in eval mode (restored after)."""
    was_training = model.training
    model.eval()
    with hooks(layers, reduce) as store:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            model((transform(xb) if transform else xb).to(device))
    model.train(was_training)
    return {name: torch.cat(v) for name, v in store.items()}


def layer_cka(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> np.ndarray:
    """CKA per layer between two captures of the same probe set (same layer names, same order)."""
    return np.array([linear_cka(a[k], b[k]) for k in a])
