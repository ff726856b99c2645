"""Reading a representation without training it: batched embeddings, k-NN and linear probes, and
training-free transferability scores (TransRate, LEEP).

Chapter 1 measures transfer with k-NN and a linear probe, chapter 3 picks adapters by TransRate or LEEP,
chapter 5 scores fused bodies with a linear probe ("ColD-frozen"), chapters 6 and 7 compare all on shared streams.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .text import Hidden


@torch.no_grad()
def embed(model: Callable[..., torch.Tensor], x: torch.Tensor | Hidden, *, batch_size: int = 256,
          device: str = "cpu", transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
          by_length: bool = False) -> torch.Tensor:
    """`model`'s outputs (N, D) on x, in batches, without gradients, in eval mode (restored after), on the CPU.

    x is a tensor (each batch goes through `transform`, then `model(batch)`) or cached text `Hidden` states
    (`model(states, mask)`); `by_length` runs texts of similar length together, so less padding is computed."""
    was = model.training if isinstance(model, nn.Module) else None
    if was is not None:
        model.eval()
    try:
        if isinstance(x, Hidden):
            order = torch.argsort(x.mask.sum(1), stable=True) if by_length else torch.arange(len(x))
            out = [model(h.float().to(device), m.to(device)).float().cpu() for h, m in x.batches(batch_size, order)]
            z = torch.cat(out) if out else torch.empty(0)
            return z[torch.argsort(order)] if by_length else z
        out = [model((transform(x[i:i + batch_size]) if transform else x[i:i + batch_size]).to(device)).float().cpu()
               for i in range(0, len(x), batch_size)]
        return torch.cat(out) if out else torch.empty(0)
    finally:
        if was is not None:
            model.train(was)


def knn_accuracy(ztr: torch.Tensor, ytr: torch.Tensor, zte: torch.Tensor, yte: torch.Tensor, k: int) -> float:
    """Cosine k-nearest-neighbour accuracy, votes weighted by similarity: reads the features' geometry, no training."""
    a, b = F.normalize(ztr, dim=1), F.normalize(zte, dim=1)
    sim, idx = (b @ a.T).topk(min(k, len(a)), dim=1)
    votes = torch.zeros(len(zte), int(ytr.max()) + 1).scatter_add_(1, ytr[idx], sim.clamp_min(0) + 1e-6)
    return (votes.argmax(1) == yte).float().mean().item()


def fit_linear(z: torch.Tensor, y: torch.Tensor, n_classes: int | None = None, *, solver: str = "lbfgs",
               steps: int = 100, lr: float = 1.0, weight_decay: float = 0.0, seed: int = 0) -> nn.Linear:
    """Multinomial logistic regression on fixed features, full batch: `lbfgs` solves it (the probe of chapter 1),
    `adam` takes `steps` steps (the head a fine-tune starts from, chapter 5). `weight_decay` adds λ‖W‖²."""
    torch.manual_seed(seed)
    clf = nn.Linear(z.shape[1], n_classes or int(y.max()) + 1).to(z.device)

    def loss_fn() -> torch.Tensor:
        loss = F.cross_entropy(clf(z), y)
        return loss + weight_decay * clf.weight.pow(2).sum() if weight_decay else loss

    if solver == "lbfgs":
        opt = torch.optim.LBFGS(clf.parameters(), lr=lr, max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        opt.step(closure)
    elif solver == "adam":
        opt = torch.optim.Adam(clf.parameters(), lr=lr)
        for _ in range(steps):
            loss = loss_fn()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        raise ValueError(f"Unknown solver {solver!r}; use 'lbfgs' or 'adam'.")
    return clf


def linear_probe_accuracy(ztr: torch.Tensor, ytr: torch.Tensor, zte: torch.Tensor, yte: torch.Tensor, *,
                          standardize: bool = True, **fit_kw) -> float:
    """Test accuracy of `fit_linear` on the training features (standardised with their mean and std)."""
    if standardize:
        mu, sd = ztr.mean(0), ztr.std(0) + 1e-6
        ztr, zte = (ztr - mu) / sd, (zte - mu) / sd
    clf = fit_linear(ztr, ytr, **fit_kw)
    with torch.no_grad():
        return (clf(zte).argmax(1) == yte).float().mean().item()


def probe_head(z: torch.Tensor, y: torch.Tensor, n_classes: int | None = None, **fit_kw) -> nn.Linear:
    """The L-BFGS probe on standardised features, folded into one linear layer on the raw features: the head a
    fine-tuning starts from (LP-FT, Kumar et al. 2022), so that fine-tuning begins where the probe ends (chapter 1)."""
    mu, sd = z.mean(0), z.std(0) + 1e-6
    clf = fit_linear((z - mu) / sd, y, n_classes, **fit_kw)
    head = nn.Linear(z.shape[1], clf.out_features)
    with torch.no_grad():
        head.weight.copy_(clf.weight / sd)
        head.bias.copy_(clf.bias - (clf.weight * (mu / sd)).sum(1))
    return head


def coding_rate(z: torch.Tensor, eps: float) -> torch.Tensor:
    """R(Z, eps) = 1/2 logdet(I + d/(n eps^2) Z^T Z): the bits needed to code the n rows of Z up to distortion eps."""
    n, d = z.shape
    gram = z @ z.T if n < d else z.T @ z  # the same non-zero eigenvalues: take the smaller matrix
    return 0.5 * torch.logdet(torch.eye(len(gram), dtype=z.dtype) + d / (n * eps ** 2) * gram)


def transrate(z: torch.Tensor, y: torch.Tensor, eps: float = 1.0) -> float:
    """TransRate (Huang et al. 2022): R(Z) - sum_c n_c/n R(Z_c), Z centred; higher = the features separate y better."""
    z = z.double() - z.double().mean(0, keepdim=True)
    within = sum((y == c).double().mean() * coding_rate(z[y == c], eps) for c in y.unique())
    return float(coding_rate(z, eps) - within)


def leep(probs: torch.Tensor, y: torch.Tensor) -> float:
    """LEEP (Nguyen et al. 2020): mean_i log sum_z P(y_i | z) theta(x_i)_z, theta = source-label probabilities."""
    probs = probs.double()
    joint = F.one_hot(y, int(y.max()) + 1).double().T @ probs / len(y)  # P(y, z)
    cond = joint / joint.sum(0, keepdim=True).clamp_min(1e-12)  # P(y | z)
    return float(torch.log((probs @ cond.T).gather(1, y[:, None]).clamp_min(1e-12)).mean())
