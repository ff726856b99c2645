"""Shared fixtures: every test gets its own empty cache folder, so no test reads another's results."""
import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CL_BOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CL_BOOK_BUILD", str(tmp_path / "build"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


def shared_data_available() -> bool:
    return bool(os.environ.get("CL_BOOK_DATA")) and os.path.isdir(os.environ["CL_BOOK_DATA"])
