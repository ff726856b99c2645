"""The runner's cache keys: editing the chapter's code, a setting it reads, or any cl_lib source recomputes the
runs (and the features); nothing else does. Hand-built modules stand in for a chapter."""
import importlib
import shutil
import sys

import pytest

from cl_lib import cache, config, experiment, features

CHAPTER = '''
EPOCHS = {epochs}
UNRELATED = 1

def helper(x):
    return x * {factor}

def unrelated():
    return UNRELATED

def run_one(job):
    LOG.calls.append(job)
    return {{"value": helper(job) + EPOCHS}}

import types
LOG = types.SimpleNamespace(calls=[])  # not a setting: the runner leaves it out of the key
'''


def chapter(tmp_path, monkeypatch, name="fake_chapter", epochs=2, factor=10, extra=""):
    """Write and (re)import a module that plays a chapter's notebook."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / f"{name}.py").write_text(CHAPTER.format(epochs=epochs, factor=factor) + extra)
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return importlib.import_module(name)


def cfg():
    return config.ChapterConfig(chapter="00_setting", profile="quick", params={"epochs": 1})


def test_reach_digest_follows_helpers_and_settings_not_unrelated_code(tmp_path, monkeypatch):
    base = cache.reach_digest(chapter(tmp_path, monkeypatch).run_one)
    assert cache.reach_digest(chapter(tmp_path, monkeypatch).run_one) == base  # stable across imports
    assert cache.reach_digest(chapter(tmp_path, monkeypatch, factor=11).run_one) != base  # a helper it calls
    assert cache.reach_digest(chapter(tmp_path, monkeypatch, epochs=3).run_one) != base  # a setting it reads
    assert cache.reach_digest(chapter(tmp_path, monkeypatch, extra="\nUNRELATED = 2\n").run_one) == base


def test_over_seeds_caches_and_recomputes_after_an_edit(tmp_path, monkeypatch):
    ch = chapter(tmp_path, monkeypatch)
    monkeypatch.setenv("CL_BOOK_WORKERS", "1")  # in this process: LOG.calls counts the computations
    first = experiment.over_seeds(ch.run_one, [0, 1, 2], cfg=cfg(), name="t", data=["d1"])
    assert dict(first) == {0: {"value": 2}, 1: {"value": 12}, 2: {"value": 22}} and ch.LOG.calls == [0, 1, 2]
    again = experiment.over_seeds(ch.run_one, [0, 1, 2], cfg=cfg(), name="t", data=["d1"])
    assert dict(again) == dict(first) and ch.LOG.calls == [0, 1, 2]  # all three served from the cache
    experiment.over_seeds(ch.run_one, [0], cfg=cfg(), name="t", data=["d2"])  # other data
    assert ch.LOG.calls == [0, 1, 2, 0]
    edited = chapter(tmp_path, monkeypatch, factor=100)  # the reader edits a helper in the notebook
    assert dict(experiment.over_seeds(edited.run_one, [1], cfg=cfg(), name="t", data=["d1"])) == {1: {"value": 102}}
    assert edited.LOG.calls == [1]
    monkeypatch.setattr(cache, "library_digest", lambda root=None: "an edited cl_lib")  # an edit in the library
    again = chapter(tmp_path, monkeypatch, factor=100)
    experiment.over_seeds(again.run_one, [1], cfg=cfg(), name="t", data=["d1"])
    assert again.LOG.calls == [1]


def test_library_digest_sees_every_source_file(tmp_path):
    copy = tmp_path / "cl_lib"
    shutil.copytree(cache.LIBRARY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    base = cache.library_digest(copy)
    assert base == cache.library_digest(cache.LIBRARY)
    src = copy / "backbones.py"  # the preprocessing: bilinear → bicubic
    text = src.read_text()
    assert "bilinear" in text
    src.write_text(text.replace("bilinear", "bicubic", 1))
    assert cache.library_digest(copy) != base
    src.write_text(text)
    (copy / "methods" / "new_method.py").write_text("x = 1\n")
    assert cache.library_digest(copy) != base


def test_features_recompute_when_the_library_changes(monkeypatch, counted_features):
    b, imgs, calls = counted_features(4)
    features.features(b, imgs, image_size=32)
    features.features(b, imgs, image_size=32)
    assert len(calls) == 1
    monkeypatch.setattr(features, "library_digest", lambda: "the preprocessing was edited")
    features.features(b, imgs, image_size=32)
    assert len(calls) == 2


def test_summary_is_the_claims_bound():
    s = experiment.summary([1.0, 2.0, 3.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(2.0) and s["lower95"] == pytest.approx(0.314, abs=1e-3)


def test_show_code_names_file_and_line():
    import inspect

    from cl_lib import plots
    from cl_lib.methods import dkvb

    line = inspect.getsourcelines(dkvb.create)[1]
    assert plots.code_location(dkvb.create) == f"cl_lib/methods/dkvb.py:{line}"
    src = (config.ROOT / "cl_lib/methods/dkvb.py").read_text().splitlines()
    assert src[line - 1].startswith("def create(")
