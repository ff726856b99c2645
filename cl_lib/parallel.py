"""Independent runs (seeds, streams) side by side, one process per CPU core.

Most of the book's quick experiments are many small tensor operations, which one process cannot spread over
two cores; two processes with one thread each can. `pmap` forks worker processes (they share the parent's
memory: data sets, features, functions defined in the notebook), gives each one torch thread, runs the jobs,
and returns their results in order, with what each job printed. On a GPU, or with one core, it runs the jobs
one after the other in this process. Jobs must seed their own randomness (the book's always do), so the
results do not depend on which process ran which job.
"""
from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import traceback
from typing import Any, Callable, Sequence

import torch

_JOBS: tuple[Callable[[Any], Any], Sequence[Any]] | None = None


def workers() -> int:
    """How many processes `pmap` uses: the CPU cores torch may use (``CL_BOOK_WORKERS`` overrides); 1 on CUDA."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return 1
    env = os.environ.get("CL_BOOK_WORKERS", "").strip()
    if env:
        return max(1, int(env))
    return max(1, min(len(os.sched_getaffinity(0)), torch.get_num_threads()))


def _run(i: int) -> tuple[Any, str, str | None]:
    fn, items = _JOBS
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            return fn(items[i]), buf.getvalue(), None
    except BaseException:  # the parent re-raises it with the worker's traceback
        return None, buf.getvalue(), traceback.format_exc()


def _init() -> None:
    torch.set_num_threads(1)


def pmap(fn: Callable[[Any], Any], items: Sequence[Any], processes: int | None = None) -> list[Any]:
    """[fn(x) for x in items], run in forked processes when there is more than one core and one job."""
    global _JOBS
    from .train import progress  # a bar while someone watches (silent in the book build)

    n = min(processes or workers(), len(items))
    if n <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(x) for x in progress(items, desc="runs", total=len(items))]
    _JOBS = (fn, list(items))
    try:
        with multiprocessing.get_context("fork").Pool(n, initializer=_init) as pool:
            results = list(progress(pool.imap(_run, range(len(items)), chunksize=1), desc=f"runs ({n} processes)",
                                    total=len(items)))
    finally:
        _JOBS = None
    out = []
    for value, printed, error in results:
        print(printed, end="")
        if error is not None:
            raise RuntimeError(f"a parallel job failed:\n{error}")
        out.append(value)
    return out
