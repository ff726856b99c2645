"""Frozen-backbone features, computed once and cached on disk.

The cache key holds everything that determines the features: backbone name and weights, data set,
split, which examples, and the input transform. Chapters that share a backbone and data share entries.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import torch

from . import backbones as bb
from .cache import cached
from .data import ImageSet, TextSet


def _indices_digest(indices: np.ndarray | None) -> str:
    if indices is None:
        return "all"
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:24]


@torch.no_grad()
def encode_images(backbone: bb.Backbone, images: torch.Tensor, *, image_size: int | None = None,
                  batch_size: int = 128, device: str = "cpu") -> torch.Tensor:
    """Features (N, D) of uint8 images (N, H, W, 3), in batches, without caching."""
    model = backbone.model.to(device).eval()
    out = [model(backbone.preprocess(images[i:i + batch_size], image_size).to(device)).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.empty(0, backbone.num_features)


@torch.no_grad()
def encode_texts(backbone: bb.Backbone, texts: Sequence[str], *, batch_size: int = 256,
                 max_length: int = 64, device: str = "cpu") -> torch.Tensor:
    """Sentence embeddings (N, D) of `texts`, in batches, without caching."""
    model = backbone.model.to(device).eval()
    out = []
    for i in range(0, len(texts), batch_size):
        tok = bb.tokenize(backbone, texts[i:i + batch_size], max_length)
        out.append(model(**{k: v.to(device) for k, v in tok.items()}).float().cpu())
    return torch.cat(out) if out else torch.empty(0, backbone.num_features)


def features(backbone: bb.Backbone, data: ImageSet | TextSet, *, dataset: str, split: str,
             indices: np.ndarray | None = None, image_size: int | None = None, batch_size: int = 128,
             max_length: int = 64, device: str = "cpu") -> torch.Tensor:
    """Cached features of `data` (or of `data[indices]`) under a frozen backbone."""
    key = {"backbone": backbone.name, "weights": backbone.weights, "dataset": dataset, "split": split,
           "indices": _indices_digest(indices), "n": len(data) if indices is None else len(indices)}
    if backbone.kind == "image":
        key["transform"] = backbone.transform_key(image_size)
    else:
        key["transform"] = {"max_length": max_length, "pooling": "mean-normalised"}

    def compute() -> torch.Tensor:
        sel = slice(None) if indices is None else torch.as_tensor(np.asarray(indices), dtype=torch.long)
        if backbone.kind == "image":
            return encode_images(backbone, data.images[sel], image_size=image_size,
                                 batch_size=batch_size, device=device)
        texts = data.texts if indices is None else [data.texts[i] for i in np.asarray(indices)]
        return encode_texts(backbone, texts, batch_size=batch_size, max_length=max_length, device=device)

    return cached("features", key, compute)
