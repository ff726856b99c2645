"""Text backbones split in two: frozen lower layers (run once, cached) and trainable upper layers.

Chapters that adapt or fine-tune a sentence encoder on CPU train only its top layers; the hidden states
entering those layers do not change, so they are computed once and cached like any frozen feature.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from . import backbones as bb
from .cache import cached
from .data import TextSet
from .features import _indices_digest


def encoder_parts(backbone: bb.Backbone) -> tuple[nn.Module, nn.ModuleList]:
    """The embeddings module and the list of Transformer layers of a BERT-like text backbone."""
    enc = backbone.model.encoder
    return enc.embeddings, enc.encoder.layer


def additive_mask(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, L) 0/1 attention mask → (N, 1, 1, L) additive mask (0 keep, very negative for padding)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


@torch.no_grad()
def hidden_states(backbone: bb.Backbone, texts: Sequence[str], layer: int, *, max_length: int = 64,
                  batch_size: int = 256, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states entering layer `layer` (0 = embeddings output): (N, L, D) float16 and the (N, L) mask.

    All examples are padded to the longest in `texts` so they stack into one tensor.
    """
    emb, layers = encoder_parts(backbone)
    backbone.model.to(device).eval()
    tok = bb.tokenize(backbone, texts, max_length)  # one padding length for the whole set
    hs = []
    for i in range(0, len(texts), batch_size):
        ids = tok["input_ids"][i:i + batch_size].to(device)
        m = tok["attention_mask"][i:i + batch_size].to(device)
        h = emb(input_ids=ids)
        am = additive_mask(m, h.dtype)
        for blk in layers[:layer]:
            h = blk(h, attention_mask=am)
            h = h[0] if isinstance(h, tuple) else h
        hs.append(h.half().cpu())
    return torch.cat(hs), tok["attention_mask"]


def cached_hidden_states(backbone: bb.Backbone, data: TextSet, *, dataset: str, split: str, layer: int,
                         indices: np.ndarray | None = None, max_length: int = 64,
                         device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """`hidden_states` of `data` (or `data[indices]`), cached on disk."""
    key = {"backbone": backbone.name, "weights": backbone.weights, "dataset": dataset, "split": split,
           "indices": _indices_digest(indices), "layer": layer, "max_length": max_length, "kind": "hidden"}
    texts = data.texts if indices is None else [data.texts[i] for i in np.asarray(indices)]
    return cached("hidden", key, lambda: hidden_states(backbone, texts, layer, max_length=max_length, device=device))


class UpperLayers(nn.Module):
    """Layers `layer`.. of a text backbone plus mean pooling: maps cached hidden states to sentence embeddings.

    The layers are the backbone's own modules (shared, not copied); deep-copy the backbone first to train a
    private copy.
    """

    def __init__(self, backbone: bb.Backbone, layer: int, normalize: bool = True):
        super().__init__()
        _, layers = encoder_parts(backbone)
        self.layers = nn.ModuleList(layers[layer:])
        self.normalize = normalize

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = h.float()
        am = additive_mask(mask, h.dtype)
        for blk in self.layers:
            h = blk(h, attention_mask=am)
            h = h[0] if isinstance(h, tuple) else h
        m = mask.unsqueeze(-1).to(h.dtype)
        z = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
        return nn.functional.normalize(z, dim=-1) if self.normalize else z
