"""GLAD-style attention adaptors — the book's interpretation of Yoon et al. (ICML 2023).

The paper's concept figure puts one adaptor on the attention logits (after QKᵀ, before scale and softmax)
and one on attention × V; the path *with* adaptors solves the downstream task, the path *without* them is
the task-general model. How the adaptors look and what "discretization" means is not published; here:
- logit adaptor, per layer and head: a temperature γ_h and a bias β_h,j per key token j (an input-
  independent, *global* prior on where the head looks); γ_h > 1 sharpens the softmax towards a
  one-hot, *discrete* choice of token. Identity at γ = 1, β = 0.
- output adaptor, per layer and head: a scale and a shift per channel of attention × V. Identity at 1, 0.
The backbone is frozen while they train, so the adaptor-free path is the pre-trained model, bit for bit.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from ..vit import VisionTransformer


class LogitAdaptor(nn.Module):
    """logits·γ_h + β_h,j on QKᵀ (B, H, N, N): per-head temperature and per-key global bias."""

    def __init__(self, heads: int, tokens: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(heads, 1, 1))
        self.beta = nn.Parameter(torch.zeros(heads, 1, tokens))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits * self.gamma + self.beta


class OutputAdaptor(nn.Module):
    """out·a_h + b_h on attention × V (B, H, N, D/H): per-head, per-channel scale and shift."""

    def __init__(self, heads: int, head_dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(heads, 1, head_dim))
        self.shift = nn.Parameter(torch.zeros(heads, 1, head_dim))

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        return out * self.scale + self.shift


def add_glad(model: VisionTransformer, *, freeze: bool = True) -> list[nn.Parameter]:
    """Insert identity-initialised adaptors in every attention; return the new parameters. With `freeze` the backbone
    stops learning (the hard constraint); without it, train it under `pull` (the soft constraint, chapter 1)."""
    for p in model.parameters():
        p.requires_grad_(not freeze)
    cfg = model.cfg
    new = []
    for blk in model.blocks:
        blk.attn.logit_adaptor = LogitAdaptor(cfg.heads, 1 + cfg.grid ** 2)
        blk.attn.out_adaptor = OutputAdaptor(cfg.heads, cfg.dim // cfg.heads)
        blk.attn.adapt = True
        new += list(blk.attn.logit_adaptor.parameters()) + list(blk.attn.out_adaptor.parameters())
    return new


def pull(model: VisionTransformer, reference: dict[str, torch.Tensor]) -> torch.Tensor:
    """‖θ − θ₀‖² over the backbone's weights (adaptors excluded): the soft constraint's penalty, which keeps the
    adaptor-free path near the pre-trained model θ₀ (`reference`, its state dict) while the backbone adapts."""
    terms = [(p - reference[n].to(p.device)).pow(2).sum() for n, p in model.named_parameters()
             if n in reference and p.requires_grad]
    return torch.stack(terms).sum() if terms else torch.zeros(())


@contextmanager
def adaptor_free(model: VisionTransformer) -> Iterator[VisionTransformer]:
    """Run `model` without its adaptors (the task-general path) inside the `with` block."""
    saved = [blk.attn.adapt for blk in model.blocks]
    for blk in model.blocks:
        blk.attn.adapt = False
    try:
        yield model
    finally:
        for blk, a in zip(model.blocks, saved):
            blk.attn.adapt = a


def temperatures(model: VisionTransformer) -> torch.Tensor:
    """γ of every layer and head (depth, heads): > 1 means that head's attention became more discrete."""
    return torch.stack([blk.attn.logit_adaptor.gamma.detach().flatten() for blk in model.blocks])
