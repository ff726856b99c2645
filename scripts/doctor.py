"""Is this machine ready for the book? A one-minute check before a workshop (`make doctor`).

Checks, each one line (✓ or ✗ with the fix): Python, torch (and which device the book will use), book.toml, every
data set found locally (nothing is downloaded), the two offline pretrained backbones, the cache folder writable with
free space, and a notebook cell executing in a Jupyter kernel. Exits 1 if anything is missing.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAILED: list[str] = []


def check(what: str, fn) -> None:
    started = time.perf_counter()
    try:
        detail = fn()
        print(f"✓ {what}: {detail} ({time.perf_counter() - started:.1f} s)")
    except Exception as err:  # every failure becomes one line with its fix
        FAILED.append(what)
        print(f"✗ {what}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")


def python() -> str:
    if sys.version_info < (3, 11):
        raise RuntimeError(f"Python {sys.version.split()[0]}; the book needs 3.11 or newer")
    return sys.version.split()[0]


def torch_() -> str:
    import torch

    from cl_lib import config

    device = "CUDA " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return (f"torch {torch.__version__}, {device}, CPU kernels {torch.backends.cpu.get_cpu_capability()}, "
            f"{torch.get_num_threads()} threads; profile {config.active_profile()}")


def book() -> str:
    from cl_lib import config

    return f"{len(config.chapters())} chapters, profiles {', '.join(config.profiles())}"


def dataset(name: str):
    def run() -> str:
        from cl_lib import data

        try:
            paths = data.resolve(name, download_missing=False)
        except data.DataError:
            if data.offline() is None:  # online: the first chapter that needs it downloads it
                return "not on disk yet: the first chapter that needs it downloads it (make warm fetches all)"
            raise
        return ", ".join(f"{p.name} ({p.stat().st_size / 1e6:.1f} MB)" for p in paths.values())
    return run


def backbone(name: str):
    def run() -> str:
        from cl_lib import backbones

        b = backbones.create(name)
        return f"{b.weights}, {b.num_features}-d"
    return run


def cache_space() -> str:
    from cl_lib import config

    folder = config.cache_dir()
    probe = folder / ".doctor-write-test"
    probe.write_bytes(b"ok")
    probe.unlink()
    free = shutil.disk_usage(folder).free / 1e9
    if free < 5:
        raise RuntimeError(f"{folder}: only {free:.1f} GB free; the quick caches take about 3 GB, leave 5")
    return f"{folder} writable, {free:.0f} GB free"


def kernel() -> str:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import cl_lib, torch\nprint(torch.ones(2).sum().item())")])
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    out = "".join(o.get("text", "") for o in nb.cells[0].outputs).strip()
    if out != "2.0":
        raise RuntimeError(f"the cell printed {out!r}, expected '2.0'")
    return "a cell importing cl_lib ran in the python3 kernel"


if __name__ == "__main__":
    check("Python", python)
    check("PyTorch", torch_)
    check("book.toml", book)
    for name in ("tiny_imagenet", "cifar10", "clinc150", "banking77"):
        check(f"data: {name}", dataset(name))
    for name in ("tf_efficientnet_lite0", "all-MiniLM-L6-v2"):
        check(f"weights: {name}", backbone(name))
    check("cache folder", cache_space)
    check("Jupyter kernel", kernel)
    if FAILED:
        print(f"\nnot ready: {', '.join(FAILED)}. Fix the lines marked ✗ (README: Data, Pretrained weights).")
        sys.exit(1)
    print("\nready: every chapter can run here (make lab, or make book).")
