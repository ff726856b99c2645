"""A small on-disk cache for expensive, reusable work (decoded images, features, trained runs).

An entry is named by the SHA-256 of its key (a JSON-able dict of everything that determines it: settings,
the data's content digest, the code's digest). It is two files, each written atomically (temporary file,
then rename): `<name>.pt`, the value, and `<name>.json`, the key and the SHA-256 of the `.pt`, written
last. A missing, truncated, corrupted or foreign entry is recomputed and replaced, never trusted; and the
value is read with ``torch.load(weights_only=True)``: tensors, NumPy arrays, numbers, strings, lists and
dicts only, so nothing in the cache folder can run as code.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import json
import os
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator, TypeVar

import numpy as np
import torch

from . import config

V = TypeVar("V")
FORMAT = 2
STALE_SECONDS = 3600  # a temporary file older than this belongs to a write that was killed


def key_hash(key: dict[str, Any]) -> str:
    """Stable hex digest of a key dict (sorted JSON)."""
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: Path, algo: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file (sha256, or md5 where a source publishes only that), read in chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def array_digest(a: Any) -> str:
    """Short digest of an integer array (e.g. which examples were taken): part of cache keys."""
    return hashlib.sha256(np.ascontiguousarray(np.asarray(a, dtype=np.int64)).tobytes()).hexdigest()[:24]


def code_digest(*objs: Any) -> str:
    """Digest of the source code of modules, classes or functions (the image decoders' key in `data`)."""
    h = hashlib.sha256()
    for obj in objs:
        h.update(inspect.getsource(obj).encode())
    return h.hexdigest()[:16]


LIBRARY = Path(__file__).resolve().parent


def library_digest(root: Path = LIBRARY) -> str:
    """Digest of every source file of cl_lib (names and contents): part of the key of every computed result, so
    that editing any library function — a method, the preprocessing, `train.fit` — recomputes what it touched.
    Read afresh on each call (cheap), so an edit under autoreload counts too."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether a global's value is a small plain setting (numbers, strings, short containers of them)."""
    if value is None or type(value) in (bool, int, float, str):
        return True
    if depth < 3 and type(value) in (list, tuple) and len(value) <= 256:
        return all(_plain(v, depth + 1) for v in value)
    if depth < 3 and type(value) is dict and len(value) <= 256:
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _source(obj: Any) -> bytes:
    try:
        return inspect.getsource(obj).encode()
    except (OSError, TypeError):  # no source on record (e.g. `exec`): the code itself, without its file name
        import marshal

        code = getattr(obj, "__code__", None)
        return marshal.dumps(code.replace(co_filename="")) if code is not None else repr(obj).encode()


def _names(code: Any) -> Iterator[str]:
    yield from code.co_names
    yield from code.co_freevars
    for const in code.co_consts:
        if inspect.iscode(const):
            yield from _names(const)


def reach_digest(fn: Callable[..., Any]) -> str:
    """Digest of `fn`'s source and of everything of its own module it reaches by name, transitively: the functions
    and classes defined beside it (a chapter's run loop and its helpers) and the plain settings they read
    (``EPOCHS = 3``). Library modules are left to `library_digest`; data to the caller's data digests."""
    module = getattr(fn, "__module__", None)
    h, seen, todo = hashlib.sha256(), set(), [("<fn>", fn)]
    while todo:
        name, obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        h.update(name.encode() + b"=" + _source(obj) + b"\0")
        members = [obj] + ([v for v in vars(obj).values() if inspect.isfunction(v)] if inspect.isclass(obj) else [])
        for member in members:
            code = getattr(member, "__code__", None)
            if code is None:
                continue
            scope = {**member.__globals__}
            for var, cell in zip(code.co_freevars, member.__closure__ or ()):
                try:
                    scope[var] = cell.cell_contents
                except ValueError:  # an empty cell (assigned later)
                    pass
            for ref in sorted(set(_names(code))):
                if ref not in scope:
                    continue
                value = scope[ref]
                if (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ == module:
                    todo.append((ref, value))
                elif not inspect.ismodule(value) and not callable(value) and _plain(value):
                    h.update(f"{ref}:{json.dumps(value, sort_keys=True, default=str)}\0".encode())
    return h.hexdigest()[:16]


def versions() -> dict[str, str]:
    """Versions of the numerical libraries results depend on (those installed)."""
    import importlib.metadata as md

    out = {}
    for dist in ("torch", "timm", "numpy", "transformers"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def environment() -> dict[str, str | int]:
    """What float results depend on besides code and data: torch's version, the CPU kernel set ATen picked (by
    instruction set, or ATEN_CPU_CAPABILITY) and the thread count. Part of the keys of computed features, so that a
    cache filled under one never serves another (chapter 00 explains why the low bits move)."""
    import timm

    return {**versions(), "torch": torch.__version__, "timm": timm.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}


def umask() -> int:
    """The process's file-creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write(f)` on a temporary file beside `path`, then move it into place: readers see the old file
    or the whole new one, never a part. The file gets the usual permissions (0666 less the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600: a cache shared by a group must stay readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def sweep_temporaries(folder: Path, max_age: float = STALE_SECONDS, suffixes: tuple[str, ...] = (".tmp", ".part")) -> int:
    """Delete temporary files left by killed writes (older than `max_age` seconds); return how many."""
    now, n = time.time(), 0
    for p in folder.glob(".*"):
        if p.suffix in suffixes and p.is_file():
            try:
                if now - p.stat().st_mtime > max_age:
                    p.unlink()
                    n += 1
            except FileNotFoundError:  # another process swept it first
                pass
    return n


def _encode(value: Any) -> Any:
    """Plain containers of tensors and numbers: NumPy arrays become tagged tensors, NumPy scalars Python ones."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("cannot cache a NumPy array of Python objects; store a list or a numeric array")
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return type(value)((k, _encode(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_encode(v) for v in value)
    if value is None or isinstance(value, (torch.Tensor, str, bytes, int, float, bool)):
        return value
    raise TypeError(f"cannot cache a {type(value).__name__}: store tensors, arrays, numbers, strings, lists and dicts")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            return value["__ndarray__"].numpy()
        return type(value)((k, _decode(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_decode(v) for v in value)
    return value


def _key_text(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def save_entry(path: Path, key: dict[str, Any], value: Any) -> None:
    """Write `value` to `path` (.pt) and its key and checksum beside it (.json, written last)."""
    encoded = _encode(value)
    atomic_write(path, lambda f: torch.save(encoded, f))
    meta = {"format": FORMAT, "key": _key_text(key), "sha256": file_digest(path), "bytes": path.stat().st_size}
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta).encode())


def load_entry(path: Path, key: dict[str, Any]) -> Any:
    """The stored value, or `ValueError` if the entry is incomplete, corrupt, for another key, or not plain data."""
    meta_path = path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{meta_path.name}: no readable checksum file ({type(err).__name__})") from err
    if meta.get("format") != FORMAT or meta.get("key") != _key_text(key):
        raise ValueError(f"{path.name}: stored key differs from the requested one")
    if not path.is_file() or file_digest(path) != meta.get("sha256"):
        raise ValueError(f"{path.name}: checksum mismatch (truncated or corrupted)")
    try:
        return _decode(torch.load(path, map_location="cpu", weights_only=True, mmap=True))  # no extra copies
    except Exception as err:  # anything but plain data is refused, never unpickled
        raise ValueError(f"{path.name}: not plain data ({type(err).__name__}: {str(err).splitlines()[0][:120]})") from err


_SWEPT: set[str] = set()


def _sweep_everywhere_once() -> None:
    """Once per process and cache: sweep stale temporaries in the cache root (a download's `.part`) and in every
    kind's folder, not only the one in use (a killed write elsewhere would otherwise keep its bytes for good)."""
    root = config.cache_dir()
    if str(root) in _SWEPT:
        return
    _SWEPT.add(str(root))
    for folder in [root, *(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())]:
        sweep_temporaries(folder)


@contextlib.contextmanager
def entry_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `<name>.lock` beside an entry while it is computed and written, so that two
    processes asking for the same entry compute it once, and neither deletes the other's half-written files."""
    with open(path.with_suffix(".lock"), "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def stored_key(key: dict[str, Any], float_environment: bool = True) -> dict[str, Any]:
    """The key an entry is stored under: `key`, plus `environment()` unless `float_environment` is False."""
    return {**key, "float_environment": environment()} if float_environment else key


def cached(kind: str, key: dict[str, Any], compute: Callable[[], V], *, verbose: bool = True,
           float_environment: bool = True) -> V:
    """Return the cached value for `key`, computing and storing it on a miss or a bad entry. A first read takes no
    lock; a miss takes the entry's lock, reads again (another process may just have written it), and only then
    discards a bad entry and computes. Unless `float_environment` is False (work no torch kernel touches, such as
    decoding images), the key also holds `environment()`: a cache filled with one CPU kernel set or thread count
    never serves another."""
    key = stored_key(key, float_environment)
    folder = config.cache_dir(kind)
    sweep_temporaries(folder)
    _sweep_everywhere_once()
    path = folder / f"{key_hash(key)[:32]}.pt"
    if path.exists() and path.with_suffix(".json").exists():
        try:
            return load_entry(path, key)
        except ValueError:  # maybe being written right now: decide under the lock
            pass
    with entry_lock(path):
        if path.exists() or path.with_suffix(".json").exists():
            try:
                return load_entry(path, key)
            except ValueError as err:  # corrupt, truncated, foreign or unsafe: recompute, never trust
                if verbose:
                    print(f"[cache] {kind}: discarding bad entry ({err}); recomputing")
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
        value = compute()
        save_entry(path, key, value)
    return value
