"""The book's own small Vision Transformer, readable top to bottom (after timm's vision_transformer).

Patch embedding → [CLS] + patch tokens + learned positions → blocks `x + MSA(LN(x))`, `x + MLP(LN(x))` →
LN. Each attention keeps its last probabilities (`keep_attn`) so that maps can be drawn, and has two
optional hooks, `logit_adaptor` (on QKᵀ, before the softmax) and `out_adaptor` (on attention × V), that
`cl_lib.methods.glad` fills; with `adapt=False` they are skipped and the block is the untouched backbone.
No pretrained ViT is available offline: chapter 01 trains this one along a stream; `save_weights` /
`load_weights` store it with a SHA-256 so other chapters can load it as a backbone.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .cache import atomic_write_bytes


@dataclass(frozen=True)
class ViTConfig:
    """Shape of a ViT: image and patch size (pixels), width, depth, heads, MLP expansion."""

    img_size: int = 32
    patch: int = 4
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0

    def __post_init__(self) -> None:
        if self.img_size % self.patch:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch {self.patch}; pick sizes that divide.")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}; pick a width divisible by heads.")

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.img_size // self.patch


class Attention(nn.Module):
    """Multi-head self-attention that keeps its probabilities and accepts GLAD-style adaptors."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.logit_adaptor: nn.Module | None = None  # acts on QKᵀ (B, H, N, N)
        self.out_adaptor: nn.Module | None = None  # acts on attention × V (B, H, N, D/H)
        self.adapt = True  # False: skip the adaptors, i.e. run the adaptor-free backbone
        self.keep_attn = False
        self.attn: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-2, -1)  # (B, H, N, N)
        if self.adapt and self.logit_adaptor is not None:
            logits = self.logit_adaptor(logits)
        attn = (logits * self.scale).softmax(dim=-1)
        if self.keep_attn:
            self.attn = attn.detach()
        out = attn @ v  # (B, H, N, D/H)
        if self.adapt and self.out_adaptor is not None:
            out = self.out_adaptor(out)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """A plain ViT; `forward` returns the representation [CLS ; mean patch token] (2·dim)."""

    def __init__(self, cfg: ViTConfig = ViTConfig()):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Conv2d(3, cfg.dim, kernel_size=cfg.patch, stride=cfg.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))  # used by masked image modelling only
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.grid ** 2, cfg.dim))
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.num_features = 2 * cfg.dim
        for p in (self.cls_token, self.mask_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        self.apply(_init)

    def tokens(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """All output tokens (B, 1 + N, dim); patches where `mask` (B, N) is True become the mask token."""
        if x.shape[-1] != self.cfg.img_size or x.shape[-2] != self.cfg.img_size:
            raise ValueError(f"expected {self.cfg.img_size}px images, got {tuple(x.shape[-2:])}; resize first.")
        p = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, N, dim)
        if mask is not None:
            p = torch.where(mask.unsqueeze(-1), self.mask_token.to(p.dtype), p)
        x = torch.cat([self.cls_token.expand(len(p), -1, -1), p], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.tokens(x)
        return torch.cat([t[:, 0], t[:, 1:].mean(1)], dim=1)


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight), nn.init.zeros_(m.bias)


@torch.no_grad()
def attention_maps(model: VisionTransformer, x: torch.Tensor) -> list[torch.Tensor]:
    """Attention probabilities of every layer, each (B, heads, 1 + N, 1 + N); rows sum to one."""
    was = model.training
    model.eval()
    for blk in model.blocks:
        blk.attn.keep_attn = True
    try:
        model.tokens(x)
        return [blk.attn.attn for blk in model.blocks]
    finally:
        for blk in model.blocks:
            blk.attn.keep_attn, blk.attn.attn = False, None
        model.train(was)


def attention_rollout(attns: list[torch.Tensor]) -> torch.Tensor:
    """Abnar & Zuidema's rollout: product over layers of (mean-over-heads attention + I), rows renormalised."""
    out = None
    for a in attns:
        a = a.mean(1)
        a = a + torch.eye(a.shape[-1], device=a.device)
        a = a / a.sum(-1, keepdim=True)
        out = a if out is None else a @ out
    return out  # (B, 1 + N, 1 + N): row 0 = how much the CLS output draws on each input token


def mean_attention_distance(attns: list[torch.Tensor], grid: int, patch: int) -> torch.Tensor:
    """Per layer and head, the attention-weighted distance (pixels) between patch tokens, as in ViT's Fig. 7."""
    ij = torch.stack(torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij"), -1).reshape(-1, 2)
    dist = torch.cdist(ij.float(), ij.float()) * patch  # (N, N) pixels
    rows = []
    for a in attns:
        p = a[:, :, 1:, 1:]
        p = p / p.sum(-1, keepdim=True)  # patch-to-patch attention, CLS column dropped
        rows.append((p * dist.to(p.device)).sum(-1).mean((0, 2)))  # (heads,)
    return torch.stack(rows)  # (depth, heads)


def save_weights(model: VisionTransformer, path: str | Path) -> str:
    """Write config + state dict to `path` (safe torch format); return its SHA-256 for `load_weights`."""
    buf = io.BytesIO()
    torch.save({"config": json.dumps(asdict(model.cfg)), "state_dict": model.state_dict()}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())  # a killed write never leaves half a weights file
    return hashlib.sha256(buf.getvalue()).hexdigest()


def load_weights(path: str | Path, sha256: str | None = None) -> VisionTransformer:
    """A `VisionTransformer` from `save_weights`' file, refused if its SHA-256 differs from `sha256`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No ViT weights at {path}; train them with chapter 01 (full profile) first.")
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if sha256 is not None and digest != sha256:
        raise ValueError(f"{path.name}: SHA-256 {digest[:12]}… differs from the expected {sha256[:12]}…; "
                         "the file is corrupt or from another run — re-download or retrain it.")
    entry = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    model = VisionTransformer(ViTConfig(**json.loads(entry["config"])))
    model.load_state_dict(entry["state_dict"])
    return model
