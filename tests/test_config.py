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
    monkeypatch.delenv("CL_BOOK_SMOKE", raising=False)
    cfg = config.chapter_config("00_setting", "quick")
    table = config.load_book()["profiles"]["quick"]["00_setting"]
    assert cfg.profile == "quick" and cfg.params == table  # the chapter reads exactly its table
    assert cfg.n_tasks == table["n_tasks"] and cfg.chapter == "00_setting" and cfg.assert_claims
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


def test_smoke_caps_only_shrink_full_and_keep_every_shape(monkeypatch):
    """Each chapter's smoke table caps settings `full` has (data per class, epochs, steps, seeds), never raises one,
    cuts a hyper-parameter grid only to a non-empty subset of its points, and leaves every other value (architecture,
    image size, codebooks, layers, processes) as in `full`."""
    book = config.load_book()
    shape_keys = {"image_size", "backbone", "dim", "depth", "heads", "patch", "codebooks", "n_keys", "dim_key",
                  "first_layer", "layer", "processes", "n_tasks", "classes_per_task", "tiny_tasks", "contributors"}
    for ch in config.chapters():
        slug = ch["file"].removesuffix(".py")
        full = {k: v for k, v in book["profiles"]["full"][slug].items() if k != "smoke"}
        caps = book["profiles"]["full"][slug].get("smoke")
        assert caps, f"{slug} has no [profiles.full.{slug}.smoke] table"
        assert set(caps) <= set(full), f"{slug}: smoke caps unknown settings {set(caps) - set(full)}"
        assert not set(caps) & shape_keys, f"{slug}: the smoke run must not change {set(caps) & shape_keys}"
        for k, v in caps.items():
            if isinstance(v, list):
                assert v and set(v) <= set(full[k]), f"{slug}.{k}: smoke grid {v} is not a subset of {full[k]}"
            else:
                assert isinstance(v, (int, float)) and v <= full[k], f"{slug}.{k}: smoke {v} > full {full[k]}"
        smoke = config.chapter_settings(slug, "full", smoke_run=True)
        assert smoke == {**full, **caps}
        assert config.chapter_settings(slug, "full", smoke_run=False) == full


def test_smoke_needs_its_table(monkeypatch):
    monkeypatch.setenv("CL_BOOK_SMOKE", "1")
    with pytest.raises(config.ConfigError, match="smoke.*does not exist"):
        config.chapter_settings("00_setting", "quick")
    cfg = config.chapter_config("00_setting", "full")
    assert cfg.smoke and not cfg.assert_claims and cfg.epochs == 1


def test_cache_folder_that_is_a_file_is_one_clear_error(monkeypatch, tmp_path):
    f = tmp_path / "not_a_folder"
    f.write_text("x")
    monkeypatch.setenv("CL_BOOK_CACHE", str(f))
    with pytest.raises(config.ConfigError, match="is a file. Point CL_BOOK_CACHE at a folder"):
        config.cache_dir("features")


def test_environment_yml_lists_every_dependency_of_pyproject():
    """Conda users install from environment.yml: it must not fall behind pyproject.toml (it lacked pytest-xdist)."""
    import re
    import tomllib

    root = config.ROOT
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    names = {re.split(r"[<>=!\[ ]", d, maxsplit=1)[0].lower() for d in wanted}
    listed = {re.split(r"[<>=!\[ ]", ln.strip()[2:], maxsplit=1)[0].lower()
              for ln in (root / "environment.yml").read_text().splitlines() if ln.strip().startswith("- ")}
    assert names <= listed, f"environment.yml lacks {sorted(names - listed)}"
