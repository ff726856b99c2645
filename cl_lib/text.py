"""Text backbones split in two: frozen lower layers (run once, cached) and trainable upper layers.

Chapters that adapt or fine-tune a sentence encoder on CPU train only its top layers; the hidden states
entering those layers do not change, so they are computed once and cached like any frozen feature
(`Hidden`). Chapters 3 and 5 use it, and chapter 7 after them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from . import backbones, data, streams
from .cache import array_digest, cached, library_digest
from .cache import environment as cache_environment


@dataclass
class Hidden:
    """Cached hidden states (N, L, D) float16 entering a layer, with their (N, L) attention mask."""

    states: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.mask)

    def take(self, idx: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch (states, mask), trimmed to its longest utterance: no compute spent on padding."""
        mask = self.mask[idx]
        n = max(int(mask.sum(1).max()), 1)
        return self.states[idx][:, :n], mask[:, :n]

    def batches(self, batch_size: int, order: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(states, mask) batches in `order` (default: as stored), each trimmed by `take`."""
        order = torch.arange(len(self)) if order is None else order
        for i in range(0, len(order), batch_size):
            yield self.take(order[i:i + batch_size])

    @staticmethod
    def concat(parts: Sequence["Hidden"]) -> "Hidden":
        """Several sets in one, padded to the longest (padding is masked: it changes nothing downstream)."""
        L = max(p.states.shape[1] for p in parts)
        pad = lambda t, n: nn.functional.pad(t, (0, 0, 0, n) if t.dim() == 3 else (0, n))  # noqa: E731
        return Hidden(torch.cat([pad(p.states, L - p.states.shape[1]) for p in parts]),
                      torch.cat([pad(p.mask, L - p.mask.shape[1]) for p in parts]))


@dataclass
class TextTask:
    """A labelled data set as cached hidden states: what a task (chapter 3) or a contributor (chapter 5) trains on."""

    name: str
    x: Hidden
    y: torch.Tensor
    n_classes: int

    def __len__(self) -> int:
        return len(self.y)


def encoder_parts(backbone: backbones.Backbone) -> tuple[nn.Module, nn.ModuleList]:
    """The embeddings module and the list of Transformer layers of a BERT-like text backbone."""
    enc = backbone.model.encoder
    return enc.embeddings, enc.encoder.layer


def additive_mask(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, L) 0/1 attention mask → (N, 1, 1, L) additive mask (0 keep, very negative for padding)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _run_layers(layers: Sequence[nn.Module], h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    am = additive_mask(mask, h.dtype)
    for blk in layers:
        h = blk(h, attention_mask=am)
        h = h[0] if isinstance(h, tuple) else h
    return h


@torch.no_grad()
def hidden_states(backbone: backbones.Backbone, texts: Sequence[str], layer: int, *, max_length: int = 64,
                  batch_size: int = 256, device: str = "cpu") -> Hidden:
    """Hidden states entering layer `layer` (0 = embeddings output) of every text, as one padded `Hidden`."""
    emb, layers = encoder_parts(backbone)
    backbone.model.to(device).eval()
    tok = backbones.tokenize(backbone, texts, max_length)  # one padding length for the whole set
    hs = []
    for i in range(0, len(texts), batch_size):
        ids = tok["input_ids"][i:i + batch_size].to(device)
        m = tok["attention_mask"][i:i + batch_size].to(device)
        hs.append(_run_layers(layers[:layer], emb(input_ids=ids), m).half().cpu())
    return Hidden(torch.cat(hs), tok["attention_mask"])


def cached_hidden_states(backbone: backbones.Backbone, texts: data.TextSet, *, layer: int,
                         indices: np.ndarray | None = None, max_length: int = 64, device: str = "cpu") -> Hidden:
    """`hidden_states` of a text set (or of `texts[indices]`), cached on disk, keyed by its content."""
    key = {"backbone": backbone.name, "weights": backbone.weights, "dataset": texts.name, "split": texts.split,
           "content": texts.digest(), "indices": "all" if indices is None else array_digest(indices),
           "layer": layer, "max_length": max_length, "kind": "hidden", "environment": cache_environment(),
           "library": library_digest()}
    chosen = texts.texts if indices is None else [texts.texts[i] for i in np.asarray(indices)]

    def compute() -> tuple[torch.Tensor, torch.Tensor]:
        h = hidden_states(backbone, chosen, layer, max_length=max_length, device=device)
        return h.states, h.mask

    return Hidden(*cached("hidden", key, compute))


class UpperLayers(nn.Module):
    """Layers `layer`.. of a text backbone plus mean pooling: maps cached hidden states to sentence embeddings.

    The layers are the backbone's own modules (shared, not copied); deep-copy the backbone first to train a
    private copy."""

    def __init__(self, backbone: backbones.Backbone, layer: int, normalize: bool = True):
        super().__init__()
        _, layers = encoder_parts(backbone)
        self.layers = nn.ModuleList(layers[layer:])
        self.normalize = normalize

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = _run_layers(self.layers, h.float(), mask)
        return backbones.mean_pool(h, mask, self.normalize)


def intent_datasets() -> list[str]:
    """The intent data sets chapters 5 and 6 treat as separate tasks: CLINC150's domains, then Banking77."""
    return list(data.load_clinc150("train").groups) + ["banking77"]


def intent_task(backbone: backbones.Backbone, name: str, split: str, *, layer: int, per_class: int, seed: int,
                device: str = "cpu", skip: int = 0) -> TextTask:
    """A CLINC150 domain or Banking77 as a `TextTask`: `per_class` seeded examples per intent, local labels (with
    `skip`, the ones after the first `skip`: held out from the task drawn with the same seed)."""
    known = intent_datasets()
    if name not in known:
        raise ValueError(f"unknown data set {name!r}; use one of {', '.join(known)}.")
    if name == "banking77":
        ts = data.load_banking77("test" if split == "test" else "train")
        classes = list(range(len(ts.classes)))
    else:
        ts = data.load_clinc150(split)
        classes = ts.groups[name]
    idx = streams.per_class_subset(ts.labels, classes, per_class, seed, skip)
    remap = {c: i for i, c in enumerate(classes)}
    return TextTask(name, cached_hidden_states(backbone, ts, layer=layer, indices=idx, device=device),
                    torch.tensor([remap[int(c)] for c in ts.labels[idx]]), len(classes))
