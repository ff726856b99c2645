import hashlib
import io
import tarfile
import urllib.error

import numpy as np
import pytest
from PIL import Image

from cl_lib import data
from conftest import shared_data_available


def _jpeg(color, mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (64, 64), color).save(buf, format="JPEG")
    return buf.getvalue()


def _tiny_archive(path):
    """A two-class Tiny-ImageNet-shaped archive; one training image is greyscale."""
    files = {
        "tiny-imagenet-200/wnids.txt": b"n02\nn01\n",
        "tiny-imagenet-200/words.txt": b"n01\tgoldfish, Carassius auratus\nn02\tbullfrog\nn99\tother\n",
        "tiny-imagenet-200/train/n01/images/n01_10.JPEG": _jpeg((250, 0, 0)),
        "tiny-imagenet-200/train/n01/images/n01_2.JPEG": _jpeg((0, 250, 0)),
        "tiny-imagenet-200/train/n02/images/n02_0.JPEG": _jpeg(128, mode="L"),
        "tiny-imagenet-200/val/images/val_0.JPEG": _jpeg((0, 0, 250)),
        "tiny-imagenet-200/val/images/val_1.JPEG": _jpeg((250, 0, 0)),
        "tiny-imagenet-200/val/val_annotations.txt": b"val_0.JPEG\tn02\t0\t0\t1\t1\nval_1.JPEG\tn01\t0\t0\t1\t1\n",
    }
    with tarfile.open(path, "w:gz") as t:
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))


@pytest.fixture
def fake_manifest(tmp_path, monkeypatch):
    src = tmp_path / "offline"
    src.mkdir()
    _tiny_archive(src / "tiny.tar.gz")
    sha = hashlib.sha256((src / "tiny.tar.gz").read_bytes()).hexdigest()
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(f"""
[tiny_imagenet]
title = "Tiny test"
licence = "test"
citation = "test"
homepage = "nowhere"
  [[tiny_imagenet.files]]
  name = "tiny.tar.gz"
  sha256 = "{sha}"
  [[tiny_imagenet.files]]
  name = "official.zip"
  url = "http://example.invalid/official.zip"
  md5 = "00000000000000000000000000000000"
""")
    monkeypatch.setattr(data, "MANIFEST", manifest)

    def offline(url, dest, spec):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(data, "download", offline)
    return src


def test_loader_decodes_archive_and_converts_greyscale(fake_manifest, monkeypatch):
    monkeypatch.setenv("CL_BOOK_DATA", str(fake_manifest))
    tr = data.load_tiny_imagenet("train")
    assert tr.classes == ["n01", "n02"] and tr.class_names == ["goldfish", "bullfrog"]
    assert tr.images.shape == (3, 64, 64, 3) and tr.images.dtype.is_floating_point is False
    assert tr.labels.tolist() == [0, 0, 1]
    # sorted by file number: n01_2 (green) before n01_10 (red)
    assert tr.images[0, 32, 32, 1] > 200 and tr.images[1, 32, 32, 0] > 200
    grey = tr.images[2].numpy().astype(int)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 2  # greyscale became RGB
    va = data.load_tiny_imagenet("val")
    assert va.labels.tolist() == [0, 1] and va.images[0, 32, 32, 0] > 200
    with pytest.raises(ValueError, match="split"):
        data.load_tiny_imagenet("test2")


def test_missing_offline_names_file_source_and_remedy(fake_manifest, monkeypatch):
    monkeypatch.delenv("CL_BOOK_DATA", raising=False)
    for var in data.OFFLINE_SWITCHES:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(data.DataError) as err:
        data.resolve("tiny_imagenet")
    msg = str(err.value)
    assert "tiny.tar.gz" in msg and "official.zip from http://example.invalid/official.zip" in msg
    assert "CL_BOOK_DATA" in msg and "no network in tests" in msg


def test_checksum_mismatch_refused_and_nothing_written(fake_manifest, monkeypatch, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tiny.tar.gz").write_bytes(b"not the archive")
    monkeypatch.setenv("CL_BOOK_DATA", str(bad))
    with pytest.raises(data.DataError, match="Checksum mismatch for tiny.tar.gz"):
        data.load_tiny_imagenet("train")
    from cl_lib import config
    assert not list(config.cache_dir().rglob("*.pt")), "a failed load must not leave a cache entry"


def test_cache_folder_is_searched_after_data_folder(fake_manifest, monkeypatch):
    from cl_lib import config
    monkeypatch.delenv("CL_BOOK_DATA", raising=False)
    (config.cache_dir() / "tiny.tar.gz").write_bytes((fake_manifest / "tiny.tar.gz").read_bytes())
    assert data.resolve("tiny_imagenet")["archive"] == config.cache_dir() / "tiny.tar.gz"


def test_unknown_dataset():
    with pytest.raises(data.DataError, match="Unknown data set 'mnist'"):
        data.load("mnist")


@pytest.mark.skipif(not shared_data_available(), reason="needs CL_BOOK_DATA (the offline copies)")
def test_real_text_sets_load():
    c = data.load_clinc150("train")
    assert len(c) == 15000 and len(c.classes) == 150 and len(c.groups) == 10
    assert sorted(i for g in c.groups.values() for i in g) == list(range(150))
    b = data.load_banking77("test")
    assert len(b) == 3080 and len(b.classes) == 77
