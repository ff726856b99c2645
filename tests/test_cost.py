"""The cost estimates of `full`: measured per-example costs are right on a hand-worked model; every chapter has one."""
import torch
from torch import nn

from cl_lib import config, cost


def test_measure_counts_a_linear_layer_by_hand():
    p = cost.measure(nn.Linear(10, 4), lambda b: (torch.randn(b, 10),), batch=3)
    assert p.forward == 2 * 10 * 4          # one multiply-add per weight per example
    assert p.train == 2 * p.forward         # backward: the weight's gradient (the input needs none)
    assert p.params == 44
    assert p.activations == (10 + 4) * 4    # float32 input (for the weight's gradient) and output (for the loss)


def test_every_chapter_has_a_workload_and_the_estimate_scales():
    for ch in config.chapters():
        slug = ch["file"].removesuffix(".py")
        assert slug in cost.WORKLOADS, f"{slug}: add its workload formula to cl_lib.cost.WORKLOADS"
    full = config.chapter_settings("06_comparison", "full", smoke_run=False)
    a = cost.estimate("06_comparison", full)
    b = cost.estimate("06_comparison", {**full, "seeds": 2 * full["seeds"]})
    assert a.flops > 0 and a.minutes > 0 and b.flops > a.flops
    assert "min on one H100" in a.line()


def counted(fn) -> float:
    """FLOPs torch counts while `fn` runs (matmuls and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def test_chapter_00_training_formula_matches_a_counted_run():
    """The fine-tuning term of chapter 00's formula (seeds × tasks × classes × images × epochs × per-example cost),
    against the FLOPs of the real loop (`train.fine_tune_stream`) at a small shape: 2 tasks × 2 classes × 4 images."""
    import timm

    from cl_lib import train

    size, T, K, n, E = 32, 2, 2, 4, 1
    s = {"image_size": size, "seeds": 1, "n_tasks": T, "classes_per_task": K, "train_per_class": n,
         "test_per_class": 0, "epochs": E, "probe_size": 0, "batch_size": 4}
    torch.manual_seed(0)
    net = nn.Sequential(timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0),
                        nn.Linear(1280, T * K))
    tasks = [(torch.randn(K * n, 3, size, size), torch.arange(K * n) % K + t * K) for t in range(T)]
    flops = counted(lambda: train.fine_tune_stream(
        net, tasks, classes=lambda t: slice(0, (t + 1) * K), epochs=E, batch_size=4,
        optimizer=lambda m: train.make_optimizer(m.parameters(), "sgd", lr=0.01)))
    p = cost.image_model(size)
    # by hand from the formula: naive and joint training (the same examples × epochs), one feature pass per image
    assert cost.WORKLOADS["00_setting"](s)[0] == 2 * T * K * n * E * p.train + T * K * n * p.forward
    assert abs(flops - T * K * n * E * p.train) / (T * K * n * E * p.train) < 0.05, (flops, p.train)


def test_chapter_01_upstream_formula_matches_a_counted_run():
    """Chapter 01's upstream term per learner (tasks × classes × images × epochs × the ViT's per-example training
    cost), against the FLOPs of `train.fit` on the same ViT at a small shape."""
    from cl_lib import train
    from cl_lib.vit import ViTConfig, VisionTransformer

    shape = dict(img_size=16, patch=4, dim=32, depth=2, heads=2, mlp_ratio=2.0)
    T, K, n, E = 2, 2, 4, 1
    torch.manual_seed(0)
    net = nn.Sequential(VisionTransformer(ViTConfig(**shape)), nn.Linear(64, T * K))  # features: 2 × dim
    x, y = torch.randn(T * K * n, 3, 16, 16), torch.arange(T * K * n) % (T * K)
    flops = counted(lambda: train.fit(net, x, y, epochs=E, batch_size=8,
                                      optimizer=train.make_optimizer(net.parameters(), "adam", lr=1e-3)))
    per_example = cost.vit_model(16, 4, 32, 2, 2, 2.0).train
    assert abs(flops - per_example * T * K * n * E) / (per_example * T * K * n * E) < 0.05, (flops, per_example)
