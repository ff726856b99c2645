"""The bibliography (chapters/references.bib, rendered by the site) against what the chapters cite."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY = re.compile(r"^@(\w+)\{([^,\s]+),(.*?)^\}", re.M | re.S)


def entries() -> dict[str, str]:
    text = (ROOT / "chapters" / "references.bib").read_text()
    found = ENTRY.findall(text)
    keys = [k for _, k, _ in found]
    assert len(keys) == len(set(keys)), "a key appears twice in references.bib"
    assert len(found) == text.count("\n@") + text.startswith("@"), "an entry does not parse (missing closing brace?)"
    return {k: body for _, k, body in found}


def test_every_entry_has_a_title_a_year_and_a_link():
    bib = entries()
    assert len(bib) >= 30
    for key, body in bib.items():
        for field in ("title", "year", "url"):
            assert re.search(rf"^\s*{field}\s*=", body, re.M), f"{key} has no {field}"
        url = re.search(r"url\s*=\s*\{([^}]*)\}", body).group(1)
        assert url.startswith(("https://", "http://")), f"{key}: {url}"


def test_every_arxiv_number_a_chapter_cites_is_in_the_bibliography():
    cited = set()
    for path in [*(ROOT / "chapters").glob("*.py"), ROOT / "book.toml"]:
        cited |= set(re.findall(r"arXiv:? ?(\d{4}\.\d{4,5})", path.read_text()))
    linked = set(re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", "".join(entries().values())))
    assert len(cited) >= 10
    assert cited <= linked, f"cited in a chapter but missing from references.bib: {sorted(cited - linked)}"


def test_every_chapter_links_its_arxiv_numbers():
    """In a chapter's Markdown an arXiv number is a link, so that JupyterLab readers can follow it too."""
    for path in (ROOT / "chapters").glob("0*.py"):
        for line in path.read_text().splitlines():
            if line.startswith("# ") and re.search(r"arXiv \d{4}\.\d{4,5}", line):
                assert re.search(r"\[arXiv \d{4}\.\d{4,5}\]\(https://arxiv\.org/abs/\d{4}\.\d{4,5}\)", line), \
                    f"{path.name}: an arXiv number without its link: {line.strip()}"
