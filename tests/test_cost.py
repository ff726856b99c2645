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
