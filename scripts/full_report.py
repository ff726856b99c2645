"""Run every chapter in the `full` profile and write `_build/full-report.md` (and .json): per chapter the wall time,
peak GPU memory, peak host memory, and every claim with its value. Made for the first machine with a GPU:

    make full-report        # CL_BOOK_PROFILE=full python scripts/full_report.py [--chapters SLUG ...]

Each chapter runs as a script in its own process (figures saved, widgets static); a failing chapter is recorded
and the report goes on. Then set `verified = true` under [profiles.full] in book.toml and copy the table to the
README.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cl_lib import config  # noqa: E402

PROBE = """
import json, resource, runpy, sys, time
t0 = time.perf_counter()
status = "ok"
try:
    runpy.run_path(sys.argv[1], run_name="__main__")
except BaseException as err:  # the report records the failure and goes on
    status = f"failed: {type(err).__name__}: {str(err).strip().splitlines()[-1][:300] if str(err).strip() else ''}"
gpu = 0
try:
    import torch
    if torch.cuda.is_available():
        gpu = torch.cuda.max_memory_allocated()
except Exception:
    pass
host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print("FULL_REPORT " + json.dumps({"status": status, "seconds": time.perf_counter() - t0, "gpu_bytes": gpu, "host_bytes": host}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chapters", nargs="*")
    args = ap.parse_args()
    slugs = args.chapters or [Path(c["file"]).stem for c in config.chapters()]
    env = dict(os.environ, CL_BOOK_PROFILE="full", CL_BOOK_STATIC="1", MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    env.pop("CL_BOOK_SMOKE", None)
    build = Path(os.environ.get("CL_BOOK_BUILD", ROOT / "_build"))
    rows = []
    for slug in slugs:
        print(f"[full-report] {slug} ...", flush=True)
        log = build / "full-report" / f"{slug}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "chapters" / f"{slug}.py")], env=env,
                              capture_output=True, text=True)
        log.write_text(proc.stdout + proc.stderr)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("FULL_REPORT ")), None)
        rec = json.loads(line.split(" ", 1)[1]) if line else {"status": f"crashed (exit {proc.returncode})",
                                                               "seconds": None, "gpu_bytes": 0, "host_bytes": 0}
        try:
            rec["claims"] = json.loads((build / "results" / f"{slug}.json").read_text()).get("claims", [])
        except (OSError, ValueError):
            rec["claims"] = []
        rec["slug"] = slug
        rows.append(rec)
        print(f"[full-report] {slug}: {rec['status']} in {rec['seconds'] or 0:.0f} s", flush=True)
    lines = [f"# The full profile, measured ({time.strftime('%Y-%m-%d')}, device: {config.device()})", "",
             "| chapter | status | wall time (min) | peak GPU memory (GiB) | peak host memory (GiB) |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['slug']} | {r['status']} | {(r['seconds'] or 0) / 60:.1f} | {r['gpu_bytes'] / 2**30:.1f} | "
                     f"{r['host_bytes'] / 2**30:.1f} |")
    for r in rows:
        lines += ["", f"## {r['slug']}", "", "| kind | claim | measured | result |", "|---|---|---|---|"]
        lines += [f"| {c.get('kind')} | {c.get('statement')} | {c.get('summary', '')} | {c.get('result')} |" for c in r["claims"]]
    (build / "full-report.md").write_text("\n".join(lines) + "\n")
    (build / "full-report.json").write_text(json.dumps(rows, indent=1))
    print(f"[full-report] written: {build / 'full-report.md'}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
