"""Bad input and faults, each probe → the one-line error or the correct result, with nothing left behind."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cl_lib import config

ROOT = Path(__file__).resolve().parent.parent

RACER = textwrap.dedent("""
    import sys, time, torch
    from cl_lib import cache
    def compute():
        with open(sys.argv[1], "a") as f:
            f.write("computed\\n")
        time.sleep(1.0)
        return torch.ones(30_000_000)  # 120 MB: writing takes long enough for the other process to look
    v = cache.cached("race", {"entry": "shared"}, compute)
    assert float(v.sum()) == 30_000_000
""")


def test_two_processes_racing_on_one_entry_compute_it_once(tmp_path):
    """Before the entry lock, the second process found the .pt before its .json, deleted it as bad, and the
    writer died with FileNotFoundError; the work was done twice."""
    counter = tmp_path / "computed.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CL_BOOK_CACHE": os.environ["CL_BOOK_CACHE"]}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(counter)], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert counter.read_text().count("computed") == 1
    folder = config.cache_dir("race")
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".lock", ".pt"]  # no temporary file left


BOOK = (ROOT / "book.toml").read_text()


def _broken(tmp_path, monkeypatch, old: str, new: str, count: int = 1) -> None:
    assert old in BOOK, old
    path = tmp_path / "book.toml"
    path.write_text(BOOK.replace(old, new, count))
    monkeypatch.setenv("CL_BOOK_TOML", str(path))


@pytest.mark.parametrize("old, new, message", [
    ("[book]\n", "[book\n", r"book\.toml: not valid TOML \(.*line"),
    ("epochs = 2\nbatch_size = 32", 'epochs = "two"\nbatch_size = 32',
     r"\[profiles\.quick\.00_setting\] epochs = 'two' must be an integer, as in the other profiles"),
    ("epochs = 2\nbatch_size = 32", "epochs = -1\nbatch_size = 32", r"\[profiles\.quick\.00_setting\] epochs = -1 must be ≥ 1"),
    ("seed = 0\n", 'seed = "zero"\n', r"\[book\] seed = 'zero' must be a non-negative integer"),
    ('file = "03_ada.py"\n', "", r"\[\[chapters\]\] entry 4 \(.*\) has no 'file'; add file ="),
    ("epochs = 2\nbatch_size = 32", "epoch = 2\nbatch_size = 32",
     r"\[profiles\.quick\.00_setting\] 'epoch' is not a setting of this chapter .*did you mean 'epochs'\?"),
    ("[profiles.quick.02_dkvb]", "[profiles.quick.02_dkbv]", r"\[profiles\.quick\.02_dkbv\] is not a chapter.*'02_dkvb'"),
    ("verified = false", 'verified = "no"', r"\[profiles\.full\] verified must be a boolean"),
])
def test_book_toml_defects_give_one_line_naming_file_key_and_fix(tmp_path, monkeypatch, old, new, message):
    """Before: a bare TOMLDecodeError without the file, TypeError once training started, a silent empty run, a raw
    ValueError, a KeyError. After: a ConfigError when the file is read."""
    _broken(tmp_path, monkeypatch, old, new)
    with pytest.raises(config.ConfigError, match=message) as err:
        config.chapter_config("00_setting")
    assert "\n" not in str(err.value) and str(tmp_path / "book.toml") in str(err.value)


def test_a_smoke_cap_with_a_typo_names_the_nearest_key(tmp_path, monkeypatch):
    _broken(tmp_path, monkeypatch, "[profiles.full.00_setting.smoke]\ntrain_per_class = 1",
            "[profiles.full.00_setting.smoke]\ntrain_per_clas = 1")
    with pytest.raises(config.ConfigError, match=r"caps 'train_per_clas'.*did you mean 'train_per_class'"):
        config.load_book()


def test_the_book_toml_as_shipped_is_valid():
    config.validate(config.load_book())


def _resnet10t_state():
    import timm

    return timm.create_model("resnet10t", pretrained=False, num_classes=0).state_dict()


@pytest.mark.parametrize("case", ["truncated safetensors", "garbage safetensors", "garbage pth", "pickled code pth"])
def test_unreadable_weights_files_are_named_as_such(tmp_path, case):
    """Before: a 29-line SafetensorError traceback, or 'another architecture' for a file that cannot be read."""
    from safetensors.torch import save_file

    from cl_lib import backbones

    if case.endswith("safetensors"):
        path = tmp_path / "resnet10t.safetensors"
        save_file(_resnet10t_state(), str(path))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if case.startswith("truncated") else b"\x00garbage" * 100)
    else:
        path = tmp_path / "resnet10t.pth"
        if case.startswith("garbage"):
            path.write_bytes(b"not a torch file at all")
        else:  # a pickle that would run code: refused by weights_only, reported as unreadable
            import pickle

            class Evil:
                def __reduce__(self):
                    return (print, ("ran",))
            path.write_bytes(pickle.dumps({"conv1.0.weight": Evil()}))
    with pytest.raises(backbones.BackboneError, match=r"^Weights file unreadable or corrupt: .*resnet10t") as err:
        backbones.create("resnet10t", weights_file=path)
    assert "\n" not in str(err.value)


def test_a_shape_mismatch_quotes_the_tensor(tmp_path):
    """Before: the tensor's name was lost; now the first `size mismatch for …` line is quoted."""
    from cl_lib import backbones

    state = _resnet10t_state()
    key = next(k for k, v in state.items() if v.ndim == 4)
    state[key] = torch.zeros(3, *state[key].shape[1:])
    path = tmp_path / "resnet10t.pth"
    torch.save(state, path)
    with pytest.raises(backbones.BackboneError, match=rf"size mismatch for {key}"):
        backbones.create("resnet10t", weights_file=path)


@pytest.mark.parametrize("switch", ["CL_BOOK_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
@pytest.mark.parametrize("name", ["resnet10t", "gcvit_xtiny.in1k"])
def test_offline_without_a_local_file_raises_before_any_network_call(monkeypatch, switch, name):
    """Before: CL_BOOK_OFFLINE alone let timm make 15 hub look-ups, and gcvit_xtiny.in1k looked up a code host
    under every switch."""
    import socket

    from cl_lib import backbones

    for var in ("CL_BOOK_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(switch, "1")
    attempts = []

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise OSError("network call attempted in an offline test")
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(backbones.BackboneError, match=rf"No pretrained weights for '{name}' offline \({switch} is set\)"):
        backbones.create(name)
    assert attempts == []


def test_an_unknown_pretrained_tag_is_named_before_the_hub_is_asked():
    """Before: 'resnet18.bogus' was blamed on the hub download."""
    from cl_lib import backbones

    with pytest.raises(backbones.BackboneError, match=r"Unknown pretrained tag 'bogus' for 'resnet18': its tags are .*a1_in1k"):
        backbones.create("resnet18.bogus")


@pytest.mark.parametrize("where", ["/proc/cl_book_cache", "/dev/null/cache"])
def test_an_uncreatable_cache_folder_is_one_clear_line(monkeypatch, where):
    """Before: a raw FileNotFoundError for a folder under /proc."""
    monkeypatch.setenv("CL_BOOK_CACHE", where)
    with pytest.raises(config.ConfigError, match=r"cannot be created.*Point CL_BOOK_CACHE at") as err:
        config.cache_dir("features")
    assert "\n" not in str(err.value)


def test_stale_temporaries_are_swept_in_every_cache_folder(tmp_path):
    """Before: only the folder of the kind in use was swept; a `.part` in the cache root stayed for good."""
    import time as time_

    from cl_lib import cache

    stale = []
    for folder in (config.cache_dir(), config.cache_dir("features")):
        p = folder / ".x.part" if folder == config.cache_dir() else folder / ".y.pt.abc.tmp"
        p.write_bytes(b"0" * 1000)
        old = time_.time() - 2 * cache.STALE_SECONDS
        os.utime(p, (old, old))
        stale.append(p)
    cache._SWEPT.clear()
    cache.cached("other_kind", {"k": 1}, lambda: torch.zeros(1))
    assert not any(p.exists() for p in stale)


def test_site_tables_escape_a_pipe():
    import importlib.util

    spec = importlib.util.spec_from_file_location("book_site", ROOT / "scripts" / "site.py")
    site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(site)
    assert site.cell("failed: a | b\nsecond line") == "failed: a \\| b second line"


def test_features_computed_with_another_thread_count_are_another_entry(monkeypatch):
    """Conv outputs differ in the low bits between 1 and 2 threads: the thread count is part of the key, so the run
    that fills the cache first does not decide the bits every later run sees."""
    from cl_lib import cache, features

    keys = []
    monkeypatch.setattr(features, "cached", lambda kind, key, compute: keys.append(key) or torch.zeros(1))
    ds = type("D", (), {"name": "d", "split": "train", "digest": lambda self: "abc", "__len__": lambda self: 3})()
    bb = type("B", (), {"name": "b", "weights": "w", "kind": "text"})()
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            features.features(bb, ds)
    finally:
        torch.set_num_threads(before)
    assert keys[0]["environment"]["threads"] == 1 and keys[1]["environment"]["threads"] == 2
    assert cache.key_hash(keys[0]) != cache.key_hash(keys[1])


def test_a_linked_member_standing_for_a_needed_file_is_named(tmp_path):
    """Before: a Tiny ImageNet archive whose words.txt is a symlink member ended in a raw KeyError 'words.txt'."""
    import io
    import tarfile

    from PIL import Image

    from cl_lib import data

    def add(t, name, payload=b"", kind=None, target=""):
        info = tarfile.TarInfo(name)
        if kind is not None:
            info.type, info.linkname = kind, target
        info.size = len(payload)
        t.addfile(info, io.BytesIO(payload))
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buf, format="JPEG")
    path = tmp_path / "tiny-imagenet-200.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        add(t, "tiny-imagenet-200/wnids.txt", b"n01\n")
        add(t, "tiny-imagenet-200/words.txt", kind=tarfile.SYMTYPE, target="/etc/hostname")
        add(t, "tiny-imagenet-200/train/n01/images/n01_0.JPEG", buf.getvalue())
        add(t, "tiny-imagenet-200/val/images/val_0.JPEG", buf.getvalue())
        add(t, "tiny-imagenet-200/val/val_annotations.txt", b"val_0.JPEG\tn01\n")
    with pytest.raises(data.DataError, match=r"not a complete Tiny ImageNet archive: no regular file for words\.txt"):
        data._decode_tiny_imagenet(path)
