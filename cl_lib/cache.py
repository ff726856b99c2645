"""A small on-disk cache for expensive, reusable work (features, decoded images, checkpoints).

An entry is named by the SHA-256 of its key (a JSON-able dict of everything that determines it),
written atomically (temporary file, then rename), and carries a checksum of its own payload, so a
truncated or corrupted entry is detected, recomputed and replaced, never trusted.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from . import config

T = TypeVar("T")
MAGIC = b"CLBOOK-CACHE-1 "


def key_hash(key: dict[str, Any]) -> str:
    """Stable hex digest of a key dict (sorted JSON)."""
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_entry(path: Path, key: dict[str, Any], value: Any) -> None:
    """Serialise `value` with its key; prefix the payload's SHA-256 so corruption is detectable."""
    buf = io.BytesIO()
    torch.save({"key": json.dumps(key, sort_keys=True, default=str), "value": value}, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    atomic_write_bytes(path, MAGIC + digest + b"\n" + payload)


def load_entry(path: Path, key: dict[str, Any]) -> Any:
    """Return the stored value, or raise `ValueError` if the entry is corrupt or for another key."""
    blob = path.read_bytes()
    head, sep, payload = blob.partition(b"\n")
    if not sep or not head.startswith(MAGIC):
        raise ValueError(f"{path.name}: not a cache entry")
    if hashlib.sha256(payload).hexdigest().encode() != head[len(MAGIC):]:
        raise ValueError(f"{path.name}: checksum mismatch (truncated or corrupted)")
    entry = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    if entry.get("key") != json.dumps(key, sort_keys=True, default=str):
        raise ValueError(f"{path.name}: stored key differs from the requested one")
    return entry["value"]


def cached(kind: str, key: dict[str, Any], compute: Callable[[], T], *, verbose: bool = True) -> T:
    """Return the cached value for `key`, computing and storing it on a miss or a corrupt entry."""
    path = config.cache_dir(kind) / f"{key_hash(key)[:32]}.pt"
    if path.exists():
        try:
            return load_entry(path, key)
        except Exception as err:  # corrupt, truncated, or foreign: recompute, never trust
            if verbose:
                print(f"[cache] {kind}: discarding bad entry ({err}); recomputing")
            path.unlink(missing_ok=True)
    value = compute()
    save_entry(path, key, value)
    return value


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
