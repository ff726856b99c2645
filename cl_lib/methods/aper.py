"""APER's first-session adaptation (Zhou et al., 2023, "Revisiting Class-Incremental Learning with Pre-Trained
Models"), on the top of a CNN (chapter 06).

NCM on frozen features (SimpleCIL) never adapts; fine-tuning on every task forgets. APER adapts *once*: the top of
the pretrained network is fine-tuned on the first task (with a temporary linear head), then frozen for good. Each
class's prototype is its mean on the concatenation [pretrained features, adapted features], so the adapted copy adds
what the first task taught while the pretrained one keeps its generality; later tasks cost a forward pass, no
gradient. Here the adapted part is the network's last block(s), the head convolution and its BN (`split`): the
frozen bottom is shared, so the activations entering the top are computed once for every learner and class order.
"""
from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from .. import backbones, train
from .prototypes import NCM


def split(model: nn.Module, at: int) -> tuple[nn.Module, nn.Module]:
    """(bottom, top) of a timm EfficientNet, with top(bottom(x)) == model(x): the stem and blocks[:at]; then
    blocks[at:] (none when `at` is their number), the head convolution, its BN and the global pooling. Both share
    the model's modules."""
    if not hasattr(model, "blocks") or not 0 < at <= len(model.blocks):
        raise ValueError(f"split needs a timm EfficientNet and 0 < at <= {len(getattr(model, 'blocks', []))}, got {at}")
    bottom = nn.Sequential(model.conv_stem, model.bn1, *model.blocks[:at])
    top = nn.Sequential(*model.blocks[at:], model.conv_head, model.bn2, model.global_pool)
    return bottom, top


def bottom_backbone(backbone: backbones.Backbone, at: int) -> backbones.Backbone:
    """`backbone` cut before blocks[at]: its "features" are the activations entering the top, cached like any
    features (`cl_lib.features`) and shared by every class order."""
    bottom, _ = split(backbone.model, at)
    return dataclasses.replace(backbone, name=f"{backbone.name}/blocks[:{at}]", model=bottom)


class Learner:
    """APER with prototypes (the learner protocol of `cl_lib.methods`): it learns from the *bottom's activations*
    `h`; the first `learn` adapts a copy of `top` on that task (SGD, `epochs` over its examples, `lr`), every
    `learn` adds NCM statistics of [top(h), adapted(h)]."""

    def __init__(self, top: nn.Module, n_classes: int, dim: int, *, epochs: int, lr: float, batch_size: int = 32,
                 momentum: float = 0.9, seed: int = 0):
        self.top = top.eval()
        self.adapted: nn.Module | None = None
        self.ncm = NCM(n_classes, 2 * dim)
        self.epochs, self.lr, self.batch_size, self.momentum, self.seed = epochs, lr, batch_size, momentum, seed
        self._flops = 0.0
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # (h, embed(h)) of the last `scores`

    def adapt(self, h: torch.Tensor, y: torch.Tensor) -> None:
        """Fine-tune a copy of the top with a temporary linear head on the first task (labels made 0..k-1), then
        freeze it. Its FLOPs: 3 × a forward pass per example and epoch (`train.forward_flops`)."""
        classes, local = torch.unique(y, return_inverse=True)
        torch.manual_seed(self.seed)
        net = nn.Sequential(copy.deepcopy(self.top), nn.Linear(self.ncm.dim // 2, len(classes)))
        self._flops += 3.0 * train.forward_flops(net, h[:1]) * len(h) * self.epochs
        for p in net.parameters():
            p.requires_grad_(True)
        train.fit(net, h, local, epochs=self.epochs, batch_size=self.batch_size, seed=self.seed,
                  optimizer=train.make_optimizer(net.parameters(), "sgd", lr=self.lr, momentum=self.momentum))
        self.adapted = net[0].eval().requires_grad_(False)

    @torch.no_grad()
    def embed(self, h: torch.Tensor) -> torch.Tensor:
        """[pretrained top(h), adapted top(h)]: the features the prototypes live on."""
        return torch.cat([self.top(h), self.adapted(h)], 1).float()

    def learn(self, h: torch.Tensor, y: torch.Tensor) -> None:
        if self.adapted is None:
            self.adapt(h, y)
        # the adapted top's pass over the task (the pretrained one is the shared backbone's, as for every learner)
        self._flops += train.forward_flops(self.adapted, h[:1]) * len(h)
        self.ncm.learn(self.embed(h), y)

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        if self._last is None or self._last[0] is not h:  # the same test set after every task: embed it once
            self._last = (h, self.embed(h))
        return self.ncm.scores(self._last[1])

    def nbytes(self) -> int:
        """The prototypes, and the adapted top's parameters and BN statistics (the bottom is the shared backbone's)."""
        extra = 0 if self.adapted is None else sum(t.numel() for t in [*self.adapted.parameters(),
                                                                      *self.adapted.buffers()] if t.is_floating_point())
        return self.ncm.nbytes() + extra * 4

    @property
    def flops(self) -> float:
        return self._flops + self.ncm.flops
