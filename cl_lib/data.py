"""The book's four data sets: find them, verify them, load them.

Resolution order for every file in `data/manifest.toml`: the folder named by ``CL_BOOK_DATA`` →
`data/cache/` → a download from the official source (streamed to a `.part` file, checksum-verified, moved
into place atomically). Archives are decoded straight from the archive into an in-memory tensor (nothing
is extracted to disk, so no archive member can land outside the cache), cached on disk once decoded.
A loaded set knows its name, split and the digest of its content, so everything computed from it can be
keyed by what it is made of.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pickle
import re
import tarfile
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from . import cache, config

MANIFEST = config.ROOT / "data" / "manifest.toml"
OFFLINE_SWITCHES = ("CL_BOOK_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class DataError(RuntimeError):
    """A data set that cannot be had: missing offline, or failing its checksum."""


@dataclass
class ImageSet:
    """Images as one uint8 tensor (N, H, W, 3), integer labels and class names; which data set and split they
    are, and `source`, a digest of their content (the archive's checksum and the decoder's code)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    class_names: list[str]
    name: str = "custom"
    split: str = "train"
    source: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def digest(self) -> str:
        """What the content is: `source` when loaded from a verified file, else a hash of the tensors."""
        if not self.source:
            h = hashlib.sha256(self.images.contiguous().numpy().tobytes())
            h.update(self.labels.numpy().astype(np.int64).tobytes())
            self.source = "tensors:" + h.hexdigest()[:24]
        return self.source


@dataclass
class TextSet:
    """Utterances with integer labels; `groups` names natural tasks (e.g. CLINC150 domains); name, split and
    `source` (a digest of the files it was read from) as for `ImageSet`."""

    texts: list[str]
    labels: torch.Tensor
    classes: list[str]
    groups: dict[str, list[int]] = field(default_factory=dict)
    name: str = "custom"
    split: str = "train"
    source: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def digest(self) -> str:
        """What the content is: `source` when loaded from verified files, else a hash of texts and labels."""
        if not self.source:
            h = hashlib.sha256("\x00".join(self.texts).encode())
            h.update(self.labels.numpy().astype(np.int64).tobytes())
            self.source = "texts:" + h.hexdigest()[:24]
        return self.source


def manifest() -> dict[str, Any]:
    with open(MANIFEST, "rb") as f:
        return tomllib.load(f)


def dataset_info(name: str) -> dict[str, Any]:
    """Title, licence, citation and files of a data set in the manifest."""
    m = manifest()
    if name not in m:
        raise DataError(f"Unknown data set {name!r}. Known: {', '.join(sorted(m))} (data/manifest.toml).")
    return m[name]


def checksum(spec: dict[str, Any]) -> tuple[str, str]:
    """(algorithm, expected hex digest) of a manifest file entry: sha256, or md5 where only that is published."""
    algo = "sha256" if "sha256" in spec else "md5"
    if spec.get(algo) is None:
        raise DataError(f"data/manifest.toml gives no checksum for {spec['name']}; refusing to use it unverified.")
    return algo, spec[algo]


def mismatch(path: Path, spec: dict[str, Any]) -> str | None:
    """How `path` differs from the manifest's size (if given) and checksum; None when it matches."""
    algo, want = checksum(spec)
    size = path.stat().st_size
    if "size" in spec and size != spec["size"]:
        return f"{size:,} bytes, the manifest expects {spec['size']:,}"
    got = cache.file_digest(path, algo)
    return None if got == want else f"{algo} is {got}, the manifest expects {want}"


def verify(path: Path, spec: dict[str, Any]) -> None:
    """Raise `DataError` unless `path` has the manifest's size (if given) and checksum."""
    if (why := mismatch(path, spec)) is not None:
        raise DataError(
            f"Checksum mismatch for {path.name} ({path}): {why}. The file is corrupt or a different version; "
            f"delete it and place a fresh copy (source: {spec.get('url', 'the book’s offline copies')})."
        )


def search_dirs() -> list[Path]:
    """Where files are looked for, in order: ``CL_BOOK_DATA`` (if set), then `data/cache/`."""
    dirs = []
    if os.environ.get("CL_BOOK_DATA"):
        dirs.append(Path(os.environ["CL_BOOK_DATA"]).expanduser())
    dirs.append(config.cache_dir())
    return dirs


def offline() -> str | None:
    """The offline switch that is set (``CL_BOOK_OFFLINE``, ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``), if any."""
    for var in OFFLINE_SWITCHES:
        if os.environ.get(var, "").strip().lower() not in ("", "0", "false", "no"):
            return var
    return None


DOWNLOAD_DEADLINE = float(os.environ.get("CL_BOOK_DOWNLOAD_DEADLINE", 3 * 3600))  # seconds for one whole file


def download(url: str, dest: Path, spec: dict[str, Any], *, timeout: float = 30,
             deadline: float | None = None) -> None:
    """Stream `url` to a `.part` file beside `dest`, verify it, then move it into place; on any failure the
    `.part` file is removed and `dest` is untouched. A file larger than the manifest's `size` is refused as soon
    as that shows (its Content-Length first), and the whole transfer gets `deadline` seconds, not only each read
    `timeout`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    cache.sweep_temporaries(dest.parent)
    limit = spec.get("size")
    deadline = DOWNLOAD_DEADLINE if deadline is None else deadline
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        started = time.monotonic()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            announced = resp.headers.get("Content-Length")
            if limit is not None and announced is not None and announced.isdigit() and int(announced) > limit:
                raise DataError(f"The download of {dest.name} from {url} announces {int(announced):,} bytes where the "
                                f"manifest says {limit:,}; nothing was kept. Check the URL, or place a verified copy in "
                                f"{dest.parent} or in the folder named by CL_BOOK_DATA.")
            got = 0
            while block := resp.read1(1 << 20):  # what has arrived, up to 1 MiB: the deadline is checked often
                got += len(block)
                if limit is not None and got > limit:
                    raise DataError(f"The download of {dest.name} from {url} exceeds the manifest's {limit:,} bytes; "
                                    f"stopped, nothing was kept. Check the URL, or place a verified copy in "
                                    f"{dest.parent} or in the folder named by CL_BOOK_DATA.")
                if time.monotonic() - started > deadline:
                    raise DataError(f"The download of {dest.name} from {url} took longer than {deadline:.0f} s; "
                                    f"stopped, nothing was kept. Try again later (CL_BOOK_DOWNLOAD_DEADLINE sets the "
                                    f"limit), or place a verified copy in {dest.parent}.")
                out.write(block)
        if (why := mismatch(Path(tmp), spec)) is not None:
            algo, want = checksum(spec)
            raise DataError(
                f"The download of {dest.name} from {url} failed its check ({why}); nothing was kept. "
                f"Try again later, or place a verified copy ({algo} {want}) in {dest.parent} "
                f"or in the folder named by CL_BOOK_DATA."
            )
        os.chmod(tmp, 0o666 & ~cache.umask())
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def resolve(name: str, *, download_missing: bool = True) -> dict[str, Path]:
    """Verified local paths of a data set's files, one per `group` (alternatives share a group)."""
    info = dataset_info(name)
    groups: dict[str, list[dict[str, Any]]] = {}
    for spec in info["files"]:
        groups.setdefault(spec.get("group", "archive"), []).append(spec)
    found: dict[str, Path] = {}
    switch = offline()
    for group, specs in groups.items():
        for spec in specs:  # a local copy of any alternative first
            for d in search_dirs():
                path = d / spec["name"]
                if path.is_file():
                    verify(path, spec)
                    found[group] = path
                    break
            if group in found:
                break
        if group in found:
            continue
        errors = []
        for spec in specs if download_missing and not switch else []:
            if "url" not in spec:
                continue
            dest = config.cache_dir() / spec["name"]
            try:
                print(f"[data] downloading {spec['url']} -> {dest}")
                download(spec["url"], dest, spec)
                found[group] = dest
                break
            except (urllib.error.URLError, OSError, TimeoutError) as err:
                errors.append(f"{spec['url']}: {err}")
        if group not in found:
            why = "; ".join(errors) or (f"offline: {switch} is set" if switch else "download disabled")
            where = " or ".join(str(d) for d in search_dirs())
            options = "; ".join(
                f"{s['name']}" + (f" from {s['url']}" if "url" in s else " (the book's offline copy)") for s in specs
            )
            raise DataError(
                f"{info['title']}: file not found and not downloadable ({why}).\n"
                f"Needed one of: {options}.\n"
                f"Place it by hand under {where} (keeping that relative name), or point CL_BOOK_DATA at a folder "
                f"holding the book's offline copies."
            )
    return found


def _open_archive(path: Path):
    """Yield (member name, bytes-reader) for every regular file of a .tar.gz or .zip, in stored order.
    Members are read into memory, never extracted: links, devices and odd paths cannot touch the disk."""
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.is_dir() and (info.external_attr >> 16) & 0o170000 != 0o120000:  # skip symlinks
                    yield info.filename, lambda info=info: z.read(info)
    else:
        with tarfile.open(path, "r:*") as t:
            for m in t:
                if m.isfile():
                    yield m.name, lambda m=m: t.extractfile(m).read()


def _decode_image(blob: bytes) -> np.ndarray:
    """JPEG/PNG bytes → HxWx3 uint8 (greyscale and palette images become RGB)."""
    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _file_number(name: str) -> int:
    m = re.search(r"_(\d+)\.", name)
    return int(m.group(1)) if m else 0


def _decode_tiny_imagenet(path: Path) -> dict[str, Any]:
    train, val, texts = {}, {}, {}
    for name, read in _open_archive(path):
        parts = name.split("/")
        if name.endswith(".JPEG") and "/train/" in name:
            train[(parts[-3], _file_number(parts[-1]))] = _decode_image(read())
        elif name.endswith(".JPEG") and "/val/" in name:
            val[parts[-1]] = _decode_image(read())
        elif parts[-1] in ("wnids.txt", "words.txt", "val_annotations.txt"):
            texts[parts[-1]] = read().decode()
    missing = [f for f in ("wnids.txt", "words.txt", "val_annotations.txt") if f not in texts] + \
        (["train/<wnid>/images/*.JPEG"] if not train else []) + (["val/images/*.JPEG"] if not val else [])
    if missing:  # e.g. a member stored as a link, which is never followed
        raise DataError(f"{path.name} is not a complete Tiny ImageNet archive: no regular file for "
                        f"{', '.join(missing)} (links are not followed). Use the official archive or the book's copy.")
    wnids = sorted(texts["wnids.txt"].split())
    words = dict(line.split("\t", 1) for line in texts["words.txt"].splitlines() if "\t" in line)
    index = {w: i for i, w in enumerate(wnids)}
    keys = sorted(train, key=lambda k: (index[k[0]], k[1]))
    val_ann = [line.split("\t")[:2] for line in texts["val_annotations.txt"].splitlines() if line.strip()]
    val_ann.sort(key=lambda fw: (index[fw[1]], _file_number(fw[0])))
    return {
        "train": (torch.from_numpy(np.stack([train[k] for k in keys])),
                  torch.tensor([index[k[0]] for k in keys])),
        "val": (torch.from_numpy(np.stack([val[f] for f, _ in val_ann])),
                torch.tensor([index[w] for _, w in val_ann])),
        "classes": wnids,
        "class_names": [words.get(w, w).split(",")[0].strip() for w in wnids],
    }


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class _BatchUnpickler(pickle.Unpickler):
    """Reads CIFAR's official python batches, allowing only what they hold: dicts, lists, bytes, numbers and
    NumPy arrays. Any other global in the stream (the way a pickle runs code) is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core is numpy._core's old name
                return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a CIFAR batch may hold only arrays, lists and numbers; refusing {module}.{name}")


def read_cifar_batch(blob: bytes) -> dict[bytes, Any]:
    """One official CIFAR python batch (a pickled dict) through the restricted unpickler."""
    out = _BatchUnpickler(io.BytesIO(blob), encoding="bytes").load()
    if not isinstance(out, dict) or b"data" not in out or b"labels" not in out:
        raise DataError("not a CIFAR-10 batch: expected a dict with b'data' and b'labels'")
    return out


def _decode_cifar10(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"classes": CIFAR10_CLASSES, "class_names": CIFAR10_CLASSES}
    if path.name == "cifar-10-python.tar.gz":  # the official pickles
        batches: dict[str, list] = {"train": [], "test": []}
        for name, read in _open_archive(path):
            base = name.rsplit("/", 1)[-1]
            if base.startswith("data_batch_") or base == "test_batch":
                d = read_cifar_batch(read())
                split = "test" if base == "test_batch" else "train"
                x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
                batches[split].append((base, x, list(d[b"labels"])))
        for split, items in batches.items():
            items.sort(key=lambda it: it[0])
            out[split] = (torch.from_numpy(np.concatenate([x for _, x, _ in items])).contiguous(),
                          torch.tensor([y for _, _, ys in items for y in ys]))
        return out
    found: dict[str, list] = {"train": [], "test": []}
    for name, read in _open_archive(path):
        parts = name.split("/")
        if name.endswith(".jpg") and len(parts) >= 3 and parts[-3] in found and parts[-2] in CIFAR10_CLASSES:
            found[parts[-3]].append((CIFAR10_CLASSES.index(parts[-2]), parts[-1], _decode_image(read())))
    for split, items in found.items():
        items.sort(key=lambda it: (it[0], it[1]))
        out[split] = (torch.from_numpy(np.stack([im for _, _, im in items])), torch.tensor([c for c, _, _ in items]))
    return out


_DECODED: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}  # one decoded copy per archive and process


def _decoded(name: str, decoder: Callable[[Path], dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """The decoded archive of a data set (memory, else disk cache, else decode) and its content digest."""
    path = resolve(name)["archive"]
    spec = next(s for s in dataset_info(name)["files"] if s["name"] == path.name)
    algo, digest = checksum(spec)
    source = f"{algo}:{digest[:24]}/decoder:{cache.code_digest(decoder, _decode_image)}"
    if (name, source) not in _DECODED:
        key = {"dataset": name, "file": path.name, "source": source}
        _DECODED[(name, source)] = (cache.cached("decoded", key, lambda: decoder(path), float_environment=False), source)
    return _DECODED[(name, source)]


def load_tiny_imagenet(split: str = "train") -> ImageSet:
    """Tiny ImageNet-200 `train` or `val` (the labelled validation set; `test` is accepted as its name)."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"Tiny ImageNet split must be 'train' or 'val' (got {split!r}).")
    split = "val" if split == "test" else split
    d, source = _decoded("tiny_imagenet", _decode_tiny_imagenet)
    x, y = d[split]
    return ImageSet(x, y, d["classes"], d["class_names"], "tiny_imagenet", split, source)


def load_cifar10(split: str = "train") -> ImageSet:
    """CIFAR-10 `train` (50,000) or `test` (10,000), 32x32 RGB."""
    if split not in ("train", "test"):
        raise ValueError(f"CIFAR-10 split must be 'train' or 'test' (got {split!r}).")
    d, source = _decoded("cifar10", _decode_cifar10)
    x, y = d[split]
    return ImageSet(x, y, d["classes"], d["class_names"], "cifar10", split, source)


def _files_source(name: str, paths: dict[str, Path]) -> str:
    """The verified checksums of the files a text set was read from: what its content is."""
    specs = dataset_info(name)["files"]
    return "+".join(checksum(next(s for s in specs if p.as_posix().endswith(s["name"])))[1][:16]
                    for p in paths.values())


def load_clinc150(split: str = "train") -> TextSet:
    """CLINC150 in-scope intents (`train`, `val` or `test`); `groups` maps each domain to its intent ids."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"CLINC150 split must be 'train', 'val' or 'test' (got {split!r}).")
    paths = resolve("clinc150")
    data = json.loads(paths["data"].read_text())
    domains = json.loads(paths["domains"].read_text())
    classes = [intent for d in sorted(domains) for intent in sorted(domains[d])]
    index = {c: i for i, c in enumerate(classes)}
    rows = data[split]
    groups = {d: [index[i] for i in sorted(domains[d])] for d in sorted(domains)}
    return TextSet([t for t, _ in rows], torch.tensor([index[c] for _, c in rows]), classes, groups,
                   "clinc150", split, _files_source("clinc150", paths))


def load_banking77(split: str = "train") -> TextSet:
    """Banking77 `train` (10,003) or `test` (3,080)."""
    if split not in ("train", "test"):
        raise ValueError(f"Banking77 split must be 'train' or 'test' (got {split!r}).")
    paths = resolve("banking77")
    with open(paths["train"], newline="") as f:
        classes = sorted({row["category"] for row in csv.DictReader(f)})
    with open(paths[split], newline="") as f:
        rows = list(csv.DictReader(f))
    index = {c: i for i, c in enumerate(classes)}
    return TextSet([r["text"] for r in rows], torch.tensor([index[r["category"]] for r in rows]), classes, {},
                   "banking77", split, _files_source("banking77", paths))


LOADERS: dict[str, Callable[[str], ImageSet | TextSet]] = {
    "tiny_imagenet": load_tiny_imagenet, "cifar10": load_cifar10,
    "clinc150": load_clinc150, "banking77": load_banking77}


def load(name: str, split: str = "train") -> ImageSet | TextSet:
    """Load a data set by its manifest name (`tiny_imagenet`, `cifar10`, `clinc150`, `banking77`)."""
    if name not in LOADERS:
        raise DataError(f"Unknown data set {name!r}. Known: {', '.join(sorted(LOADERS))}.")
    return LOADERS[name](split)


def test_split(name: str) -> str:
    """The split a data set's stream is tested on (Tiny ImageNet's labelled `val`, else `test`)."""
    return "val" if name == "tiny_imagenet" else "test"


def citation(name: str) -> str:
    """One line for a chapter's references: citation and licence."""
    info = dataset_info(name)
    return f"{info['citation']} Licence: {info['licence']} ({info['homepage']})"
