"""What a profile costs before it runs: compute, memory and minutes on one H100-class GPU.

Per-example costs are measured, not guessed: one forward (and forward + backward) pass of each model a chapter
runs, at the profile's shapes, counted by torch's `FlopCounterMode`, and the bytes of the activations autograd
saves for the backward pass (`saved_tensors_hooks`). Each chapter's workload — how many examples pass through
which model, from book.toml's sizes — multiplies them (`WORKLOADS`; the formulas follow the chapters' loops).
Minutes assume a sustained `SUSTAINED_FLOPS` on the GPU, a deliberately modest figure for small models in float32
(an H100's dense TF32 tensor peak is ~5e14): the estimate is a planning number, not a promise. Every chapter
prints its estimate at the start when its profile sets ``estimate_cost = true`` (the `full` profile).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import torch
from torch import nn

from . import config

SUSTAINED_FLOPS = 5e13
"""Assumed sustained FLOP/s of one H100-class GPU on the book's small models (about a tenth of the TF32 peak)."""
TOKENS = 24
"""Assumed tokens per utterance (CLINC150 and Banking77 utterances are short; padding to the batch's longest)."""


@dataclass
class PassCost:
    """Per-example cost of one model: forward FLOPs, forward+backward FLOPs, saved activation bytes, parameters."""

    forward: float
    train: float
    activations: float
    params: int


@dataclass
class Estimate:
    """A chapter's estimated compute (FLOPs), peak GPU and host memory (bytes) and minutes on one H100."""

    chapter: str
    flops: float
    gpu_bytes: float
    host_bytes: float

    @property
    def minutes(self) -> float:
        return self.flops / SUSTAINED_FLOPS / 60

    def line(self) -> str:
        return (f"[{self.chapter}] estimated cost of this profile: {self.flops:.2e} FLOPs, peak GPU memory "
                f"{self.gpu_bytes / 2**30:.1f} GiB, peak host memory {self.host_bytes / 2**30:.1f} GiB, about "
                f"{self.minutes:.0f} min on one H100-class GPU (at {SUSTAINED_FLOPS:.0e} FLOP/s sustained)")


def measure(model: nn.Module, example: Callable[[int], tuple], batch: int = 2) -> PassCost:
    """FLOPs per example (forward; forward + backward) and saved-activation bytes per example of `model`."""
    from torch.utils.flop_counter import FlopCounterMode

    inputs = example(batch)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(*inputs)
    forward = fc.get_total_flops() / batch
    model.train()
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    with FlopCounterMode(display=False) as fc, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(*inputs)
        out.float().pow(2).mean().backward()
    model.zero_grad(set_to_none=True)
    model.eval()
    return PassCost(forward, fc.get_total_flops() / batch, saved[0] / batch, sum(p.numel() for p in model.parameters()))


@lru_cache(maxsize=16)
def image_model(size: int) -> PassCost:
    """EfficientNet-Lite0 (random weights: same cost) at `size` px, with a linear head."""
    import timm

    net = nn.Sequential(timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0), nn.Linear(1280, 100))
    return measure(net, lambda b: (torch.randn(b, 3, size, size),))


@lru_cache(maxsize=16)
def vit_model(img_size: int, patch: int, dim: int, depth: int, heads: int, mlp_ratio: float) -> PassCost:
    from .vit import ViTConfig, VisionTransformer

    net = VisionTransformer(ViTConfig(img_size=img_size, patch=patch, dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio))
    return measure(net, lambda b: (torch.randn(b, 3, img_size, img_size),))


@lru_cache(maxsize=16)
def text_model(first_layer: int) -> PassCost:
    """all-MiniLM-L6-v2's layers from `first_layer` on (what chapters 03, 05 and 06 train), on `TOKENS` tokens."""
    from . import backbones, text

    body = text.UpperLayers(backbones.create("all-MiniLM-L6-v2"), first_layer)
    dim = body.layers[0].attention.self.query.in_features if hasattr(body.layers[0], "attention") else 384
    return measure(body, lambda b: (torch.randn(b, TOKENS, dim), torch.ones(b, TOKENS, dtype=torch.long)))


def _gpu(p: PassCost, batch: int, optimiser_states: int = 2) -> float:
    """Weights, gradients and optimiser state (float32), plus one batch's saved activations."""
    return p.params * 4 * (2 + optimiser_states) + p.activations * batch


GiB = 2 ** 30


def _ch00(s: dict) -> tuple[float, float, float]:
    p, S, T, K = image_model(s["image_size"]), s["seeds"], s["n_tasks"], s["classes_per_task"]
    tr, te, E = s["train_per_class"], s["test_per_class"], s["epochs"]
    train = S * 2 * T * K * tr * E  # naive fine-tuning and joint training
    fwd = T * K * (tr + te) * S + S * K * te * T * (T + 1) / 2 * 2 + S * (T + 1) * s["probe_size"] * 2
    host = 100_000 * 64 * 64 * 3 * 2 + 2 * GiB  # the decoded archive (train + val) and the process
    return train * p.train + fwd * p.forward, _gpu(p, s["batch_size"]), host


def _ch01(s: dict) -> tuple[float, float, float]:
    p = vit_model(s["image_size"], s["patch"], s["dim"], s["depth"], s["heads"], s["mlp_ratio"])
    S, T, K, E = s["seeds"], s["n_tasks"], s["classes_per_task"], s["epochs"]
    up = S * (2 + len(s["joint"])) * T * K * s["train_per_class"] * E
    down = (s["down_tasks"] + 1) * s["down_classes"] * (s["down_train_per_class"] + s["down_test_per_class"])
    transfers = S * (2 * (T + 1) + len(s["joint"]) + 1) * down
    ft = S * 7 * s["ft_epochs"] * s["down_classes"] * s["down_train_per_class"]
    host = 100_000 * 64 * 64 * 3 * 2 + S * 2 * (T + 1) * p.params * 4 + 2 * GiB
    return (up + ft) * p.train + transfers * p.forward, _gpu(p, s["batch_size"]), host


def _ch02(s: dict) -> tuple[float, float, float]:
    p = image_model(s["image_size"])
    n_img = 10 * (s["cifar_train_per_class"] + s["cifar_test_per_class"]) + \
        s["tiny_tasks"] * s["tiny_classes_per_task"] * (s["tiny_train_per_class"] + s["tiny_test_per_class"])
    classes = s["tiny_tasks"] * s["tiny_classes_per_task"]
    table = s["codebooks"] * s["n_keys"] * classes * 4  # the value table of the Tiny ImageNet stream
    n_train = max(10 * s["cifar_train_per_class"], classes * s["tiny_train_per_class"])
    values = s["seeds"] * 8 * s["epochs"] * n_train * s["codebooks"] * classes * 2  # gather + update per example
    snap = s["codebooks"] * s["n_keys"] * s["dim_key"] * 2  # distances of one example to every key
    n_test_tiny, n_test_cifar = classes * s["tiny_test_per_class"], 10 * s["cifar_test_per_class"]
    evals = s["seeds"] * 2 * (s["tiny_tasks"] * n_test_tiny + 5 * n_test_cifar * 4)  # masked and not, after each task
    keys = s["seeds"] * (s["key_epochs"] * n_train * 3 + n_train * 6)  # k-means steps and the training indices
    host = n_img * 1280 * 4 * 2 + table * 4 + 100_000 * 64 * 64 * 3 + 2 * GiB  # a few tables alive at once
    return n_img * p.forward + values + (evals + keys) * snap, max(_gpu(p, 64, 0), table * 3), host


def _ch03(s: dict) -> tuple[float, float, float]:
    p, S, T, n = text_model(s["first_layer"]), s["seeds"], s["n_tasks"], 15 * s["train_per_class"]
    train = S * T * n * (2 * s["epochs"] + s["distil_epochs"] * 4) + T * n * s["epochs"]  # + seq. FT, ablations
    fwd = S * T * (T + 1) / 2 * 15 * s["test_per_class"] * 6 + S * T * n * s["probe_epochs"] / 10
    return train * p.train + fwd * p.forward, _gpu(p, s["batch_size"]), 6 * GiB


def _ch04(s: dict) -> tuple[float, float, float]:
    p, S, T, K = image_model(s["image_size"]), s["seeds"], s["n_tasks"], s["classes_per_task"]
    train = S * 2 * T * K * s["train_per_class"] * s["epochs"]
    fwd = S * 2 * T * (T + 1) / 2 * K * s["test_per_class"] * 2 + S * T * s["probe_size"] * 3
    host = 100_000 * 64 * 64 * 3 * 2 + 4 * GiB
    return train * p.train + fwd * p.forward, _gpu(p, s["batch_size"], 1), host


def _ch05(s: dict) -> tuple[float, float, float]:
    p, S = text_model(s["layer"]), s["seeds"]
    contrib = S * 5 * s["iterations"] * s["contributors"] * 15 * s["train_per_class"] * s["epochs"]
    evals = S * 5 * 11 * 20 * (s["eval_shots"] * s["eval_epochs"])  # ~20 intents per data set on average
    fwd = S * 5 * 11 * 20 * s["test_per_class"] * 2
    return (contrib + evals) * p.train + fwd * p.forward, _gpu(p, s["batch_size"]), 6 * GiB


def _ch06(s: dict) -> tuple[float, float, float]:
    img, S = image_model(s["image_size"]), s["seeds"]
    classes = s["tiny_tasks"] * s["tiny_classes_per_task"]
    n_img = classes * (s["tiny_train_per_class"] + s["tiny_test_per_class"]) + \
        10 * (s["cifar_train_per_class"] + s["cifar_test_per_class"])
    table = s["codebooks"] * s["n_keys"] * classes * 4
    k, ft_t = s["tiny_classes_per_task"], s["ft_tasks"]  # naive, slow-backbone and ConFiT fine-tuning, first tasks
    n_tune = len(s["grid_ft_lr"]) + len(s["grid_slca_lr"]) + len(s["grid_confit_lr"])  # their learning rates
    ft_train = (S * 3 * ft_t + n_tune * s["ft_tune_tasks"]) * k * s["ft_train_per_class"] * s["ft_epochs"]
    ft_fwd = S * 3 * ft_t * (ft_t + 1) / 2 * k * s["tiny_test_per_class"]
    flops = n_img * img.forward + ft_train * img.train + ft_fwd * img.forward
    host = n_img * 1280 * 4 + table * 2 + (s["proj_dim"] ** 2 + s["randumb_dim"] ** 2) * 8 * 2 + \
        100_000 * 64 * 64 * 3 * 2 + 2 * GiB
    return flops, max(_gpu(img, s["ft_batch"], 1), table * 3), host


def _ch07(s: dict) -> tuple[float, float, float]:
    txt, S = text_model(s["layer"]), s["seeds"]
    n_txt = s["text_tasks"] * 15 * (s["text_train_per_class"] + s["text_held_per_class"])
    ada = n_txt * (s["adapter_epochs"] + s["distil_epochs"] * 2)  # each seed's run, and each tuning run
    cold = s["cold_iterations"] * s["cold_contributors"] * 15 * s["cold_train_per_class"] * (s["cold_epochs"] + 1)
    runs_ada, runs_cold = S + len(s["grid_ada_lr"]), S + len(s["grid_cold_lr"])
    flops = (runs_ada * ada + runs_cold * cold) * txt.train + (S + 2) * n_txt * 4 * txt.forward
    host = (s["proj_dim"] ** 2) * 8 * 2 + 2 * GiB
    return flops, _gpu(txt, s["batch_size_text"]), host


WORKLOADS: dict[str, Callable[[dict], tuple[float, float, float]]] = {
    "00_setting": _ch00, "01_pretrainers": _ch01, "02_dkvb": _ch02, "03_ada": _ch03, "04_confit": _ch04,
    "05_cold_fusion": _ch05, "06_comparison": _ch06,
             "07_text_comparison": _ch07}


def announce(cfg: config.ChapterConfig) -> None:
    """Print the chapter's estimated cost first when its profile asks (``estimate_cost = true``: `full`), at the
    profile's own sizes, not a smoke run's caps. Called by each chapter after `config.chapter_config`."""
    if config.load_book()["profiles"][cfg.profile].get("estimate_cost"):
        print(estimate(cfg.chapter, config.chapter_settings(cfg.chapter, cfg.profile, smoke_run=False)).line())


def estimate(chapter: str, settings: dict[str, Any]) -> Estimate:
    """The estimated cost of `chapter` with `settings` (a profile's table, e.g. `config.chapter_settings`)."""
    if chapter not in WORKLOADS:
        raise KeyError(f"no workload formula for chapter {chapter!r}: add one to cl_lib.cost.WORKLOADS")
    flops, gpu, host = WORKLOADS[chapter](settings)
    return Estimate(chapter, flops, gpu, host)
