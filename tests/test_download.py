"""The real download path, without mocks: a local HTTP server on 127.0.0.1 serves small archives built here in the
official formats (Tiny ImageNet's zip, CIFAR-10's tar.gz of pickled batches, Banking77's CSV files)."""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cl_lib import config, data


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve tmp_path/www on 127.0.0.1; count the requests; online (no offline switch, no offline copies)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "CL_BOOK_OFFLINE", "CL_BOOK_DATA"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "www"
    root.mkdir()
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            hits.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()


def _jpeg(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _manifest(tmp_path, monkeypatch, name: str, files: list[dict]) -> None:
    lines = [f"[{name}]", 'title = "t"', 'licence = "l"', 'citation = "c"', 'homepage = "h"']
    for f in files:
        lines.append(f"  [[{name}.files]]")
        lines += [f"  {k} = {v!r}" if isinstance(v, str) else f"  {k} = {v}" for k, v in f.items()]
    path = tmp_path / "manifest.toml"
    path.write_text("\n".join(lines).replace("'", '"') + "\n")
    monkeypatch.setattr(data, "MANIFEST", path)


def _spec(path: Path, url: str, algo: str = "sha256", **extra) -> dict:
    digest = hashlib.new(algo, path.read_bytes()).hexdigest()
    return {"name": path.name, "url": url, algo: digest, "size": path.stat().st_size, **extra}


def test_tiny_imagenet_zip_streams_verifies_and_decodes(server, tmp_path, monkeypatch):
    root, base, hits = server
    z = root / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("tiny-imagenet-200/wnids.txt", "n01\nn02\n")
        f.writestr("tiny-imagenet-200/words.txt", "n01\tgoldfish, Carassius\nn02\tbullfrog\n")
        f.writestr("tiny-imagenet-200/train/n01/images/n01_0.JPEG", _jpeg((250, 0, 0)))
        f.writestr("tiny-imagenet-200/train/n02/images/n02_0.JPEG", _jpeg((0, 250, 0)))
        f.writestr("tiny-imagenet-200/val/images/val_0.JPEG", _jpeg((0, 0, 250)))
        f.writestr("tiny-imagenet-200/val/val_annotations.txt", "val_0.JPEG\tn02\t0\t0\t1\t1\n")
    _manifest(tmp_path, monkeypatch, "tiny_imagenet", [_spec(z, f"{base}/{z.name}", "md5")])  # md5, as published
    tr = data.load_tiny_imagenet("train")
    assert hits == ["/tiny-imagenet-200.zip"]
    assert tr.class_names == ["goldfish", "bullfrog"] and tr.labels.tolist() == [0, 1]
    assert tr.images.shape == (2, 64, 64, 3) and tr.images[0, 0, 0, 0] > 200  # red first
    assert data.load_tiny_imagenet("val").labels.tolist() == [1]
    cached = config.cache_dir() / z.name
    assert cached.read_bytes() == z.read_bytes()  # moved into the cache whole
    assert not list(config.cache_dir().glob(".*.part"))
    data.load_tiny_imagenet("train")
    assert len(hits) == 1  # the second load reads the cache, not the network


def _cifar_batch(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return pickle.dumps({b"batch_label": b"x", b"labels": [int(v) for v in rng.integers(0, 10, n)],
                         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"a"] * n},
                        protocol=2)


def test_cifar_tar_gz_of_pickled_batches(server, tmp_path, monkeypatch):
    root, base, hits = server
    t = root / "cifar-10-python.tar.gz"
    with tarfile.open(t, "w:gz") as f:
        for name, blob in [("cifar-10-batches-py/data_batch_2", _cifar_batch(3, 2)),
                           ("cifar-10-batches-py/data_batch_1", _cifar_batch(4, 1)),
                           ("cifar-10-batches-py/test_batch", _cifar_batch(2, 9))]:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            f.addfile(info, io.BytesIO(blob))
    _manifest(tmp_path, monkeypatch, "cifar10", [_spec(t, f"{base}/{t.name}", "md5")])
    tr, te = data.load_cifar10("train"), data.load_cifar10("test")
    assert len(tr) == 7 and len(te) == 2 and tr.images.shape == (7, 32, 32, 3)
    first = pickle.loads(_cifar_batch(4, 1))  # the test's own bytes: batch 1 comes first, channels last
    assert tr.labels[:4].tolist() == first[b"labels"]
    assert np.array_equal(tr.images[0].numpy(), first[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0))


def test_banking77_csv_files(server, tmp_path, monkeypatch):
    root, base, hits = server
    (root / "banking77").mkdir()
    tr, te = root / "banking77" / "train.csv", root / "banking77" / "test.csv"
    tr.write_text("text,category\nmy card is lost,lost_card\nwhat is my balance,balance\n")
    te.write_text("text,category\ncard gone,lost_card\n")
    files = [{**_spec(tr, f"{base}/banking77/train.csv"), "name": "banking77/train.csv", "group": "train"},
             {**_spec(te, f"{base}/banking77/test.csv"), "name": "banking77/test.csv", "group": "test"}]
    _manifest(tmp_path, monkeypatch, "banking77", files)
    ts = data.load_banking77("test")
    assert ts.texts == ["card gone"] and ts.classes == ["balance", "lost_card"] and ts.labels.tolist() == [1]
    assert sorted(hits) == ["/banking77/test.csv", "/banking77/train.csv"]


def test_checksum_refusal_keeps_nothing_and_names_no_deleted_file(server, tmp_path, monkeypatch):
    root, base, hits = server
    f = root / "cifar-10-python.tar.gz"
    f.write_bytes(b"not the archive the manifest describes")
    spec = _spec(f, f"{base}/{f.name}")
    spec["sha256"] = "0" * 64
    _manifest(tmp_path, monkeypatch, "cifar10", [spec])
    with pytest.raises(data.DataError) as err:
        data.resolve("cifar10")
    msg = str(err.value)
    assert "failed its check" in msg and "nothing was kept" in msg and ".part" not in msg
    assert "0" * 64 in msg  # says which file to place instead
    assert list(config.cache_dir().iterdir()) == [] or not any(p.is_file() for p in config.cache_dir().rglob("*"))


def test_interrupted_download_leaves_no_part_file_and_no_destination(server, tmp_path, monkeypatch):
    root, base, hits = server
    _manifest(tmp_path, monkeypatch, "cifar10", [{"name": "cifar-10-python.tar.gz", "url": f"{base}/missing.tar.gz",
                                                  "sha256": "0" * 64}])
    with pytest.raises(data.DataError, match="not found and not downloadable.*404"):
        data.resolve("cifar10")
    assert not (config.cache_dir() / "cifar-10-python.tar.gz").exists()
    assert not list(config.cache_dir().glob(".*"))


def test_offline_switches_stop_the_download(server, tmp_path, monkeypatch):
    root, base, hits = server
    f = root / "x.tar.gz"
    f.write_bytes(b"abc")
    _manifest(tmp_path, monkeypatch, "cifar10", [_spec(f, f"{base}/x.tar.gz")])
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "CL_BOOK_OFFLINE"):
        monkeypatch.setenv(var, "1")
        with pytest.raises(data.DataError, match=f"offline: {var} is set"):
            data.resolve("cifar10")
        monkeypatch.delenv(var)
    assert hits == []
    assert data.resolve("cifar10")["archive"].read_bytes() == b"abc" and hits == ["/x.tar.gz"]


def test_an_oversize_download_stops_at_the_manifest_size(server, tmp_path, monkeypatch):
    """Before: a 30 MB response was fetched whole where the manifest said 1,000 bytes, then rejected."""
    root, base, hits = server
    big = root / "big.tar.gz"
    big.write_bytes(b"x" * 30_000_000)
    _manifest(tmp_path, monkeypatch, "cifar10", [{"name": "cifar-10-python.tar.gz", "url": f"{base}/big.tar.gz",
                                                  "sha256": "0" * 64, "size": 1000}])
    with pytest.raises(data.DataError, match="announces 30,000,000 bytes where the manifest says 1,000"):
        data.resolve("cifar10")
    assert not any(p.is_file() for p in config.cache_dir().rglob("*"))


def _raw_server(header: bytes, block: bytes, blocks: int, pause: float = 0.0) -> tuple[object, int]:
    """A one-request HTTP server on 127.0.0.1 that sends `header`, then `blocks` times `block` (sleeping `pause`
    between them) until the client stops reading; returns the socket and its port."""
    import socket
    import time

    srv = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = srv.accept()
        conn.recv(4096)
        conn.sendall(header)
        try:
            for _ in range(blocks):
                conn.sendall(block)
                time.sleep(pause)
        except OSError:  # the client stopped reading: what the tests want
            pass
        conn.close()
    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_a_response_without_length_is_cut_at_the_manifest_size(tmp_path):
    """A server that sends no Content-Length is stopped once the bytes pass the manifest's size."""
    srv, port = _raw_server(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n", b"y" * (1 << 20), 40)
    dest = tmp_path / "dl" / "f.bin"
    with pytest.raises(data.DataError, match="exceeds the manifest's 2,000,000 bytes"):
        data.download(f"http://127.0.0.1:{port}/f.bin", dest, {"name": "f.bin", "sha256": "0" * 64, "size": 2_000_000})
    srv.close()
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_a_slow_download_hits_its_deadline(tmp_path):
    """Each read has a timeout; the whole transfer has a deadline too (a server trickling bytes forever)."""
    import time

    srv, port = _raw_server(b"HTTP/1.0 200 OK\r\n\r\n", b"z" * 100, 50, pause=0.1)  # fast reads, slow whole
    dest = tmp_path / "dl" / "slow.bin"
    started = time.monotonic()
    with pytest.raises(data.DataError, match="took longer than 1 s"):
        data.download(f"http://127.0.0.1:{port}/slow.bin", dest, {"name": "slow.bin", "sha256": "0" * 64},
                      timeout=5, deadline=1.0)
    assert time.monotonic() - started < 4 and not dest.exists() and list(dest.parent.iterdir()) == []
    srv.close()
