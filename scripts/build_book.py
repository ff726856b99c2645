"""Build the static HTML book: execute every chapter of book.toml in the active profile, export each
executed notebook to HTML, and write a contents page with per-chapter runtimes.

    python scripts/build_book.py [--chapters 00_setting 02_dkvb] [--timeout 3600]

Output: _build/html/index.html (contents) and _build/html/<chapter>.html; executed notebooks in
_build/executed/. Exits non-zero if a chapter fails (its error is shown on its page and in the contents).
"""
from __future__ import annotations

import argparse
import html
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cl_lib import config  # noqa: E402


def build(chapters: list[dict], out: Path, timeout: int) -> list[dict]:
    executed = out.parent / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for i, ch in enumerate(chapters, 1):
        slug = Path(ch["file"]).stem
        print(f"[{i}/{len(chapters)}] {slug}: executing ...", flush=True)
        nb = jupytext.read(ROOT / "chapters" / ch["file"])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        t0 = time.perf_counter()
        status = "ok"
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(ROOT / "chapters")}}).execute()
        except CellExecutionError as err:
            status = "failed: " + str(err).strip().splitlines()[-1][:200]
        seconds = time.perf_counter() - t0
        nbformat.write(nb, executed / f"{slug}.ipynb")
        body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
        (out / f"{slug}.html").write_text(body)
        print(f"[{i}/{len(chapters)}] {slug}: {status} in {seconds:.0f} s", flush=True)
        results.append({**ch, "slug": slug, "seconds": seconds, "status": status})
    return results


def index_page(results: list[dict], profile: str) -> str:
    rows = "\n".join(
        f"<tr><td><a href='{r['slug']}.html'>{html.escape(r['title'])}</a><br><small>{html.escape(r['paper'])}</small></td>"
        f"<td>{r['seconds']:.0f} s</td><td>{html.escape(r['status'])}</td></tr>" for r in results)
    total = sum(r["seconds"] for r in results)
    title = html.escape(config.load_book()["book"]["title"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;}} td,th{{padding:.4em .8em;border-bottom:1px solid #ddd;vertical-align:top}}
th{{text-align:left}}</style></head><body><h1>{title}</h1>
<p>Executed in the <b>{profile}</b> profile on {time.strftime('%Y-%m-%d %H:%M')} ({'CUDA' if config.cuda_available() else 'CPU'}).</p>
<table><tr><th>Chapter</th><th>Runtime</th><th>Status</th></tr>{rows}
<tr><td><b>Total</b></td><td><b>{total:.0f} s</b></td><td></td></tr></table></body></html>"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chapters", nargs="*", help="chapter slugs to build (default: all in book.toml)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = ap.parse_args()
    profile = config.active_profile()
    os.environ["CL_BOOK_PROFILE"] = profile
    chapters = config.chapters()
    if args.chapters:
        known = {Path(c["file"]).stem: c for c in chapters}
        unknown = [s for s in args.chapters if s not in known]
        if unknown:
            raise SystemExit(f"Unknown chapter(s) {unknown}; book.toml lists: {', '.join(known)}")
        chapters = [known[s] for s in args.chapters]
    out = ROOT / "_build" / "html"
    print(f"Building {len(chapters)} chapter(s), profile {profile}, into {out.relative_to(ROOT)}/")
    results = build(chapters, out, args.timeout)
    (out / "index.html").write_text(index_page(results, profile))
    print(f"Contents: {(out / 'index.html').relative_to(ROOT)}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
