"""Shared fixtures: every test gets its own empty cache folder, so no test reads another's results."""
import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CL_BOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CL_BOOK_BUILD", str(tmp_path / "build"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


@pytest.fixture
def counted_features(monkeypatch):
    """A random-init small backbone, `n` random 32-px images, and the list of `features.encode_images` calls (one per
    computed, not cached, entry): for tests of the feature cache's keys."""
    import torch

    from cl_lib import backbones, features
    from cl_lib.data import ImageSet

    def make(n: int):
        b = backbones.create("resnet10t", pretrained=False)
        imgs = ImageSet(torch.randint(0, 255, (n, 32, 32, 3), dtype=torch.uint8), torch.arange(n), ["a"], ["a"])
        calls = []
        real = features.encode_images
        monkeypatch.setattr(features, "encode_images", lambda *a, **k: calls.append(1) or real(*a, **k))
        return b, imgs, calls

    return make


def shared_data_available() -> bool:
    return bool(os.environ.get("CL_BOOK_DATA")) and os.path.isdir(os.environ["CL_BOOK_DATA"])
