"""A chapter's claims cell: each claim with its numbers, printed, recorded, and asserted at the end.

Three kinds (CONTRIBUTING.md, "Claims that can fail"):
- `claim`: a paper's claim, measured as a gap between the method and the baseline that isolates its mechanism
  (the same method with that mechanism switched off), one value per seed. It holds when the one-sided 95 %
  Student-t bound of the mean gap clears a threshold fixed before looking: the lower bound
  mean − t(0.95, n−1)·s/√n above `above` (the upper bound below `below`), s the sample standard deviation.
  Asserted, except in a smoke run (capped data prove nothing).
- `check`: a structural fact (a parameter count, a bit-identical frozen path, two engines agreeing). Asserted
  in every run, smoke included.
- `report`: a claim of the paper that does not hold on our data at this scale, or a measurement the chapter
  discusses, recorded with its numbers and said in the text; never asserted.

`Claims.done()` prints the table, writes `_build/results/<chapter>.json` (smoke runs: `_build/results/smoke/`),
which the book's reproduction page and `make crosscheck` read, then fails with every claim that did not hold.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from . import config

CONFIDENCE = 0.95  # one-sided: the claim's bound is exceeded by the true mean gap with this probability


def t_cdf(t: float, df: int) -> float:
    """Student-t cumulative distribution with `df` degrees of freedom: ½ + ∫₀ᵗ density, by Simpson's rule
    (the density is smooth; 4,000 intervals give ~1e-12 for the book's ranges)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be ≥ 1, got {df}")
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    x = np.linspace(0.0, abs(t), 4001)
    f = c * (1 + x * x / df) ** (-(df + 1) / 2)
    h = (x[1] - x[0]) if len(x) > 1 else 0.0
    area = h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())
    return 0.5 + math.copysign(area, t)


def t_quantile(q: float, df: int) -> float:
    """The `q` quantile of Student's t with `df` degrees of freedom (bisection on `t_cdf`), e.g.
    t_quantile(0.95, 2) = 2.920: the factor of a one-sided 95 % bound from three seeds."""
    if not 0.5 <= q < 1:
        raise ValueError(f"quantile must be in [0.5, 1), got {q}")
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < q else (lo, mid)
    return (lo + hi) / 2


def mean_bounds(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """(mean, sample std, lower, upper): one-sided `confidence` Student-t bounds of the mean of `values`.
    With fewer than two values there is no spread to estimate: the bounds are −∞ and +∞ (nothing is shown)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, -math.inf, math.inf
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, -math.inf, math.inf
    sd = float(v.std(ddof=1))
    half = t_quantile(confidence, len(v) - 1) * sd / math.sqrt(len(v))
    return mean, sd, mean - half, mean + half


def clears(values: Sequence[float], above: float | None = None, below: float | None = None,
          confidence: float = CONFIDENCE) -> bool:
    """The book's test: the one-sided bound of the mean clears each threshold given (lower bound > `above`,
    upper bound < `below`)."""
    _, _, lower, upper = mean_bounds(values, confidence)
    return (above is None or lower > above) and (below is None or upper < below)


def environment() -> dict[str, str | int]:
    """What the numbers were computed with: torch's CPU kernel set, library versions, threads (chapter 00
    explains why verdicts must not depend on them)."""
    from .cache import environment as computed_with

    return {**computed_with(), "aten_cpu_capability_env": os.environ.get("ATEN_CPU_CAPABILITY", ""),
            "onednn_max_cpu_isa_env": os.environ.get("ONEDNN_MAX_CPU_ISA", "")}


@dataclass
class Claim:
    kind: str  # "claim", "check" or "report"
    statement: str
    values: list[float] = field(default_factory=list)  # the measured quantity per seed (a gap, a ratio, ...)
    above: float | None = None  # threshold: holds when the lower bound of the mean is above it ...
    below: float | None = None  # ... and the upper bound below it
    paper: str = ""  # the paper's figure for it, where there is one
    detail: str = ""  # what the quantity is, and the numbers behind it
    holds: bool = False

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def stats(self) -> tuple[float, float, float, float]:
        """(mean, sample std, one-sided 95 % lower bound, upper bound)."""
        return mean_bounds(self.values)

    @property
    def summary(self) -> str:
        v = np.asarray(self.values, dtype=float)
        if len(v) == 0:
            return ""
        if len(v) == 1:
            return f"{v[0]:+.4g} (n=1)"
        mean, sd, lower, upper = self.stats
        bound = (f", 95% upper {upper:+.4g}" if self.below is not None and self.above is None
                 else f", 95% lower {lower:+.4g}")
        return f"{mean:+.4g} ± {sd:.2g} (n={len(v)}{bound})"

    def brief(self, scale: float = 100.0, unit: str = " points", digits: int = 1) -> str:
        """The mean and its 95 % bound in words, for prose printed from the record: '+23.1 points (95 % lower
        bound +19.0, n = 3)' (scale 100: fractions as points)."""
        mean, _, lower, upper = self.stats
        if self.n < 2:
            return f"{mean * scale:+.{digits}f}{unit} (one seed)"
        b, which = (upper, "upper") if self.below is not None and self.above is None else (lower, "lower")
        return f"{mean * scale:+.{digits}f}{unit} (95 % {which} bound {b * scale:+.{digits}f}, n = {self.n})"

    @property
    def margin_text(self) -> str:
        parts = ([f"lower > {self.above:+.4g}"] if self.above is not None else []) + \
                ([f"upper < {self.below:+.4g}"] if self.below is not None else [])
        return " and ".join(parts)


class Claims:
    """The claims of one chapter in one run (see the module docstring)."""

    def __init__(self, cfg: config.ChapterConfig):
        self.cfg, self.items = cfg, []

    def claim(self, statement: str, values: Sequence[float] | float, *, above: float | None = None,
              below: float | None = None, paper: str = "", detail: str = "", at_scale_only: bool = False) -> Claim:
        """A paper claim: `values` (one per seed) hold when the one-sided 95 % Student-t bound of their mean
        clears the threshold (`above` and/or `below`), fixed before looking. `at_scale_only`: a claim measured
        not to hold at small scale, asserted only where the profile sets `assert_at_scale` (elsewhere it is
        recorded as a report, with its numbers)."""
        vals = [float(v) for v in np.atleast_1d(values)]
        kind = "claim"
        if at_scale_only and not self.cfg.params.get("assert_at_scale", False):
            kind, detail = "report", (detail + "; " if detail else "") + "asserted only at paper scale (assert_at_scale)"
        c = Claim(kind, statement, vals, above, below, paper, detail, clears(vals, above, below))
        self.items.append(c)
        return c

    def check(self, statement: str, ok: bool, detail: str = "", values: Sequence[float] | float = ()) -> Claim:
        """A structural check: true or false, asserted in every run."""
        c = Claim("check", statement, [float(v) for v in np.atleast_1d(values)], detail=detail, holds=bool(ok))
        self.items.append(c)
        return c

    def report(self, statement: str, values: Sequence[float] | float, *, paper: str = "", detail: str = "",
               above: float | None = None, below: float | None = None) -> Claim:
        """Recorded with its numbers, not asserted: a paper's claim (`paper` given) that does not hold at this
        scale, or a measurement the chapter discusses without claiming anything of it. A threshold, where
        given, is tested and recorded (`holds`) so that the text can say how far the claim is from holding."""
        vals = [float(v) for v in np.atleast_1d(values)]
        ok = clears(vals, above, below) if (above is not None or below is not None) else False
        c = Claim("report", statement, vals, above, below, paper=paper, detail=detail, holds=ok)
        self.items.append(c)
        return c

    def __getitem__(self, statement: str) -> Claim:
        """The claim with this statement (prose quotes its numbers from here)."""
        for c in self.items:
            if c.statement == statement:
                return c
        raise KeyError(f"no claim {statement!r} in this chapter")

    def record(self) -> dict:
        """The results record (what `done` writes): every claim with n, mean, sample std, its bounds,
        threshold and verdict, and the environment the numbers were computed in."""
        rows = []
        for c in self.items:
            if c.kind == "report" and (c.above is not None or c.below is not None):
                result = "report: clears its threshold" if c.holds else "report: does not clear its threshold"
            elif c.kind == "report":
                result = "not reproduced at this scale" if c.paper else "measured, not a claim"
            else:
                result = "holds" if c.holds else "FAILS"
            if c.kind == "claim" and not self.cfg.assert_claims:
                result += " (smoke run: not asserted)"
            mean, sd, lower, upper = c.stats
            stats = {"n": c.n, "mean": mean, "sd": sd, "lower95": lower, "upper95": upper}
            stats = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in stats.items()}
            rows.append({**asdict(c), **stats, "summary": c.summary, "margin_text": c.margin_text, "result": result})
        return {"chapter": self.cfg.chapter, "profile": self.cfg.profile, "smoke": self.cfg.smoke,
                "device": self.cfg.device, "environment": environment(), "when": time.strftime("%Y-%m-%d %H:%M"),
                "rule": f"one-sided {CONFIDENCE:.0%} Student-t bound of the mean over seeds clears the threshold",
                "claims": rows}

    def done(self) -> None:
        """Print every claim, write the results record, then assert (claims only outside smoke runs)."""
        record = self.record()
        env = record["environment"]
        print(f"rule: {record['rule']}; torch {env['torch']}, CPU kernels {env['cpu_capability']}, "
              f"{env['threads']} threads")
        for c, row in zip(self.items, record["claims"]):
            print(f"[{c.kind}] {c.statement}\n    {c.summary}   needs: {c.margin_text or 'true'}   → {row['result']}")
            if c.detail:
                print(f"    {c.detail}")
        folder = config.build_dir("results", "smoke") if self.cfg.smoke else config.build_dir("results")
        (folder / f"{self.cfg.chapter}.json").write_text(json.dumps(record, indent=1))
        failed = [c for c in self.items if not c.holds and
                  (c.kind == "check" or (c.kind == "claim" and self.cfg.assert_claims))]
        if not self.cfg.assert_claims:
            print(f"smoke run: {sum(c.kind == 'claim' for c in self.items)} paper claims computed and recorded, "
                  f"not asserted; {sum(c.kind == 'check' for c in self.items)} checks asserted")
        assert not failed, "claims that do not hold:\n" + "\n".join(
            f"- {c.statement}: {c.summary} (needs {c.margin_text or 'true'})" for c in failed)
