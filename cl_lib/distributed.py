"""ColD Fusion's contributors as real processes: the command line that chapter 5 launches under torchrun.

    torchrun --standalone --nproc_per_node=2 -m cl_lib.distributed --out fused.pt

The settings (layer, data per class, the contributors' fine-tuning, how many contributors, the seed) come from one
source: chapter 05's table in book.toml — the active profile's, or a JSON copy of it that the chapter writes
(``--settings``, inline or a file); this module has no defaults of its own.

Each process runs its share of the iteration's contributors (`cold_fusion.fuse_distributed`); the fusion is
one ``all_reduce``. Without torchrun (no ``WORLD_SIZE``) the same loop runs in this one process.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Sequence

import torch

from . import backbones, config, text
from .methods import cold_fusion


def main(argv: Sequence[str] | None = None) -> None:
    """The ColD Fusion loop over real data sets, distributed when launched by torchrun (WORLD_SIZE set)."""
    p = argparse.ArgumentParser(description="ColD Fusion of all-MiniLM-L6-v2's top layers over CLINC150 domains "
                                            "and Banking77; under torchrun, one process per contributor slot.")
    p.add_argument("--datasets", default=None, help="comma-separated seen data sets (default: 8 CLINC150 domains)")
    p.add_argument("--out", default="fused_body.pt")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="run the contributors where the chapter runs them (cuda: one GPU per process with NCCL if there "
                        "are enough GPUs, else every process on GPU 0 with gloo)")
    p.add_argument("--settings", default=None, help="chapter 05's settings and seed as JSON, inline or in a file "
                                                    "(default: book.toml's 05_cold_fusion table, active profile)")
    p.add_argument("--iterations", type=int, default=1)
    args = p.parse_args(argv)
    if args.settings:
        s = json.loads(args.settings if args.settings.lstrip().startswith("{") else Path(args.settings).read_text())
    else:
        s = {**config.chapter_settings("05_cold_fusion"), "seed": int(config.load_book().get("book", {}).get("seed", 0))}
    datasets = args.datasets.split(",") if args.datasets else text.intent_datasets()[:8]

    distributed, device, backend = "WORLD_SIZE" in os.environ, args.device, "gloo"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but this machine has no CUDA device; use --device cpu.")
    if distributed:
        import torch.distributed as dist
        if args.device == "cuda":
            if torch.cuda.device_count() >= int(os.environ["LOCAL_WORLD_SIZE"]):  # one GPU per process: NCCL
                device, backend = f"cuda:{int(os.environ['LOCAL_RANK'])}", "nccl"
            else:  # NCCL refuses two processes on one GPU; gloo all-reduces CUDA tensors too
                device = "cuda:0"
            torch.cuda.set_device(device)
        dist.init_process_group(backend)
    backbone = backbones.create("all-MiniLM-L6-v2")
    body = text.UpperLayers(backbone, s["layer"]).to(device)
    load = lambda name: text.intent_task(backbone, name, "train", layer=s["layer"],  # noqa: E731
                                         per_class=s["train_per_class"], seed=s["seed"])
    schedule = cold_fusion.cold_fusion(body, load, datasets, iterations=args.iterations,
                                       contributors=s["contributors"], cfg=cold_fusion.contributor_fit(s),
                                       seed=s["seed"], device=device,
                                       fuse=cold_fusion.fuse_distributed if distributed else cold_fusion.fuse_in_process)
    if int(os.environ.get("RANK", 0)) == 0:
        torch.save({"body": cold_fusion.body_state(body), "schedule": schedule, "args": vars(args),
                    "settings": s}, args.out)
        print(f"[cold_fusion] {'distributed' if distributed else 'in-process'}: {len(schedule)} iteration(s) "
              f"{schedule}, fused body saved to {args.out}")
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
