"""parallel.pmap: results in the order of the jobs, whichever process ran them; a failing job's error reaches the
caller with the worker's traceback; what a job printed is shown."""
import os
import time

import pytest

from cl_lib import parallel


def _slow_first(x: int) -> tuple[int, int]:
    time.sleep(0.3 if x == 0 else 0.0)  # the first job finishes last
    print(f"job {x}")
    return x * x, os.getpid()


def test_results_come_back_in_job_order_from_several_processes(capsys):
    out = parallel.pmap(_slow_first, list(range(6)), processes=2)
    assert [v for v, _ in out] == [0, 1, 4, 9, 16, 25]
    if "fork" in __import__("multiprocessing").get_all_start_methods():
        assert len({pid for _, pid in out}) == 2 and os.getpid() not in {pid for _, pid in out}
    printed = capsys.readouterr().out
    assert [line for line in printed.splitlines() if line.startswith("job")] == [f"job {i}" for i in range(6)]


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("job three is broken")
    return x


def test_a_failing_job_raises_with_the_workers_traceback():
    with pytest.raises(RuntimeError, match=r"(?s)a parallel job failed:.*ValueError: job three is broken"):
        parallel.pmap(_fails_on_three, list(range(5)), processes=2)


def test_one_process_runs_in_order_here():
    assert parallel.pmap(lambda x: x + 1, [1, 2, 3], processes=1) == [2, 3, 4]
