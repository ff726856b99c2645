"""The book's configuration: `book.toml`, the active profile, and where things live on disk.

One switch selects the scale of every chapter: ``CL_BOOK_PROFILE`` (``quick`` or ``full``).
Without it the book runs ``full`` when a CUDA device is present and ``quick`` otherwise. ``CL_BOOK_SMOKE=1``
on top of ``full`` runs every shape and code path of ``full`` with data, epochs and steps capped by each
chapter's ``[profiles.full.<chapter>.smoke]`` table (CI's check that ``full`` runs); its claims cells compute
everything and skip only the paper asserts.
"""
from __future__ import annotations

import os
import time
import tomllib
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: `book.toml`, `chapters/` and `data/` sit here."""


class ConfigError(ValueError):
    """A configuration the book cannot run with (unknown profile, chapter, key)."""


def book_file() -> Path:
    """Path of `book.toml` (override with ``CL_BOOK_TOML``, used by the tests)."""
    return Path(os.environ.get("CL_BOOK_TOML", ROOT / "book.toml"))


@lru_cache(maxsize=8)
def _read(path: str, mtime: float) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            book = tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err}); fix the syntax there.") from None
    validate(book, path)
    return book


ZERO_OK = {"first_layer", "layer"}  # integer settings for which 0 is a meaningful value (a layer index)
PROFILE_KEYS = {"description": str, "verified": bool, "estimate_cost": bool}


def _kind(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def validate(book: dict[str, Any], path: str = "book.toml") -> None:
    """Check book.toml when it is read, so that a typo fails at once with one line naming the file, the key and
    the fix, not as a TypeError deep in a training loop: [book], every [[chapters]] entry, and each chapter's
    table in every profile (the same keys and types in each, counts ≥ 1, numbers ≥ 0)."""
    def fail(msg: str) -> None:
        raise ConfigError(f"{path}: {msg}")

    meta = book.get("book", {})
    if not isinstance(meta.get("title", ""), str):
        fail("[book] title must be a string")
    if "seed" in meta and (type(meta["seed"]) is not int or meta["seed"] < 0):
        fail(f"[book] seed = {meta['seed']!r} must be a non-negative integer, e.g. seed = 0")
    entries = book.get("chapters", [])
    if not isinstance(entries, list) or not entries:
        fail("no [[chapters]] entries; each chapter needs one with file, title and paper")
    for i, ch in enumerate(entries, 1):
        for key in ("file", "title", "paper"):
            if not isinstance(ch.get(key), str) or not ch.get(key):
                fail(f"[[chapters]] entry {i} ({ch.get('title') or ch.get('file') or 'untitled'}) has no {key!r}; "
                     f"add {key} = \"...\"" + (" (e.g. \"07_slug.py\")" if key == "file" else ""))
        if not ch["file"].endswith(".py"):
            fail(f"[[chapters]] entry {i}: file = {ch['file']!r} must name a chapter source, e.g. \"07_slug.py\"")
    profiles_ = book.get("profiles", {})
    if not profiles_:
        fail("no [profiles.<name>] tables; the book needs at least [profiles.quick]")
    slugs = [Path(ch["file"]).stem for ch in entries]
    for name, prof in profiles_.items():
        for key, value in prof.items():
            if key in PROFILE_KEYS and not isinstance(value, PROFILE_KEYS[key]):
                fail(f"[profiles.{name}] {key} must be {_kind(PROFILE_KEYS[key]())}, got {value!r}")
            if key not in PROFILE_KEYS and key not in slugs:
                near = get_close_matches(key, slugs + list(PROFILE_KEYS), n=1)
                fail(f"[profiles.{name}.{key}] is not a chapter of [[chapters]]"
                     + (f"; did you mean {near[0]!r}?" if near else "; add a [[chapters]] entry for it"))
        for slug in slugs:
            if not isinstance(prof.get(slug), dict):
                fail(f"no [profiles.{name}.{slug}] table; every chapter needs one in every profile")
    names = list(profiles_)
    for slug in slugs:
        tables = {n: {k: v for k, v in profiles_[n][slug].items() if k != "smoke"} for n in names}
        for n, table in tables.items():
            others = [m for m in names if m != n]
            for key, value in table.items():
                ref = next((tables[m][key] for m in others if key in tables[m]), None)
                if others and all(key not in tables[m] for m in others):
                    near = get_close_matches(key, list(tables[others[0]]), n=1)
                    fail(f"[profiles.{n}.{slug}] {key!r} is not a setting of this chapter in "
                         f"[profiles.{others[0]}.{slug}]" + (f"; did you mean {near[0]!r}?" if near else
                                                             f"; add it to [profiles.{others[0]}.{slug}] too"))
                _check_value(fail, f"[profiles.{n}.{slug}] {key}", key, value, ref)
            smoke_caps = profiles_[n][slug].get("smoke", {})
            for key, value in smoke_caps.items():
                if key not in table:
                    near = get_close_matches(key, list(table), n=1)
                    fail(f"[profiles.{n}.{slug}.smoke] caps {key!r}, which the profile does not set"
                         + (f"; did you mean {near[0]!r}?" if near else ""))
                _check_value(fail, f"[profiles.{n}.{slug}.smoke] {key}", key, value, table[key])


def _check_value(fail: Callable[[str], None], where: str, key: str, value: Any, ref: Any) -> None:
    """One setting: the type the other profiles give it (an integer may stand for a number), counts ≥ 1."""
    if ref is not None and not (type(value) is type(ref) or (type(value) is int and type(ref) is float)):
        fail(f"{where} = {value!r} must be {_kind(ref)}, as in the other profiles (e.g. {ref!r})")
    if type(value) is int and value < (0 if key in ZERO_OK else 1):
        fail(f"{where} = {value} must be ≥ {0 if key in ZERO_OK else 1}")
    if type(value) is float and value < 0:
        fail(f"{where} = {value} must be ≥ 0")


def load_book() -> dict[str, Any]:
    """The parsed `book.toml` (re-read when the file changes)."""
    path = book_file()
    if not path.exists():
        raise ConfigError(f"book.toml not found at {path}; run from a checkout of the book.")
    return _read(str(path), path.stat().st_mtime)


def profiles() -> list[str]:
    """Names of the profiles `book.toml` defines."""
    return sorted(load_book().get("profiles", {}))


def chapters() -> list[dict[str, str]]:
    """The chapters in reading order: each a dict with `file`, `title`, `paper`."""
    return list(load_book().get("chapters", []))


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # the config can be read without torch
        return False
    return torch.cuda.is_available()


def active_profile() -> str:
    """The profile in force: ``CL_BOOK_PROFILE`` if set, else `full` with CUDA, else `quick`."""
    name = os.environ.get("CL_BOOK_PROFILE", "").strip() or ("full" if cuda_available() else "quick")
    valid = profiles()
    if name not in valid:
        raise ConfigError(
            f"Unknown profile {name!r} (from CL_BOOK_PROFILE). Valid profiles: {', '.join(valid)}. "
            f"Set e.g. CL_BOOK_PROFILE=quick, or unset it to pick by hardware."
        )
    return name


def _flag(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() not in ("", "0", "false", "no")


def smoke() -> bool:
    """Whether this is a smoke run (``CL_BOOK_SMOKE``): full shapes, capped data, epochs and steps."""
    return _flag("CL_BOOK_SMOKE")


def static() -> bool:
    """Whether no one is watching (``CL_BOOK_STATIC``: tests, the book build): widgets draw plain images."""
    return _flag("CL_BOOK_STATIC")


def chapter_settings(chapter: str, profile: str | None = None, smoke_run: bool | None = None) -> dict[str, Any]:
    """A chapter's settings in a profile, with the smoke caps applied in a smoke run (no printing)."""
    book = load_book()
    profile = profile or active_profile()
    smoke_run = smoke() if smoke_run is None else smoke_run
    if profile not in book.get("profiles", {}):
        raise ConfigError(f"Unknown profile {profile!r}. Valid profiles: {', '.join(profiles())}.")
    known = [Path(c["file"]).stem for c in chapters()]
    table = book["profiles"][profile]
    if chapter not in known or chapter not in table:
        raise ConfigError(
            f"Unknown chapter {chapter!r}. Chapters in book.toml: {', '.join(known)}. "
            f"A new chapter needs a [[chapters]] entry and a [profiles.<profile>.{chapter}] table."
        )
    params = dict(table[chapter])
    caps = params.pop("smoke", None)
    if smoke_run:
        if caps is None:
            raise ConfigError(f"CL_BOOK_SMOKE is set but [profiles.{profile}.{chapter}.smoke] does not exist; the smoke "
                              f"run is defined for the full profile: set CL_BOOK_PROFILE=full, or unset CL_BOOK_SMOKE.")
        unknown = sorted(set(caps) - set(params))
        if unknown:
            raise ConfigError(f"[profiles.{profile}.{chapter}.smoke] caps {unknown}, which the profile does not set.")
        params.update(caps)
    return params


def device() -> str:
    """`cuda` when available, else `cpu`."""
    return "cuda" if cuda_available() else "cpu"


@dataclass
class ChapterConfig:
    """A chapter's settings in one profile. Read values as attributes: ``cfg.epochs``."""

    chapter: str
    profile: str
    params: dict[str, Any]
    seed: int = 0
    device: str = "cpu"
    smoke: bool = False
    started: float = field(default_factory=time.perf_counter)

    def __getattr__(self, key: str) -> Any:
        params = self.__dict__.get("params", {})
        if key in params:
            return params[key]
        raise AttributeError(
            f"{self.__dict__.get('chapter')!r} has no setting {key!r} in profile "
            f"{self.__dict__.get('profile')!r}; book.toml defines: {', '.join(sorted(params))}"
        )

    @property
    def assert_claims(self) -> bool:
        """Whether the paper's claims are asserted: always, except in a smoke run (capped data prove nothing)."""
        return not self.smoke

    def elapsed(self) -> float:
        """Seconds since the chapter loaded its configuration."""
        return time.perf_counter() - self.started

    def report(self) -> str:
        """The line every chapter prints at its end: profile and runtime."""
        return (f"[{self.chapter}] profile={self.profile}{' (smoke)' if self.smoke else ''} device={self.device} "
                f"runtime={self.elapsed():.1f} s")


def chapter_config(chapter: str, profile: str | None = None) -> ChapterConfig:
    """Settings of `chapter` (its file stem, e.g. ``00_setting``) in the active or given profile; prints the
    profile (and, for an unverified profile, that it has not yet been run where it is meant to run)."""
    book = load_book()
    profile = profile or active_profile()
    params = chapter_settings(chapter, profile)
    table = book["profiles"][profile]
    cfg = ChapterConfig(chapter=chapter, profile=profile, params=params, seed=int(book.get("book", {}).get("seed", 0)),
                        device=device(), smoke=smoke())
    notes = [table.get("description", "")]
    if smoke():
        notes.append("SMOKE RUN: every shape of this profile, data, epochs and steps capped; paper asserts skipped")
    if table.get("verified") is False:
        notes.append("UNVERIFIED: no run of this profile on its intended hardware has been recorded yet")
    print(f"[{chapter}] profile={profile} ({'; '.join(n for n in notes if n)}) device={cfg.device}")
    return cfg


def cache_dir(*parts: str) -> Path:
    """A folder in the book's cache (``CL_BOOK_CACHE``, default `data/cache/`), created on demand."""
    base = Path(os.environ.get("CL_BOOK_CACHE", ROOT / "data" / "cache")).expanduser()
    path = base.joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"The cache folder {path} cannot be created: {base} or a folder in it is a file. Point "
                          f"CL_BOOK_CACHE at a folder (or unset it to use data/cache/).") from None
    except OSError as err:  # no such parent, read-only, permission, a virtual file system (/proc) ...
        raise ConfigError(f"The cache folder {path} cannot be created ({err.strerror or err}). Point CL_BOOK_CACHE at "
                          f"a writable folder (or unset it to use data/cache/).") from None
    return path


def build_dir(*parts: str) -> Path:
    """A folder under the build output (``CL_BOOK_BUILD``, default `_build/`), created on demand."""
    path = Path(os.environ.get("CL_BOOK_BUILD", ROOT / "_build")).expanduser().joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"The build folder {path} cannot be created ({err.strerror or err}). Point CL_BOOK_BUILD at "
                          f"a writable folder (or unset it to use _build/).") from None
    return path


def figure_dir(chapter: str) -> Path:
    """Where a chapter saves its figures as PNG (`_build/figures/<chapter>/`)."""
    return build_dir("figures", chapter)
