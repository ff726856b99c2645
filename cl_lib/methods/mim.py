"""Masked image modelling (SimMIM-style) as an unsupervised continual learner's objective.

Why SimMIM rather than MAE: the encoder sees every position, masked patches replaced by one learned mask
token, and a single linear layer predicts each patch's pixels from its output token (Xie et al., 2022). No
decoder, no token shuffling: the cheapest masked objective on a CPU, and the encoder is exactly the ViT
that is later probed and fine-tuned. The loss is an L1 regression on the masked patches only.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..vit import VisionTransformer


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, 3, H, W) → (B, N, patch·patch·3), patches in row-major order (the ViT's token order)."""
    B, C, H, W = images.shape
    if H % patch or W % patch:
        raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {patch}.")
    x = images.reshape(B, C, H // patch, patch, W // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(B, (H // patch) * (W // patch), patch * patch * C)


def random_mask(batch: int, grid: int, ratio: float, *, block: int = 1,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Boolean mask (B, grid²), True = masked: exactly round(ratio·cells) random block×block cells per image."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask ratio must be in (0, 1), got {ratio}.")
    if grid % block:
        raise ValueError(f"mask block {block} does not divide the patch grid {grid}; pick a divisor.")
    g = grid // block
    k = round(ratio * g * g)
    scores = torch.rand(batch, g * g, generator=generator)
    coarse = torch.zeros(batch, g * g, dtype=torch.bool)
    coarse.scatter_(1, scores.argsort(1)[:, :k], True)
    fine = coarse.reshape(batch, g, 1, g, 1).expand(batch, g, block, g, block)
    return fine.reshape(batch, grid * grid)


def normalise_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each patch's pixels minus their mean, over their std (MAE's normalised-pixel target, He et al. 2022): the
    loss then rewards structure within a patch, not its mean colour."""
    mean, var = patches.mean(-1, keepdim=True), patches.var(-1, keepdim=True)
    return (patches - mean) / (var + eps).sqrt()


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |pred − target| over the pixels of masked patches only (pred, target: (B, N, P); mask: (B, N))."""
    per_patch = (pred - target).abs().mean(-1)  # (B, N)
    m = mask.to(per_patch.dtype)
    return (per_patch * m).sum() / m.sum().clamp_min(1.0)


class SimMIM(nn.Module):
    """A ViT encoder plus a linear pixel head: tokens of masked positions regress those patches' pixels."""

    def __init__(self, encoder: VisionTransformer, norm_pix: bool = False):
        super().__init__()
        self.encoder = encoder
        self.norm_pix = norm_pix  # regress normalised patches (MAE's target) instead of raw pixels
        self.head = nn.Linear(encoder.cfg.dim, encoder.cfg.patch ** 2 * 3)

    def target(self, images: torch.Tensor) -> torch.Tensor:
        """What the head regresses: the patches' pixels, or each patch normalised with `norm_pix`."""
        patches = patchify(images, self.encoder.cfg.patch)
        return normalise_patches(patches) if self.norm_pix else patches

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The masked-modelling loss of a batch of (normalised) images under `mask`."""
        tokens = self.encoder.tokens(images, mask=mask)[:, 1:]  # drop CLS
        return masked_l1(self.head(tokens), self.target(images), mask)


def fit_mim(model: SimMIM, x: torch.Tensor, *, epochs: int, optimizer: torch.optim.Optimizer, ratio: float,
            block: int = 1, batch_size: int = 64, seed: int = 0, transform: Callable | None = None,
            device: str = "cpu") -> list[float]:
    """Train on unlabelled images `x` with fresh random masks every batch; return each epoch's mean loss."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    history = []
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        total = 0.0
        for i in range(0, len(x), batch_size):
            xb = x[perm[i:i + batch_size]]
            xb = (transform(xb) if transform is not None else xb).to(device)
            mask = random_mask(len(xb), model.encoder.cfg.grid, ratio, block=block, generator=g).to(device)
            loss = model(xb, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        history.append(total / len(x))
    return history


@torch.no_grad()
def reconstruct(model: SimMIM, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Images with masked patches replaced by the model's prediction (for the chapter's picture). With `norm_pix` the
    prediction is a normalised patch: it is drawn with the true patch's mean and std, as MAE's figures are."""
    model.eval()
    p = model.encoder.cfg.patch
    pred = model.head(model.encoder.tokens(images, mask=mask)[:, 1:])
    true = patchify(images, p)
    if model.norm_pix:
        pred = pred * (true.var(-1, keepdim=True) + 1e-6).sqrt() + true.mean(-1, keepdim=True)
    patches = torch.where(mask.unsqueeze(-1), pred, true)
    B, N, _ = patches.shape
    g = int(N ** 0.5)
    return patches.reshape(B, g, g, p, p, 3).permute(0, 5, 1, 3, 2, 4).reshape(B, 3, g * p, g * p)
