"""ColD Fusion's contributors as real processes: the command line that chapter 5 launches under torchrun.

    torchrun --standalone --nproc_per_node=2 -m cl_lib.distributed --out fused.pt

Each process runs its share of the iteration's contributors (`cold_fusion.fuse_distributed`); the fusion is
one ``all_reduce``. Without torchrun (no ``WORLD_SIZE``) the same loop runs in this one process.
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence

import torch

from . import backbones, text
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
    for flag, default in [("iterations", 1), ("contributors", 4), ("layer", 4), ("train-per-class", 10),
                          ("epochs", 2), ("batch-size", 32), ("lr-body", 1e-4), ("lr-head", 1e-2), ("seed", 0)]:
        p.add_argument(f"--{flag}", type=type(default), default=default)
    args = p.parse_args(argv)
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
    body = text.UpperLayers(backbone, args.layer).to(device)
    cfg = cold_fusion.FitConfig(epochs=args.epochs, batch_size=args.batch_size, lr_body=args.lr_body,
                                lr_head=args.lr_head)
    load = lambda name: text.intent_task(backbone, name, "train", layer=args.layer,  # noqa: E731
                                         per_class=args.train_per_class, seed=args.seed)
    schedule = cold_fusion.cold_fusion(body, load, datasets, iterations=args.iterations,
                                       contributors=args.contributors, cfg=cfg, seed=args.seed, device=device,
                                       fuse=cold_fusion.fuse_distributed if distributed else cold_fusion.fuse_in_process)
    if int(os.environ.get("RANK", 0)) == 0:
        torch.save({"body": cold_fusion.body_state(body), "schedule": schedule, "args": vars(args)}, args.out)
        print(f"[cold_fusion] {'distributed' if distributed else 'in-process'}: {len(schedule)} iteration(s) "
              f"{schedule}, fused body saved to {args.out}")
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
