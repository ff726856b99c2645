"""Compare the verdicts of two runs of the chapters made with different CPU kernels (`make crosscheck`).

    python scripts/crosscheck.py REFERENCE_RESULTS OTHER_RESULTS SLUG [SLUG ...]

Each folder holds the claims records `<slug>.json` that `Claims.done()` writes. A verdict is a claim's kind and
result (holds / FAILS / a report): every claim of every chapter named must have the same verdict in both runs.
Prints, per claim, the mean and the one-sided 95 % bound of each run and how far the per-seed values moved; exits 1
when a verdict differs or a record is missing (the numbers themselves may move: ATen and oneDNN pick their float
paths by instruction set, which is why the verdicts, not the digits, are what must agree).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def verdict(row: dict) -> str:
    """What must not depend on the CPU: the kind (claim, check, report) and whether its bound clears its threshold."""
    if row["kind"] != "report":
        return f"{row['kind']}: {'holds' if row['holds'] else 'does not hold'}"
    if row.get("above") is None and row.get("below") is None:
        return "report: recorded"
    return f"report: {'clears' if row['holds'] else 'short of'} its threshold"


def bound(row: dict) -> str:
    b = row.get("upper95") if row.get("below") is not None and row.get("above") is None else row.get("lower95")
    return "   n/a" if b is None else f"{b:+.4f}"


def compare(ref_dir: Path, other_dir: Path, slugs: list[str]) -> int:
    """Print the comparison; return the number of differing verdicts and missing records."""
    problems = 0
    for slug in slugs:
        paths = [ref_dir / f"{slug}.json", other_dir / f"{slug}.json"]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            print(f"{slug}: MISSING record {', '.join(missing)} (did the chapter run to its claims cell?)")
            problems += 1
            continue
        ref, other = (json.loads(p.read_text()) for p in paths)
        envs = " vs ".join(f"{r.get('environment', {}).get('cpu_capability', '?')} kernels, "
                           f"{r.get('environment', {}).get('threads', '?')} threads" for r in (ref, other))
        print(f"\n== {slug} ({envs})")
        rows = {c["statement"]: c for c in other["claims"]}
        moved = 0.0
        for c in ref["claims"]:
            o = rows.pop(c["statement"], None)
            if o is None:
                print(f"  DIFFERS  {c['statement']}: absent from the second run")
                problems += 1
                continue
            delta = max((abs(a - b) for a, b in zip(c["values"], o["values"])), default=0.0)
            moved = max(moved, delta)
            same = verdict(c) == verdict(o) and len(c["values"]) == len(o["values"])
            problems += not same
            mean = lambda r: "   n/a" if r.get("mean") is None else f"{r['mean']:+.4f}"  # noqa: E731
            print(f"  {'same   ' if same else 'DIFFERS'}  [{c['kind']}] {c['statement']}\n"
                  f"           {verdict(c):40s} mean {mean(c)} bound {bound(c)}  |  {verdict(o):40s} mean {mean(o)} "
                  f"bound {bound(o)}  max |Δ| per seed {delta:.2g}")
        for s in rows:
            print(f"  DIFFERS  {s}: only in the second run")
            problems += 1
        print(f"  numbers {'moved (max |Δ| ' + format(moved, '.2g') + ')' if moved else 'identical'}")
    print(f"\ncrosscheck: {len(slugs)} chapters, {problems} verdicts differing or missing")
    return problems


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    sys.exit(1 if compare(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]) else 0)
