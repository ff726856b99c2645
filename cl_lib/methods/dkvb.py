"""The Discrete Key-Value Bottleneck (Träuble et al., ICML 2023): localized updates through frozen keys.

A frozen encoder gives z (dim m). Fixed random projections cut z into C heads of dim d_k; each head snaps
to the nearest of its N keys and fetches that key's value (a vector of class scores); the decoder has no
parameters: the logits are the mean of the C fetched values. The keys are fitted once, unsupervised, on
*another* data set (EMA k-means) and then frozen; the values start at zero and are the only parameters.
A gradient step therefore changes only the values that the batch fetched: learning is local.

Because everything before the values is frozen, each example's C key indices never change: we compute
them once (`snap`) and train the value table on indices (`train_values`), which makes many epochs cheap.

The book's interpretation (details the paper leaves open): keys start as random vectors of the key-init
data; a dead key is re-seeded together with its EMA sums (the authors' code moves only the key, which the
next EMA update pulls back); usage counts one per training example per fetched key; plain SGD (no momentum).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Bottleneck:
    """The model after the encoder: projections (C, m, d_k), keys (C, N, d_k), values (C, N, d_v), usage (C, N)."""

    proj: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    counts: torch.Tensor


def random_projections(m: int, codebooks: int, dim_key: int, seed: int = 0, identity: bool = False) -> torch.Tensor:
    """Fixed projections (C, m, d_k): N(0, 1) entries, each column L2-normalised over m (identity: split z)."""
    if identity:
        if m != codebooks * dim_key:
            raise ValueError(f"An identity split needs m = C * d_k (got m={m}, C={codebooks}, d_k={dim_key}).")
        return torch.eye(m).reshape(m, codebooks, dim_key).permute(1, 0, 2).contiguous()
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(codebooks, m, dim_key, generator=g)
    return p / p.norm(dim=1, keepdim=True)


def project(z: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """Encoder output (B, m) → the C heads (B, C, d_k)."""
    if z.ndim != 2 or z.shape[1] != proj.shape[1]:
        raise ValueError(f"Expected features of shape (B, {proj.shape[1]}), got {tuple(z.shape)}.")
    return torch.einsum("bm,cmk->bck", z.float(), proj)


def snap(heads: torch.Tensor, keys: torch.Tensor, allowed: torch.Tensor | None = None,
         max_elements: int = 2 ** 22) -> torch.Tensor:
    """Index (B, C) of each head's nearest key (squared L2); with `allowed` (C, N), only allowed keys compete."""
    if allowed is not None and not bool(allowed.any(1).all()):
        raise ValueError("Every codebook needs at least one allowed key; train on some data before masking.")
    out = []
    chunk = max(1, max_elements // (keys.shape[0] * keys.shape[1]))  # rows per block of (C, rows, N) distances
    k2 = (keys ** 2).sum(-1)  # (C, N); ||h||² is the same for every key, so it is left out
    if allowed is not None:
        k2 = k2.masked_fill(~allowed, float("inf"))  # a disallowed key is infinitely far
    keys_t = keys.transpose(1, 2)
    for i in range(0, len(heads), chunk):
        h = heads[i:i + chunk].transpose(0, 1)  # (C, b, d_k)
        out.append(torch.baddbmm(k2[:, None, :], h, keys_t, alpha=-2).argmin(-1).T)  # k2 − 2 h·k, per codebook
    return torch.cat(out) if out else torch.empty(0, keys.shape[0], dtype=torch.long)


@torch.no_grad()
def snap_update(heads: torch.Tensor, keys: torch.Tensor, new: torch.Tensor,
                best: tuple[torch.Tensor, torch.Tensor] | None = None,
                max_elements: int = 2 ** 22) -> tuple[torch.Tensor, torch.Tensor]:
    """`snap` to the allowed keys, kept up to date as keys become allowed: compares each head only with the keys
    `new` (C, N) allowed since the last call. Returns (index (B, C), k2 − 2 h·k of that key (B, C)); pass it back
    as `best`. The keys never move, so chapter 2 tests after each of many tasks without re-snapping to all keys."""
    B, (C, N, d) = heads.shape[0], keys.shape
    if best is None:
        best = (torch.zeros(B, C, dtype=torch.long, device=heads.device),
                torch.full((B, C), float("inf"), device=heads.device))
    counts = new.sum(1)
    m = int(counts.max()) if new.numel() else 0
    if m > 0:
        order = torch.argsort((~new).to(torch.int8), dim=1, stable=True)[:, :m]  # (C, m): the new keys first
        valid = torch.arange(m, device=keys.device)[None] < counts[:, None]
        k = torch.gather(keys, 1, order[..., None].expand(C, m, d))  # (C, m, d_k)
        k2 = (k ** 2).sum(-1).masked_fill(~valid, float("inf"))
        chunk = max(1, max_elements // (C * m))
        idx, dist = best
        out_i, out_d = [], []
        for i in range(0, B, chunk):
            h = heads[i:i + chunk].transpose(0, 1)  # (C, b, d_k)
            dmin, j = torch.baddbmm(k2[:, None, :], h, k.transpose(1, 2), alpha=-2).min(-1)  # (C, b)
            cand, dmin = torch.gather(order, 1, j).T, dmin.T
            old_i, old_d = idx[i:i + chunk], dist[i:i + chunk]
            better = (dmin < old_d) | ((dmin == old_d) & (cand < old_i))  # ties: the lower index, as argmin
            out_i.append(torch.where(better, cand, old_i)), out_d.append(torch.where(better, dmin, old_d))
        best = (torch.cat(out_i), torch.cat(out_d))
    if B and bool(torch.isinf(best[1]).any()):
        raise ValueError("Every codebook needs at least one allowed key; train on some data before masking.")
    return best


def ema_kmeans(x: torch.Tensor, n_keys: int, *, steps: int, batch_size: int = 256, decay: float = 0.95,
               eps: float = 1e-5, dead_fraction: float = 0.1, seed: int = 0) -> torch.Tensor:
    """Fit N keys per head to unlabelled heads x (n, C, d_k) by EMA k-means; re-seed dead keys from the batch."""
    g = torch.Generator().manual_seed(seed)
    n, C, dk = x.shape
    dev = x.device
    keys = x[torch.randint(n, (C, n_keys), generator=g).to(dev), torch.arange(C, device=dev)[:, None]]  # (C, N, d_k)
    size = torch.ones(C, n_keys, device=dev)
    total = keys.clone()
    offset = torch.arange(C, device=dev) * n_keys
    for _ in range(steps):
        xb = x[torch.randint(n, (batch_size,), generator=g).to(dev)]  # (B, C, d_k)
        flat = (snap(xb, keys) + offset).flatten()  # each head's nearest key, in the flattened (C * N) table
        bsize = torch.zeros(C * n_keys, device=dev).index_add_(0, flat, torch.ones(len(flat), device=dev))
        bsum = torch.zeros(C * n_keys, dk, device=dev).index_add_(0, flat, xb.reshape(-1, dk))
        bsize, bsum = bsize.view(C, n_keys), bsum.view(C, n_keys, dk)
        size.mul_(decay).add_(bsize, alpha=1 - decay)
        total.mul_(decay).add_(bsum, alpha=1 - decay)
        tot = size.sum(1, keepdim=True)
        smoothed = (size + eps) / (tot + n_keys * eps) * tot  # Laplace smoothing: no division by zero
        keys = total / smoothed[..., None]
        dead = size < dead_fraction * batch_size / n_keys
        if dead.any():  # a key nobody picks is moved onto a random vector of the batch, its running sums with it
            # (the authors' code moves only the key; the next EMA update then pulls it back to its old average)
            c, k = dead.nonzero(as_tuple=True)
            keys[c, k] = xb[torch.randint(batch_size, (len(c),), generator=g).to(dev), c]
            size[c, k] = dead_fraction * batch_size / n_keys
            total[c, k] = keys[c, k] * size[c, k, None]
    return keys


def create(z_keyinit: torch.Tensor, n_classes: int, *, codebooks: int, n_keys: int, dim_key: int,
           steps: int, batch_size: int = 256, identity: bool = False, seed: int = 0) -> Bottleneck:
    """A bottleneck whose keys are fitted on `z_keyinit` (another data set's features) and frozen; values zero."""
    dev = z_keyinit.device
    proj = random_projections(z_keyinit.shape[1], codebooks, dim_key, seed, identity).to(dev)
    keys = ema_kmeans(project(z_keyinit, proj), n_keys, steps=steps, batch_size=batch_size, seed=seed)
    return Bottleneck(proj, keys, torch.zeros(codebooks, n_keys, n_classes, device=dev),
                      torch.zeros(codebooks, n_keys, device=dev))


def key_indices(b: Bottleneck, z: torch.Tensor, masked: bool = False) -> torch.Tensor:
    """Each example's C key indices (B, C); `masked`: only keys used in training may be chosen (test time)."""
    return snap(project(z, b.proj), b.keys, b.counts > 0 if masked else None)


def flat_index(idx: torch.Tensor, n_keys: int) -> torch.Tensor:
    """Key indices (B, C) as rows of the (C·N, d_v) value table (codebook c's keys are rows c·N .. c·N+N-1)."""
    return idx + torch.arange(idx.shape[1], device=idx.device) * n_keys


def decode(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The parameter-free decoder: logits (B, d_v) = mean over codebooks of the fetched values."""
    C, N, dv = values.shape
    return F.embedding(flat_index(idx, N), values.reshape(C * N, dv)).mean(1)


def forward(b: Bottleneck, z: torch.Tensor, masked: bool = True) -> torch.Tensor:
    """Logits of encoder features z: project, snap (to used keys when `masked`), fetch, average."""
    return decode(b.values, key_indices(b, z, masked))


def record_usage(b: Bottleneck, idx: torch.Tensor) -> None:
    """Add one to the usage count of every key each training example fetches."""
    flat = flat_index(idx, b.counts.shape[1]).flatten()
    b.counts.view(-1).index_add_(0, flat, torch.ones(len(flat), device=idx.device))


def train_values(b: Bottleneck, idx: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float = 0.3,
                 batch_size: int = 256, clip: float = 1.0, label_smoothing: float = 0.1, seed: int = 0) -> list[float]:
    """SGD on the values from cached key indices (n, C); a step touches only the fetched rows. Mean loss per epoch.

    The gradient is written out: for the mean decoder and cross-entropy with label smoothing ε over d_v classes,
    ∂L/∂logits = (softmax − ((1−ε)·onehot + ε/d_v)) / B, and each fetched value receives 1/C of its example's."""
    if len(idx) != len(y):
        raise ValueError(f"{len(idx)} index rows but {len(y)} labels.")
    C, N, dv = b.values.shape
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= dv):
        raise ValueError(f"Labels must lie in [0, {dv}); got [{int(y.min())}, {int(y.max())}].")
    record_usage(b, idx)
    table = b.values.view(C * N, dv)  # a view: updates land in b.values
    flat = flat_index(idx, N)
    g = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g).to(idx.device)
        total = 0.0
        for i in range(0, len(perm), batch_size):
            bi = perm[i:i + batch_size]
            fb, yb = flat[bi], y[bi]
            logits = F.embedding(fb, table).mean(1)  # (B, d_v)
            target = F.one_hot(yb, dv).to(logits.dtype) * (1 - label_smoothing) + label_smoothing / dv
            logp = logits.log_softmax(1)
            d_logits = (logp.exp() - target) / len(bi)
            rows, inv = torch.unique(fb, return_inverse=True)  # the only rows this step can touch
            grad = torch.zeros(len(rows), dv, device=table.device).index_add_(
                0, inv.flatten(), (d_logits / C).repeat_interleave(C, 0))
            grad *= min(1.0, clip / (grad.norm().item() + 1e-12))  # = clip_grad_norm_ on the whole table
            table.index_add_(0, rows, grad, alpha=-lr)
            total += float(-(target * logp).sum(1).mean()) * len(bi)
        history.append(total / max(len(y), 1))
    return history


def key_votes(b: Bottleneck) -> torch.Tensor:
    """The class each key's value votes for (C, N); -1 for keys never used in training."""
    return torch.where(b.counts > 0, b.values.argmax(-1), torch.full_like(b.counts, -1, dtype=torch.long))


class OneHotLinear(nn.Module):
    """A linear layer on DKVB's one-hot key codes (chapter 2's decomposition): per-key class scores, averaged over
    codebooks as DKVB's decoder does, with an optional shared bias. Trained by plain SGD without a bias it *is*
    DKVB's value update (a step touches only the fetched rows); a bias, or Adam's running moments, let every step
    move what old inputs depend on."""

    def __init__(self, codebooks: int, n_keys: int, n_classes: int, bias: bool = True):
        super().__init__()
        self.n_keys = n_keys
        self.scores = nn.Embedding(codebooks * n_keys, n_classes)
        self.bias = nn.Parameter(torch.zeros(n_classes)) if bias else None
        nn.init.zeros_(self.scores.weight)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        logits = self.scores(flat_index(idx, self.n_keys)).mean(1)
        return logits if self.bias is None else logits + self.bias


class UsedKeySnap:
    """Fixed query heads snapped to the keys in use, kept up to date as more keys come into use (`snap_update`):
    the keys never move, so testing after every task (chapters 02 and 06) compares each head only with the keys
    that came into use since the last test. Call it with the bottleneck; it returns the key indices (B, C)."""

    def __init__(self, heads: torch.Tensor):
        self.heads, self.best, self.allowed = heads, None, None

    def __call__(self, b: Bottleneck) -> torch.Tensor:
        used = b.counts > 0
        self.best = snap_update(self.heads, b.keys, used if self.allowed is None else used & ~self.allowed, self.best)
        self.allowed = used
        return self.best[0]


class Learner:
    """The bottleneck as a learner (`cl_lib.methods.Learner`, chapter 06): keys fitted once by `create`, the value
    table trained task after task (`train_values` with `fit`'s settings), test features snapped to the keys in use."""

    def __init__(self, b: Bottleneck, *, seed: int = 0, setup_flops: float = 0.0, **fit: Any):
        self.b, self.fit, self.seed, self.t = b, fit, seed, 0
        self.z, self.snapped, self.flops = None, None, setup_flops

    def learn(self, z: torch.Tensor, y: torch.Tensor) -> None:
        train_values(self.b, key_indices(self.b, z), y, seed=self.seed + self.t, **self.fit)
        self.t += 1
        C, N, dv = self.b.values.shape
        dk = self.b.keys.shape[-1]
        # project and snap each example once, then per epoch fetch, average and update C values of d_v per example
        self.flops += len(z) * (2.0 * z.shape[1] * C * dk + 2.0 * C * N * dk + 3.0 * self.fit.get("epochs", 1) * C * dv)

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        if self.z is not z:  # a new test set: snap from scratch; the same one: only the keys newly in use
            self.z, self.snapped = z, UsedKeySnap(project(z, self.b.proj))
        return decode(self.b.values, self.snapped(self.b))

    def nbytes(self) -> int:
        """Keys, projections and the value table (a fixed size, whatever the classes seen)."""
        return (self.b.keys.numel() + self.b.proj.numel() + self.b.values.numel()) * 4


def key_fit_flops(n: int, dim: int, *, codebooks: int, n_keys: int, dim_key: int, steps: int, batch_size: int) -> float:
    """The training operations of `create`: projecting the n key-initialisation features, then `steps` EMA k-means
    steps of `batch_size` distances to every key of every codebook (chapter 06 charges them to DKVB)."""
    return 2.0 * n * dim * codebooks * dim_key + steps * batch_size * codebooks * n_keys * 3.0 * dim_key
