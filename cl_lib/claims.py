"""A chapter's claims cell: each claim with its numbers, printed, recorded, and asserted at the end.

Three kinds (CONTRIBUTING.md, "Claims that can fail"):
- `claim`: a paper's claim, measured as a gap between the method and the baseline that isolates its mechanism
  (the same method with that mechanism switched off), per seed; it holds when the mean gap clears a margin
  measured on our data by more than the spread over seeds. Asserted, except in a smoke run (capped data prove
  nothing).
- `check`: a structural fact (a parameter count, a bit-identical frozen path, two engines agreeing). Asserted
  in every run, smoke included.
- `report`: a claim of the paper that does not hold on our data at this scale, recorded with its numbers and
  said in the text; never asserted.

`Claims.done()` prints the table, writes `_build/results/<chapter>.json` (smoke runs: `_build/results/smoke/`),
which the book's reproduction page reads, then fails with every claim that did not hold.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from . import config


@dataclass
class Claim:
    kind: str  # "claim", "check" or "report"
    statement: str
    values: list[float] = field(default_factory=list)  # the measured quantity per seed (a gap, a ratio, ...)
    above: float | None = None  # holds when mean(values) > above ...
    below: float | None = None  # ... and mean(values) < below
    paper: str = ""  # the paper's figure for it, where there is one
    detail: str = ""  # what the quantity is, and the numbers behind it
    holds: bool = False

    @property
    def summary(self) -> str:
        v = np.asarray(self.values, dtype=float)
        if len(v) == 0:
            return ""
        if len(v) == 1:
            return f"{v[0]:+.4g}"
        return f"{v.mean():+.4g} ± {v.std():.2g} (n={len(v)}, min {v.min():+.4g}, max {v.max():+.4g})"

    @property
    def margin_text(self) -> str:
        parts = ([f"> {self.above:+.4g} + std"] if self.above is not None else []) + \
                ([f"< {self.below:+.4g} − std"] if self.below is not None else [])
        return " and ".join(parts)


class Claims:
    """The claims of one chapter in one run (see the module docstring)."""

    def __init__(self, cfg: config.ChapterConfig):
        self.cfg, self.items = cfg, []

    def claim(self, statement: str, values: Sequence[float] | float, *, above: float | None = None,
              below: float | None = None, paper: str = "", detail: str = "", at_scale_only: bool = False) -> Claim:
        """A paper claim: `values` (one per seed) must have a mean above `above` (and/or below `below`), clearing
        it by more than their standard deviation: a margin larger than the spread over seeds. `at_scale_only`:
        a claim measured not to hold at small scale, asserted only where the profile sets `assert_at_scale`
        (elsewhere it is recorded as a report, with its numbers)."""
        vals = [float(v) for v in np.atleast_1d(values)]
        mean, spread = float(np.mean(vals)), float(np.std(vals))
        holds = (above is None or mean - above > spread) and (below is None or below - mean > spread)
        kind = "claim"
        if at_scale_only and not self.cfg.params.get("assert_at_scale", False):
            kind, detail = "report", (detail + "; " if detail else "") + "asserted only at paper scale (assert_at_scale)"
        c = Claim(kind, statement, vals, above, below, paper, detail, bool(holds))
        self.items.append(c)
        return c

    def check(self, statement: str, ok: bool, detail: str = "", values: Sequence[float] | float = ()) -> Claim:
        """A structural check: true or false, asserted in every run."""
        c = Claim("check", statement, [float(v) for v in np.atleast_1d(values)], detail=detail, holds=bool(ok))
        self.items.append(c)
        return c

    def report(self, statement: str, values: Sequence[float] | float, *, paper: str = "", detail: str = "") -> Claim:
        """Recorded with its numbers, not asserted: a paper's claim (`paper` given) that does not hold at this
        scale, or a measurement the chapter discusses without claiming anything of it."""
        c = Claim("report", statement, [float(v) for v in np.atleast_1d(values)], paper=paper, detail=detail)
        self.items.append(c)
        return c

    def record(self) -> dict:
        """The results record (what `done` writes)."""
        rows = []
        for c in self.items:
            if c.kind == "report":
                result = "not reproduced at this scale" if c.paper else "measured, not a claim"
            else:
                result = "holds" if c.holds else "FAILS"
            if c.kind == "claim" and not self.cfg.assert_claims:
                result += " (smoke run: not asserted)"
            rows.append({**asdict(c), "summary": c.summary, "margin_text": c.margin_text, "result": result})
        return {"chapter": self.cfg.chapter, "profile": self.cfg.profile, "smoke": self.cfg.smoke,
                "device": self.cfg.device, "when": time.strftime("%Y-%m-%d %H:%M"), "claims": rows}

    def done(self) -> None:
        """Print every claim, write the results record, then assert (claims only outside smoke runs)."""
        record = self.record()
        width = max((len(c.statement) for c in self.items), default=10)
        for c, row in zip(self.items, record["claims"]):
            print(f"[{c.kind:6s}] {c.statement:{min(width, 90)}s}  {c.summary:>40s}  {c.margin_text:>12s}  {row['result']}")
            if c.detail:
                print(f"          {c.detail}")
        folder = config.build_dir("results", "smoke") if self.cfg.smoke else config.build_dir("results")
        (folder / f"{self.cfg.chapter}.json").write_text(json.dumps(record, indent=1))
        failed = [c for c in self.items if not c.holds and
                  (c.kind == "check" or (c.kind == "claim" and self.cfg.assert_claims))]
        if not self.cfg.assert_claims:
            print(f"smoke run: {sum(c.kind == 'claim' for c in self.items)} paper claims computed and recorded, "
                  f"not asserted; {sum(c.kind == 'check' for c in self.items)} checks asserted")
        assert not failed, "claims that do not hold:\n" + "\n".join(
            f"- {c.statement}: {c.summary} (needs {c.margin_text or 'true'})" for c in failed)
