"""The cost table of the `full` profile (README): every chapter's estimated FLOPs, memory and H100 minutes.

    python scripts/costs.py            # prints a Markdown table
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cl_lib import config, cost  # noqa: E402

TARGET_MIN, TARGET_HOST = 30, 32 * 2**30

if __name__ == "__main__":
    t0 = time.perf_counter()
    rows, total = [], 0.0
    for ch in config.chapters():
        slug = Path(ch["file"]).stem
        e = cost.estimate(slug, config.chapter_settings(slug, "full", smoke_run=False))
        total += e.minutes
        over = [w for w, bad in (("time", e.minutes > TARGET_MIN), ("host memory", e.host_bytes > TARGET_HOST)) if bad]
        rows.append(f"| {slug} | {e.flops:.1e} | {e.gpu_bytes / 2**30:.1f} | {e.host_bytes / 2**30:.1f} | "
                    f"{e.minutes:.0f} | {'over the target: ' + ', '.join(over) if over else 'within'} |")
    print("| chapter | FLOPs | peak GPU memory (GiB) | peak host memory (GiB) | minutes on one H100 | targets (30 min, 32 GiB) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"| **book** | | | | **{total:.0f}** | {'within 3 h' if total <= 180 else 'over 3 h'} |")
    print(f"\n(measured per-example costs at full shapes on this machine in {time.perf_counter() - t0:.0f} s; "
          f"{cost.SUSTAINED_FLOPS:.0e} FLOP/s sustained assumed)", file=sys.stderr)
