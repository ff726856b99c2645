import torch

from cl_lib import cache, config


def test_hit_miss_and_key_change():
    calls = []

    def compute():
        calls.append(1)
        return torch.arange(5)

    key = {"backbone": "b", "split": "train"}
    a = cache.cached("features", key, compute)
    b = cache.cached("features", key, compute)
    assert torch.equal(a, b) and len(calls) == 1
    cache.cached("features", {**key, "split": "val"}, compute)
    assert len(calls) == 2


def test_corrupt_entry_is_recomputed(capsys):
    key = {"k": 1}
    cache.cached("x", key, lambda: torch.ones(1000))
    path = next(config.cache_dir("x").glob("*.pt"))
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0xFF  # flip one byte of the payload
    path.write_bytes(bytes(blob))
    calls = []
    out = cache.cached("x", key, lambda: calls.append(1) or torch.zeros(3))
    assert calls == [1] and torch.equal(out, torch.zeros(3))
    assert "checksum mismatch" in capsys.readouterr().out
    # truncated entry
    path.write_bytes(path.read_bytes()[:40])
    assert torch.equal(cache.cached("x", key, lambda: torch.full((2,), 7.0)), torch.full((2,), 7.0))
    # and the recomputed entry is now valid
    assert torch.equal(cache.load_entry(path, cache.stored_key(key)), torch.full((2,), 7.0))


def test_atomic_write_leaves_no_temporaries(tmp_path):
    p = tmp_path / "f.bin"
    cache.atomic_write_bytes(p, b"abc")
    try:
        cache.atomic_write_bytes(p, None)  # fails mid-write
    except TypeError:
        pass
    assert p.read_bytes() == b"abc"
    assert [q.name for q in tmp_path.iterdir()] == ["f.bin"]


def test_foreign_key_rejected(tmp_path):
    p = tmp_path / "e.pt"
    cache.save_entry(p, {"a": 1}, 42)
    assert cache.load_entry(p, {"a": 1}) == 42
    try:
        cache.load_entry(p, {"a": 2})
    except ValueError as err:
        assert "key differs" in str(err)
    else:
        raise AssertionError("a stored entry was returned for another key")


def test_an_entry_computed_under_another_kernel_set_is_not_served(monkeypatch):
    """The key holds the CPU kernel set and thread count: a cache filled on an AVX-512 machine (or with 2 threads)
    does not hand its low bits to an AVX2 run; decoded images, which no kernel touches, opt out."""
    calls = []
    cache.cached("x", {"k": 1}, lambda: calls.append("a") or 1)
    env = cache.environment()
    monkeypatch.setattr(cache, "environment", lambda: {**env, "cpu_capability": "OTHER"})
    assert cache.cached("x", {"k": 1}, lambda: calls.append("b") or 2) == 2
    cache.cached("d", {"k": 1}, lambda: calls.append("c") or 3, float_environment=False)
    monkeypatch.setattr(cache, "environment", lambda: env)
    assert cache.cached("x", {"k": 1}, lambda: calls.append("z") or 0) == 1
    assert cache.cached("d", {"k": 1}, lambda: calls.append("z") or 0, float_environment=False) == 3
    assert calls == ["a", "b", "c"]
