"""The book's build: chapter notebooks, their execution (once per source and profile), and the static site.

    python scripts/book.py notebooks [--solutions]   # jupytext: chapters/*.py -> _build/notebooks/<variant>/
    python scripts/book.py execute [--chapters SLUG ...] [--timeout S]
    python scripts/book.py runtimes                   # WORKSHOP.md's runtime table from the last measured run
    python -m scripts.site                            # _build/html from the executed notebooks (make book:
                                                      # `execute` what is stale, then the site)

The variant is the profile (``CL_BOOK_PROFILE``), or ``full-smoke`` under ``CL_BOOK_SMOKE=1``. An executed
notebook lives in `_build/executed/<variant>/<slug>.ipynb` with a stamp `<slug>.json`: the key of what it
ran (the chapter's source, all of cl_lib's source, its settings), its status and runtime. `make chapters`
(nbval, through `scripts/nbcapture.py`) writes the same files, so a book built after the tests renders the
tests' execution. A chapter that fails, times out or kills its kernel is shown as failed; the build goes on.
"""
from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cl_lib import config  # noqa: E402

BUILD = Path(os.environ.get("CL_BOOK_BUILD", ROOT / "_build"))
INLINE = "module://matplotlib_inline.backend_inline"


def variant() -> str:
    """`quick`, `full`, or `full-smoke`: which executions a build reads and writes."""
    return config.active_profile() + ("-smoke" if config.smoke() else "")


def sources_digest() -> str:
    """Digest of every source file of cl_lib (any change there may change any chapter's output)."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "cl_lib").rglob("*.py")):
        h.update(p.relative_to(ROOT).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def chapter_key(source: Path, slug: str | None) -> str:
    """What determines an execution: the notebook's source, cl_lib's source, the variant and its settings."""
    h = hashlib.sha256(source.read_bytes())
    h.update(sources_digest().encode())
    h.update(variant().encode())
    settings = config.chapter_settings(slug) if slug in {Path(c["file"]).stem for c in config.chapters()} else {}
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(json.dumps(site_settings(), sort_keys=True).encode())  # the install cell names the repository
    return h.hexdigest()[:32]


def sources() -> dict[str, Path]:
    """Every notebook source of the book by slug: the chapters in book.toml's order, then the solutions."""
    out = {Path(c["file"]).stem: ROOT / "chapters" / c["file"] for c in config.chapters()}
    for p in sorted((ROOT / "chapters" / "solutions").glob("*.py")):
        out[f"solutions-{p.stem}"] = p
    return out


def site_settings() -> dict[str, str]:
    """book.toml's [site] table: where the book's repository lives (for launch links and the install cell)."""
    site = config.load_book().get("site", {})
    return {"repository": str(site.get("repository", "")).rstrip("/"), "branch": str(site.get("branch", "main")),
            "pages_branch": str(site.get("pages_branch", "gh-pages"))}


INSTALL_CELL = """# Added by the book's build: where the book's library is missing (Colab, Binder, a notebook opened on its own),
# fetch the book and install it; elsewhere this does nothing.
import importlib.util, subprocess, sys
if importlib.util.find_spec("cl_lib") is None:
    REPOSITORY = {repository!r}  # book.toml, [site] repository
    if not REPOSITORY:
        raise ModuleNotFoundError("cl_lib is not installed: clone the book's repository, run `make install` there "
                                  "(README) and open this notebook from its chapters/ folder.")
    subprocess.run(["git", "clone", "--depth", "1", REPOSITORY, "cl-book"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "cl-book"], check=True)
    sys.path.insert(0, "cl-book")"""


def to_notebook(slug: str, path: Path):
    import jupytext
    import nbformat

    nb = jupytext.read(path)
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    nb.cells.insert(first_code, nbformat.v4.new_code_cell(INSTALL_CELL.format(**site_settings()),
                                                          metadata={"tags": ["install"]}))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["cl_book"] = {"slug": slug, "key": chapter_key(path, slug), "variant": variant()}
    return nb


def write_notebooks(which: list[str]) -> Path:
    """The notebooks nbval runs, each stamped with its key."""
    import nbformat

    out = BUILD / "notebooks" / variant()
    out.mkdir(parents=True, exist_ok=True)
    for slug in which:
        nbformat.write(to_notebook(slug, sources()[slug]), out / f"{slug}.ipynb")
    return out


def executed_dir() -> Path:
    return BUILD / "executed" / variant()


def write_executed(out: Path, slug: str, nb, *, status: str, seconds: float, key: str | None) -> None:
    """Store an executed notebook and its stamp (written last, so a stamp always has its notebook)."""
    import nbformat

    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / f"{slug}.ipynb")
    stamp = {"slug": slug, "key": key, "status": status, "seconds": round(seconds, 1), "variant": variant(),
             "device": config.device(), "when": time.strftime("%Y-%m-%d %H:%M")}
    (out / f"{slug}.json").write_text(json.dumps(stamp, indent=1))


def stamp(slug: str) -> dict[str, Any] | None:
    path = executed_dir() / f"{slug}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def kernel_env() -> dict[str, str]:
    """The kernel's environment: this tree's cl_lib first on the path, inline figures, static widgets."""
    env = dict(os.environ, CL_BOOK_PROFILE=config.active_profile(), CL_BOOK_STATIC="1", MPLBACKEND=INLINE)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def execute(slug: str, timeout: int) -> dict[str, Any]:
    """Run one notebook with nbclient; any failure (error, timeout, dead kernel) is recorded, not raised."""
    from nbclient import NotebookClient

    nb = to_notebook(slug, sources()[slug])
    t0, status = time.perf_counter(), "ok"
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(sources()[slug].parent)}})
    try:
        client.execute(env=kernel_env())
    except Exception as err:  # CellExecutionError, CellTimeoutError, DeadKernelError, ...
        last = [line for line in str(err).strip().splitlines() if line.strip()][-1:] or [""]
        status = f"failed: {type(err).__name__}: {last[0][:300]}"
    seconds = time.perf_counter() - t0
    write_executed(executed_dir(), slug, nb, status=status, seconds=seconds, key=nb.metadata["cl_book"]["key"])
    return {"slug": slug, "status": status, "seconds": seconds}


def execute_stale(which: list[str], timeout: int) -> list[dict[str, Any]]:
    """Execute every notebook whose stamp does not match its current key; keep the others."""
    results = []
    for i, slug in enumerate(which, 1):
        s = stamp(slug)
        key = chapter_key(sources()[slug], slug)
        if s and s.get("key") == key and (executed_dir() / f"{slug}.ipynb").exists():
            print(f"[{i}/{len(which)}] {slug}: up to date ({s['status']}, {s['seconds']:.0f} s when executed)", flush=True)
            results.append(s)
            continue
        print(f"[{i}/{len(which)}] {slug}: executing ({variant()}) ...", flush=True)
        r = execute(slug, timeout)
        print(f"[{i}/{len(which)}] {slug}: {r['status']} in {r['seconds']:.0f} s", flush=True)
        results.append(r)
    return results


RUNTIMES = ("<!-- runtimes: generated by `python scripts/book.py runtimes` from the last measured run -->",
            "<!-- end of runtimes -->")


def runtimes_table() -> str:
    """The workshop guide's runtime table, from the stamps of the last execution of every chapter and solution."""
    rows, whens = [], set()
    for ch in config.chapters():
        slug = Path(ch["file"]).stem
        s, sol = stamp(slug) or {}, stamp(f"solutions-{slug}") or {}
        whens |= {x["when"][:10] for x in (s, sol) if x.get("when")}
        cold = f"{s['seconds']:.0f} s" if s.get("seconds") is not None and s.get("status") == "ok" else "not measured"
        solved = f"{sol['seconds']:.0f} s" if sol.get("seconds") is not None and sol.get("status") == "ok" else "—"
        rows.append(f"| {slug[:2]} {ch['title'].split(':')[0]} | {cold} | {solved} |")
    when = ", ".join(sorted(whens)) or "never"
    return "\n".join([f"Profile `{variant()}`, cold caches, measured {when} by `make test` (nbval):", "",
                      "| chapter | cold run | its solutions |", "|---|---|---|", *rows])


def write_runtimes(path: Path) -> bool:
    """Replace the block between the RUNTIMES markers of `path` with `runtimes_table()`; whether it changed."""
    text = path.read_text()
    start, end = text.index(RUNTIMES[0]) + len(RUNTIMES[0]), text.index(RUNTIMES[1])
    new = text[:start] + "\n" + runtimes_table() + "\n" + text[end:]
    if new != text:
        path.write_text(new)
    return new != text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["notebooks", "execute", "runtimes"])
    ap.add_argument("--chapters", nargs="*", help="slugs (default: every chapter in book.toml)")
    ap.add_argument("--solutions", action="store_true", help="the exercise solutions instead of the chapters")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = ap.parse_args()
    try:
        config.active_profile()
    except config.ConfigError as err:
        raise SystemExit(str(err))
    everything = list(sources())
    default = [s for s in everything if s.startswith("solutions-") == args.solutions]
    which = args.chapters or default
    unknown = [s for s in which if s not in everything]
    if unknown:
        raise SystemExit(f"Unknown chapter(s) {unknown}; known: {', '.join(everything)}")
    if args.command == "runtimes":  # the workshop guide's table, from the last measured run of this profile
        print(f"WORKSHOP.md: {'updated' if write_runtimes(ROOT / 'WORKSHOP.md') else 'unchanged'}")
        return 0
    if args.command == "notebooks":
        print(f"notebooks: {write_notebooks(which)}/")
        return 0
    execute_stale(which, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
