"""pytest plugin: keep what nbval executed, so the book renders the test run instead of running it again.

Loaded by `make chapters` / `make smoke` / `make solutions` (``-p scripts.nbcapture``). After the session, every
notebook nbval ran is written with its outputs to ``$CL_BOOK_CAPTURE/<name>.ipynb`` beside a stamp
``<name>.json`` (the key of the sources it ran, its status, its runtime), the same files `scripts/book.py`
writes when it executes a chapter itself.
"""
from __future__ import annotations

import os
from pathlib import Path

import nbformat

from scripts import book

_reports: dict[str, tuple[float, str, str]] = {}


def pytest_runtest_logreport(report) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        message = ""
        if report.outcome == "failed":
            message = str(report.longrepr).strip().splitlines()[-1][:300] if report.longrepr else "failed"
        _reports[report.nodeid] = (getattr(report, "duration", 0.0), report.outcome, message)


def pytest_sessionfinish(session, exitstatus) -> None:
    target = os.environ.get("CL_BOOK_CAPTURE")
    if not target:
        return
    out = Path(target)
    cells: dict = {}
    for item in session.items:
        if type(item).__name__ == "IPyNbCell":
            cells.setdefault(item.parent, []).append(item)
    worker = hasattr(session.config, "workerinput")  # under pytest-xdist every worker collects every notebook
    for parent, items in cells.items():
        if worker and not any(item.nodeid in _reports for item in items):
            continue  # another worker ran this one and writes it
        nb = parent.nb
        code = [c for c in nb.cells if c.cell_type == "code"]
        seconds, status, ran = 0.0, "ok", 0
        for n, (cell, item) in enumerate(zip(code, items)):
            outs = getattr(item, "test_outputs", None)
            cell.outputs = list(outs) if outs is not None else []
            cell.execution_count = n + 1 if outs is not None else None
            for o in cell.outputs:
                if o.get("output_type") == "execute_result":
                    o["execution_count"] = n + 1
            duration, outcome, message = _reports.get(item.nodeid, (0.0, "not run", ""))
            seconds += duration
            ran += outs is not None
            if outcome == "failed" and status == "ok":
                status = f"failed in cell {n + 1}: {message}"
        if ran < len(code) and status == "ok":
            status = f"failed: only {ran} of {len(code)} cells ran"
        slug = Path(str(parent.fspath)).stem
        book.write_executed(out, slug, nb, status=status, seconds=seconds, key=nb.metadata.get("cl_book", {}).get("key"))
