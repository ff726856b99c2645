import pytest

from cl_lib import config


def test_profiles_and_default(monkeypatch):
    assert {"quick", "full"} <= set(config.profiles())
    monkeypatch.delenv("CL_BOOK_PROFILE", raising=False)
    monkeypatch.setattr(config, "cuda_available", lambda: False)
    assert config.active_profile() == "quick"
    monkeypatch.setattr(config, "cuda_available", lambda: True)
    assert config.active_profile() == "full"
    monkeypatch.setenv("CL_BOOK_PROFILE", "quick")
    assert config.active_profile() == "quick"


def test_unknown_profile_lists_valid_ones(monkeypatch):
    monkeypatch.setenv("CL_BOOK_PROFILE", "turbo")
    with pytest.raises(config.ConfigError, match="Unknown profile 'turbo'.*full, quick"):
        config.active_profile()


def test_chapter_config(monkeypatch, capsys):
    cfg = config.chapter_config("00_setting", "quick")
    assert cfg.profile == "quick" and isinstance(cfg.n_tasks, int)
    assert "profile=quick" in capsys.readouterr().out
    assert "profile=quick" in cfg.report() and "runtime=" in cfg.report()
    with pytest.raises(AttributeError, match="no setting 'nope'"):
        cfg.nope
    with pytest.raises(config.ConfigError, match="Unknown chapter '99_x'.*00_setting"):
        config.chapter_config("99_x", "quick")


def test_every_chapter_has_both_profiles():
    book = config.load_book()
    for ch in config.chapters():
        slug = ch["file"].removesuffix(".py")
        assert (config.ROOT / "chapters" / ch["file"]).exists(), ch["file"]
        assert ch.get("title") and ch.get("paper")
        for prof in ("quick", "full"):
            assert slug in book["profiles"][prof], f"{slug} lacks [profiles.{prof}.{slug}]"


def test_missing_book_file(monkeypatch, tmp_path):
    monkeypatch.setenv("CL_BOOK_TOML", str(tmp_path / "nope.toml"))
    with pytest.raises(config.ConfigError, match="book.toml not found"):
        config.load_book()
