"""Nothing read from disk runs as code; temporaries are swept; entries honour the umask; bad input is one line."""
from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
import torch

from cl_lib import backbones, cache, config, data


class _Payload:
    """Unpickling this creates a marker file: what a poisoned cache entry would do if it were unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_poisoned_cache_entry_does_not_run_and_is_recomputed(tmp_path):
    key = {"k": "poison"}
    cache.cached("x", key, lambda: torch.ones(3))
    entry = next(config.cache_dir("x").glob("*.pt"))
    marker = tmp_path / "PWNED"
    torch.save({"value": _Payload(str(marker))}, entry)  # a crafted entry in the cache folder ...
    meta = json.loads(entry.with_suffix(".json").read_text())
    meta["sha256"] = cache.file_digest(entry)  # ... with a matching checksum (it only guards against corruption)
    entry.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="not plain data"):
        cache.load_entry(entry, cache.stored_key(key))
    assert not marker.exists(), "the payload ran"
    assert torch.equal(cache.cached("x", key, lambda: torch.zeros(2)), torch.zeros(2))  # recomputed, not trusted
    assert not marker.exists()


def test_stale_temporaries_are_swept_fresh_ones_kept(tmp_path):
    folder = config.cache_dir("x")
    old, new = folder / ".abc.pt.tmp", folder / ".def.pt.tmp"
    old.write_bytes(b"0" * 1000), new.write_bytes(b"1")
    past = time.time() - 2 * cache.STALE_SECONDS
    os.utime(old, (past, past))
    cache.cached("x", {"a": 1}, lambda: torch.ones(1))
    assert not old.exists() and new.exists()  # a fresh one may be another process's write in progress


def test_entries_honour_the_umask(tmp_path):
    prev = os.umask(0o002)
    try:
        cache.cached("x", {"a": "group"}, lambda: torch.ones(1))
    finally:
        os.umask(prev)
    for p in config.cache_dir("x").iterdir():
        assert p.stat().st_mode & 0o777 == 0o664, (p.name, oct(p.stat().st_mode))


def test_loading_an_entry_does_not_copy_it_three_times(tmp_path):
    """Peak memory of a load stays near one copy of the payload (it was three: 2.88 GB for 738 MB)."""
    script = f"""
import os, resource, torch
os.environ["CL_BOOK_CACHE"] = {str(tmp_path / 'mem')!r}
from cl_lib import cache
key = {{"big": 1}}
cache.cached("m", key, lambda: torch.ones(50_000_000))  # 200 MB
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import gc; gc.collect()
x = cache.cached("m", key, lambda: None)
s = float(x.sum())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(s, (after - before) / 1024)
"""
    env = dict(os.environ, PYTHONPATH=str(config.ROOT))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True).stdout
    total, grew_mb = out.split()
    assert float(total) == 50_000_000
    # the save itself peaked at ~400 MB, so a load with one copy (or a mapping) does not raise the peak much
    assert float(grew_mb) < 250, f"loading a 200 MB entry raised the peak by {grew_mb} MB"


def test_backbone_names_with_wildcards_or_empty_are_one_clear_error():
    for name in ("", "  ", "resnet*", "vit_?", "[abc]"):
        with pytest.raises(backbones.BackboneError, match="Invalid backbone name"):
            backbones.create(name)


def test_missing_or_mismatched_weights_file_is_a_backbone_error(tmp_path):
    with pytest.raises(backbones.BackboneError, match="does not exist: check the path"):
        backbones.create("resnet18", weights_file=tmp_path / "nope.pth")
    other = backbones.create("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save(other.model.state_dict(), path)
    with pytest.raises(backbones.BackboneError, match="does not fit 'resnet34'.*another architecture"):
        backbones.create("resnet34", weights_file=path)
    ok = backbones.create("resnet18", weights_file=path)  # the right file loads
    assert ok.weights.startswith("file:resnet18.pth")


def test_md5_branch_of_verify(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"hello")
    spec = {"name": "f.bin", "md5": "5d41402abc4b2a76b9719d911017c592", "size": 5}
    data.verify(p, spec)  # md5("hello")
    with pytest.raises(data.DataError, match="md5 is .*the manifest expects 0+"):
        data.verify(p, {**spec, "md5": "0" * 32})
    with pytest.raises(data.DataError, match="5 bytes, the manifest expects 6"):
        data.verify(p, {**spec, "size": 6})


def _add(t: tarfile.TarFile, info: tarfile.TarInfo, blob: bytes = b"") -> None:
    info.size = len(blob)
    t.addfile(info, io.BytesIO(blob) if blob else None)


def test_archive_members_never_touch_the_disk(tmp_path, monkeypatch):
    """Traversal, absolute and symlink members are read into memory (or skipped), never written anywhere."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    absolute = tmp_path / "absolute.txt"  # an absolute member name, under the test's own folder
    secret = tmp_path / "secret.txt"      # what a symlink member points at
    secret.write_text("s")
    tar = tmp_path / "evil.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        _add(t, tarfile.TarInfo("../escaped.txt"), b"x")
        _add(t, tarfile.TarInfo(str(absolute)), b"y")
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, str(secret)
        _add(t, link)
        _add(t, tarfile.TarInfo("ok.txt"), b"z")
    names = {n: read() for n, read in data._open_archive(tar)}
    assert names == {"../escaped.txt": b"x", str(absolute): b"y", "ok.txt": b"z"}  # no link
    zp = tmp_path / "evil.zip"
    with zipfile.ZipFile(zp, "w") as z:
        z.writestr("../up.txt", b"u")
        info = zipfile.ZipInfo("sym")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, str(secret))
    assert {n: r() for n, r in data._open_archive(zp)} == {"../up.txt": b"u"}
    assert not (tmp_path / "escaped.txt").exists() and not absolute.exists()
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar.gz", "evil.zip", "secret.txt", "work"]


def test_cifar_batches_refuse_anything_but_data(tmp_path):
    marker = tmp_path / "RAN"
    evil = pickle.dumps({b"data": [], b"labels": [], b"x": _Payload(str(marker))})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data.read_cifar_batch(evil)
    assert not marker.exists()
