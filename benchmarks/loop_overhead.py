"""How much does cl_lib's training loop cost over a bare PyTorch loop?

Same model, same data, same batches (same shuffling seed), same optimiser: `cl_lib.train.fit` against the
few lines anyone would write by hand. Reports throughput (examples/s) of both and their ratio, median of
alternating repeats. Two workloads: an MLP on cached-feature-sized inputs (where per-batch overhead is most
visible) and EfficientNet-Lite0 fine-tuning on 64 px images (a chapter's real workload).

    python benchmarks/loop_overhead.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from cl_lib import backbones, train


def bare_loop(model, x, y, *, epochs, optimizer, batch_size, seed, transform=None):
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            xb = x[idx] if transform is None else transform(x[idx])
            loss = F.cross_entropy(model(xb), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def compare(name, make_model, x, y, *, epochs, batch_size, repeats, transform=None):
    n = epochs * len(y)
    ours, bare = [], []
    for r in range(repeats):
        for which in (("bare", "ours") if r % 2 == 0 else ("ours", "bare")):
            torch.manual_seed(0)
            model = make_model()
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            if which == "ours":
                ours.append(n / timed(lambda: train.fit(model, x, y, epochs=epochs, optimizer=opt,
                                                          batch_size=batch_size, seed=0, transform=transform)))
            else:
                bare.append(n / timed(lambda: bare_loop(model, x, y, epochs=epochs, optimizer=opt,
                                                          batch_size=batch_size, seed=0, transform=transform)))
    o, b = statistics.median(ours), statistics.median(bare)
    print(f"{name:<34} bare {b:9.0f} ex/s   cl_lib {o:9.0f} ex/s   ratio {o / b:.3f}")
    return o / b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    x = torch.randn(8192, 1280)
    y = torch.randint(0, 20, (8192,))
    r1 = compare("MLP 1280-256-20 on features", lambda: nn.Sequential(nn.Linear(1280, 256), nn.ReLU(), nn.Linear(256, 20)),
                 x, y, epochs=3, batch_size=64, repeats=args.repeats)
    bb = backbones.create("tf_efficientnet_lite0")
    state = {k: v.clone() for k, v in bb.model.state_dict().items()}

    def effnet():
        bb.model.load_state_dict(state)
        return nn.Sequential(bb.model, nn.Linear(bb.num_features, 20))

    imgs = torch.randint(0, 255, (256, 64, 64, 3), dtype=torch.uint8)
    labels = torch.randint(0, 20, (256,))
    r2 = compare("EfficientNet-Lite0 fine-tune, 64 px", effnet, imgs, labels, epochs=1, batch_size=32,
                 repeats=max(3, args.repeats // 2), transform=lambda b: bb.preprocess(b, 64))
    print(f"worst ratio {min(r1, r2):.3f} (target: at least 0.9)")


if __name__ == "__main__":
    main()
