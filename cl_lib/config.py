"""The book's configuration: `book.toml`, the active profile, and where things live on disk.

One switch selects the scale of every chapter: ``CL_BOOK_PROFILE`` (``quick`` or ``full``).
Without it the book runs ``full`` when a CUDA device is present and ``quick`` otherwise.
"""
from __future__ import annotations

import os
import time
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: `book.toml`, `chapters/` and `data/` sit here."""


class ConfigError(ValueError):
    """A configuration the book cannot run with (unknown profile, chapter, key)."""


def book_file() -> Path:
    """Path of `book.toml` (override with ``CL_BOOK_TOML``, used by the tests)."""
    return Path(os.environ.get("CL_BOOK_TOML", ROOT / "book.toml"))


@lru_cache(maxsize=8)
def _read(path: str, mtime: float) -> dict[str, Any]:
    with open(path, "rb") as f:
        return tomllib.load(f)


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
    started: float = field(default_factory=time.perf_counter)

    def __getattr__(self, key: str) -> Any:
        params = self.__dict__.get("params", {})
        if key in params:
            return params[key]
        raise AttributeError(
            f"{self.__dict__.get('chapter')!r} has no setting {key!r} in profile "
            f"{self.__dict__.get('profile')!r}; book.toml defines: {', '.join(sorted(params))}"
        )

    def elapsed(self) -> float:
        """Seconds since the chapter loaded its configuration."""
        return time.perf_counter() - self.started

    def report(self) -> str:
        """The line every chapter prints at its end: profile and runtime."""
        return f"[{self.chapter}] profile={self.profile} device={self.device} runtime={self.elapsed():.1f} s"


def chapter_config(chapter: str, profile: str | None = None) -> ChapterConfig:
    """Settings of `chapter` (its file stem, e.g. ``00_setting``) in the active or given profile."""
    book = load_book()
    profile = profile or active_profile()
    if profile not in book.get("profiles", {}):
        raise ConfigError(f"Unknown profile {profile!r}. Valid profiles: {', '.join(profiles())}.")
    known = [Path(c["file"]).stem for c in chapters()]
    table = book["profiles"][profile]
    if chapter not in known or chapter not in table:
        raise ConfigError(
            f"Unknown chapter {chapter!r}. Chapters in book.toml: {', '.join(known)}. "
            f"A new chapter needs a [[chapters]] entry and a [profiles.<profile>.{chapter}] table."
        )
    cfg = ChapterConfig(chapter=chapter, profile=profile, params=dict(table[chapter]),
                        seed=int(book.get("book", {}).get("seed", 0)), device=device())
    print(f"[{chapter}] profile={profile} ({table.get('description', '')}) device={cfg.device}")
    return cfg


def cache_dir(*parts: str) -> Path:
    """A folder in the book's cache (``CL_BOOK_CACHE``, default `data/cache/`), created on demand."""
    base = Path(os.environ.get("CL_BOOK_CACHE", ROOT / "data" / "cache"))
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def figure_dir(chapter: str) -> Path:
    """Where a chapter saves its figures as PNG (`_build/figures/<chapter>/`)."""
    path = Path(os.environ.get("CL_BOOK_BUILD", ROOT / "_build")) / "figures" / chapter
    path.mkdir(parents=True, exist_ok=True)
    return path
