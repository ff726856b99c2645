"""APER's first-session adaptation (cl_lib.methods.aper, chapter 06)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cl_lib import backbones
from cl_lib.methods import aper, prototypes


def test_split_recomposes_the_network():
    model = backbones.create("tf_efficientnet_lite0", pretrained=False).model.eval()
    x = torch.randn(3, 3, 64, 64)
    for at in (1, 6, 7):  # 7: no block, the head convolution alone
        bottom, top = aper.split(model, at)
        with torch.no_grad():
            assert torch.allclose(top(bottom(x)), model(x), atol=1e-5)
    with pytest.raises(ValueError, match="0 < at <= 7"):
        aper.split(model, 8)


def toy(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, nn.Module]:
    g = torch.Generator().manual_seed(seed)
    h, y = torch.randn(40, 4, generator=g), torch.arange(40) % 2
    h[y == 1] += 2.0
    torch.manual_seed(seed)
    return h, y, nn.Sequential(nn.Linear(4, 3, bias=False))


def test_only_the_copy_adapts_and_only_on_the_first_task():
    h, y, top = toy()
    before = top[0].weight.clone()
    learner = aper.Learner(top, 4, 3, epochs=3, lr=0.1, batch_size=8)
    learner.learn(h, y)
    adapted = learner.adapted[0].weight.clone()
    assert torch.equal(top[0].weight, before)            # the pretrained top is untouched ...
    assert not torch.allclose(adapted, before)            # ... its copy moved
    learner.learn(h + 1, y + 2)                           # a second task: prototypes only
    assert torch.equal(learner.adapted[0].weight, adapted)
    assert not learner.adapted[0].weight.requires_grad


def test_prototypes_live_on_the_concatenated_features():
    h, y, top = toy()
    learner = aper.Learner(top, 2, 3, epochs=2, lr=0.1, batch_size=8)
    learner.learn(h, y)
    with torch.no_grad():
        z = torch.cat([top(h), learner.adapted(h)], 1)
    ncm = prototypes.NCM(2, 6)
    ncm.learn(z, y)
    assert torch.allclose(learner.scores(h), ncm.scores(z))


def test_flops_and_bytes_by_hand():
    """Top Linear(4→3), head Linear(3→2), N = 40 examples, E = 3 epochs: a forward pass costs 2·(4·3 + 3·2) per
    example, training 3 × that per example and epoch; then the adapted top's pass over the task 2·4·3 per example,
    and NCM's 6 additions per example."""
    h, y, top = toy()
    N, E = 40, 3
    learner = aper.Learner(top, 2, 3, epochs=E, lr=0.1, batch_size=8)
    learner.learn(h, y)
    assert learner.flops == 3 * E * N * 2 * (12 + 6) + N * 2 * 12 + N * 6
    # the prototypes (2 classes × (6 + 1) floats) and the adapted top's 12 weights
    assert learner.nbytes() == (2 * 7 + 12) * 4
