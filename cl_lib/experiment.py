"""One way to run an experiment: independent jobs (learner × seed), each cached under a key the runner builds.

`experiment.over_seeds(run_one, jobs, cfg=cfg, name="ch04", data=...)` runs ``run_one(job)`` for every job — side by side
on a CPU (`parallel.pmap`), in order on a GPU — and caches each result on disk (`cache.cached`) under a key that
holds everything that determines it: the chapter's settings and seed, the data digests the caller names, the
source of `run_one` and of every chapter function, class and plain setting it reaches (`cache.reach_digest`),
all of cl_lib's source (`cache.library_digest`), the library versions and the CPU kernels and thread count. So an
edit anywhere — in the chapter, in a method, in `train.fit`, in the preprocessing — recomputes the runs it
touches, and nothing else. Chapter 00 introduces it; every chapter runs its experiment through it.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Hashable, Sequence

from . import cache, claims, config, parallel


class Runs(dict):
    """The results of `over_seeds`: job → result, in the order of the jobs, and the seconds the runs took."""

    seconds: float = 0.0


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, mean, sample std and one-sided 95 % Student-t bounds of per-seed values (`claims.mean_bounds`)."""
    mean, sd, lower, upper = claims.mean_bounds(values)
    return {"n": len(values), "mean": mean, "sd": sd, "lower95": lower, "upper95": upper}


def run_key(name: str, run_one: Callable[[Any], Any], cfg: config.ChapterConfig, data: Any = None) -> dict[str, Any]:
    """The key of a chapter's runs, less the job: settings, data digests, the chapter's and the library's code."""
    return {"name": name, "chapter": cfg.chapter, "profile": cfg.profile, "params": cfg.params, "seed": cfg.seed,
            "device": cfg.device, "smoke": cfg.smoke, "data": data, "chapter_code": cache.reach_digest(run_one),
            "library": cache.library_digest()}


def over_seeds(run_one: Callable[[Any], Any], jobs: Sequence[Hashable], *, cfg: config.ChapterConfig, name: str,
               data: Any = None, cache_results: bool = True, verbose: bool = True) -> Runs:
    """``{job: run_one(job)}`` for every job, in parallel on CPU cores, each cached under `run_key` + the job.
    `data`: digests of the data the runs read (``tr.digest()``, a features sum is not one). `cache_results=False`
    for results that are not plain data (trained modules): they are run, never stored."""
    t0 = time.perf_counter()
    key = run_key(name, run_one, cfg, data) if cache_results else None

    def one(job: Hashable) -> Any:
        if key is None:
            return run_one(job)
        job_key = list(job) if isinstance(job, tuple) else job
        return cache.cached(name, {**key, "job": job_key}, lambda: run_one(job))

    out = Runs(zip(jobs, parallel.pmap(one, list(jobs))))
    out.seconds = time.perf_counter() - t0
    if verbose:
        print(f"[experiment] {name}: {len(out)} runs in {out.seconds:.0f} s")
    return out
