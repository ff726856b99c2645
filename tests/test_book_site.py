"""The site's apparatus, without building it: figure captions, exercise hints, launch links (scripts/site.py)."""
from __future__ import annotations

import nbformat
import pytest

from scripts import book, site


def test_every_chapter_with_solutions_has_a_hint_and_a_text_per_exercise():
    for slug, n in (("00_setting", 5), ("03_ada", 5), ("06_comparison", 5), ("07_text_comparison", 2)):
        items = site.exercises(slug)
        assert [e["n"] for e in items] == list(range(1, n + 1)), slug
        for e in items:
            assert len(e["hint"]) > 20 and len(e["text"]) > 20 and e["title"], (slug, e)
            assert "**Expected result" not in e["hint"]  # the hint stops at its paragraph


def test_hints_page_has_hints_and_no_solutions():
    chapters = [{"slug": "00_setting", "title": "Chapter 00"}]
    page = site.hints_page(chapters)
    first = site.exercises("00_setting")[0]
    assert first["hint"][:40] in page and first["text"][:40] in page
    assert "Expected result" not in page and "```" not in page


def test_chapter_page_gets_hint_dropdowns_linking_to_solution_targets():
    ch = {"slug": "00_setting", "status": "ok", "seconds": 1.0, "file": "00_setting.py"}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title\ngoals"),
                                         nbformat.v4.new_markdown_cell("## Exercises\n\n1. Do this.")])
    cells = site.prepare_notebook(ch, nb).cells
    i = next(k for k, c in enumerate(cells) if c.source.startswith("## Exercises"))
    hints = cells[i + 1].source
    assert hints.count(":class: dropdown") == 5 and f"<{site.solution_target('00_setting', 3)}>" in hints
    sol = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Solutions"),
                                          nbformat.v4.new_markdown_cell("## Exercise 3 — x\n**Hint.** y")])
    out = site.prepare_notebook({**ch, "slug": "solutions-00_setting"}, sol).cells
    assert any(c.source.startswith(f"({site.solution_target('00_setting', 3)})=\n## Exercise 3") for c in out)


def test_a_figure_becomes_a_numbered_figure_with_its_caption(monkeypatch, tmp_path):
    from IPython.core.interactiveshell import InteractiveShell
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cl_lib import config, plots

    monkeypatch.setattr(config, "figure_dir", lambda chapter: tmp_path)
    shell = InteractiveShell.instance()
    outputs = []
    monkeypatch.setattr(shell.display_pub, "publish", lambda data, metadata=None, **kw: outputs.append(
        nbformat.v4.new_output("display_data", data=data, metadata=metadata or {})))
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    plots.show(fig, "00_setting", "line", caption="Look at the line.")
    with pytest.raises(ValueError, match="empty caption"):
        plots.show(plt.figure(), "00_setting", "empty", caption=" ")
    cell = nbformat.v4.new_code_cell("plots.show(fig, CH, 'line', caption='Look at the line.')")
    cell.outputs = outputs
    assert site.caption_of(cell) == ("line", "Look at the line.")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), cell])
    page = site.prepare_notebook({"slug": "00_setting", "status": "ok", "seconds": 1.0, "file": "00_setting.py"}, nb)
    fig_cell = page.cells[-1]
    assert fig_cell.metadata["mystnb"]["figure"] == {"caption": "Look at the line.", "name": "fig-00-setting-line"}
    assert [list(o["data"]) for o in fig_cell.outputs] == [["image/png", "text/plain"]]  # the caption's copy is gone
    assert site.figure_problems("00_setting", nb) == []
    uncaptioned = nbformat.v4.new_code_cell("plt.show()")
    uncaptioned.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "", "text/plain": ""})]
    assert site.figure_problems("00_setting", nbformat.v4.new_notebook(cells=[uncaptioned]))


def test_launch_links_and_install_cell_follow_book_toml(monkeypatch):
    ch = {"slug": "03_ada", "file": "03_ada.py"}
    monkeypatch.setattr(site, "site_settings", lambda: {"repository": "", "branch": "main", "pages_branch": "gh-pages"})
    assert site.launch_links(ch) == ""
    monkeypatch.setattr(site, "site_settings", lambda: {"repository": "https://github.com/o/r", "branch": "main",
                                                        "pages_branch": "gh-pages"})
    links = site.launch_links(ch)
    assert "https://mybinder.org/v2/gh/o/r/main?labpath=chapters%2F03_ada.py" in links
    assert "https://colab.research.google.com/github/o/r/blob/gh-pages/downloads/03_ada.ipynb" in links
    nb = book.to_notebook("00_setting", book.sources()["00_setting"])
    install = next(c for c in nb.cells if c.cell_type == "code")
    assert "install" in install.metadata["tags"] and 'find_spec("cl_lib") is None' in install.source
    namespace: dict = {}
    exec(compile(install.source, "install", "exec"), namespace)  # cl_lib is importable here: a no-op
    assert "REPOSITORY" not in namespace
