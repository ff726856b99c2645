"""Frozen-backbone features, computed once and cached on disk.

The cache key holds everything that determines the features: backbone name and weights, the data's
content digest, which examples, the input transform, and cl_lib's source (`cache.library_digest`: editing the
preprocessing recomputes them). Chapters that share a backbone and data share
entries (chapters 0, 2, 4 and 6 all read EfficientNet-Lite0 features of Tiny ImageNet).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from . import backbones, data, streams
from .cache import array_digest, cached, library_digest
from .cache import environment as cache_environment


@torch.no_grad()
def encode_images(backbone: backbones.Backbone, images: torch.Tensor, *, image_size: int | None = None,
                  batch_size: int = 128, device: str = "cpu") -> torch.Tensor:
    """Features (N, D) of uint8 images (N, H, W, 3), in batches, without caching."""
    if len(images) == 0:
        return torch.empty(0, backbone.num_features)
    model = backbone.model.to(device)
    was = model.training
    model.eval()
    try:
        return torch.cat([model(backbone.preprocess(images[i:i + batch_size], image_size).to(device)).float().cpu()
                          for i in range(0, len(images), batch_size)])
    finally:
        model.train(was)


@torch.no_grad()
def encode_texts(backbone: backbones.Backbone, texts: Sequence[str], *, batch_size: int = 256,
                 max_length: int = 64, device: str = "cpu") -> torch.Tensor:
    """Sentence embeddings (N, D) of `texts`, in batches, without caching."""
    model = backbone.model.to(device).eval()
    out = []
    for i in range(0, len(texts), batch_size):
        tok = backbones.tokenize(backbone, texts[i:i + batch_size], max_length)
        out.append(model(**{k: v.to(device) for k, v in tok.items()}).float().cpu())
    return torch.cat(out) if out else torch.empty(0, backbone.num_features)


def features(backbone: backbones.Backbone, dataset: data.ImageSet | data.TextSet, *,
             indices: np.ndarray | None = None, image_size: int | None = None, batch_size: int = 128,
             max_length: int = 64, device: str = "cpu") -> torch.Tensor:
    """Cached features of a data set (or of `dataset[indices]`) under a frozen backbone, keyed by its content."""
    key = {"backbone": backbone.name, "weights": backbone.weights, "dataset": dataset.name, "split": dataset.split,
           "content": dataset.digest(), "indices": "all" if indices is None else array_digest(indices),
           "n": len(dataset) if indices is None else len(indices), "environment": cache_environment(),
           "library": library_digest()}  # the preprocessing, tokenisation and pooling are cl_lib code
    if backbone.kind == "image":
        key["transform"] = backbone.transform_key(image_size)
    else:
        key["transform"] = {"max_length": max_length, "pooling": "mean-normalised"}

    def compute() -> torch.Tensor:
        sel = slice(None) if indices is None else torch.as_tensor(np.asarray(indices), dtype=torch.long)
        if backbone.kind == "image":
            return encode_images(backbone, dataset.images[sel], image_size=image_size,
                                 batch_size=batch_size, device=device)
        texts = dataset.texts if indices is None else [dataset.texts[i] for i in np.asarray(indices)]
        return encode_texts(backbone, texts, batch_size=batch_size, max_length=max_length, device=device)

    return cached("features", key, compute)


@dataclass
class FeatureSplit:
    """Frozen features of a fixed per-class subset of a data set: train and test, data-set labels."""

    name: str
    z_train: torch.Tensor
    y_train: torch.Tensor
    z_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    train_index: np.ndarray | None = None  # the rows' indices in the data set's train / test split, so that a
    test_index: np.ndarray | None = None   # chapter can fetch the images behind the features (chapter 6)

    @property
    def n_classes(self) -> int:
        return int(self.y_train.max()) + 1

    def digest(self) -> str:
        """Content digest of the features and labels (part of the key of runs that read them)."""
        h = hashlib.sha256()
        for t in (self.z_train, self.y_train, self.z_test, self.y_test):
            h.update(np.ascontiguousarray(t.numpy()).tobytes())
        return h.hexdigest()[:24]


def feature_split(backbone: backbones.Backbone, name: str, *, n_classes: int, train_per_class: int,
                  test_per_class: int, seed: int, image_size: int | None = None, device: str = "cpu") -> FeatureSplit:
    """Cached features of `n_classes` seeded classes (all, if it is every class) of an image data set, with
    `train_per_class` / `test_per_class` seeded examples each: the pool a stream is cut from (chapters 2, 6)."""
    tr, te = data.load(name, "train"), data.load(name, data.test_split(name))
    pick = streams.split_stream(tr.labels, te.labels, n_tasks=1, classes_per_task=n_classes, seed=seed,
                                train_per_class=train_per_class, test_per_class=test_per_class).tasks[0]
    z_tr = features(backbone, tr, indices=pick.train, image_size=image_size, device=device)
    z_te = features(backbone, te, indices=pick.test, image_size=image_size, device=device)
    return FeatureSplit(name, z_tr, torch.as_tensor(tr.labels[pick.train]), z_te, torch.as_tensor(te.labels[pick.test]),
                        tr.class_names, pick.train, pick.test)


def held_out_rows(y: torch.Tensor, frac: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, held-out rows) of labels `y`: a seeded `frac` of each class held out, for choosing
    hyper-parameters on training data (chapters 2 and 6)."""
    if not 0 < frac < 1:
        raise ValueError(f"held-out fraction must lie in (0, 1), got {frac}")
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    val = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[: max(1, round(frac * int((y == c).sum())))]
                                  for c in np.unique(y)]))
    return np.setdiff1d(np.arange(len(y)), val), val


def held_out(fs: FeatureSplit, frac: float = 0.2, seed: int = 0) -> FeatureSplit:
    """`fs`'s *training* rows split by `held_out_rows`: the held-out part plays the test set, which is never
    touched while choosing."""
    fit, val = held_out_rows(fs.y_train, frac, seed)
    return FeatureSplit(f"{fs.name} (held-out split of train)", fs.z_train[fit], fs.y_train[fit], fs.z_train[val],
                        fs.y_train[val], fs.class_names)
