"""Bad input and faults, each probe → the one-line error or the correct result, with nothing left behind."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from cl_lib import config

ROOT = Path(__file__).resolve().parent.parent

RACER = textwrap.dedent("""
    import sys, time, torch
    from cl_lib import cache
    def compute():
        with open(sys.argv[1], "a") as f:
            f.write("computed\\n")
        time.sleep(1.0)
        return torch.ones(30_000_000)  # 120 MB: writing takes long enough for the other process to look
    v = cache.cached("race", {"entry": "shared"}, compute)
    assert float(v.sum()) == 30_000_000
""")


def test_two_processes_racing_on_one_entry_compute_it_once(tmp_path):
    """Before the entry lock, the second process found the .pt before its .json, deleted it as bad, and the
    writer died with FileNotFoundError; the work was done twice."""
    counter = tmp_path / "computed.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CL_BOOK_CACHE": os.environ["CL_BOOK_CACHE"]}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(counter)], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert counter.read_text().count("computed") == 1
    folder = config.cache_dir("race")
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".lock", ".pt"]  # no temporary file left
