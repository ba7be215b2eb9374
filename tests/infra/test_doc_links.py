"""README.md and docs/*.md: every relative link leads somewhere, and the README stays a
front door (at most 200 lines, every page of docs/ reachable from it).

A broken link renders fine and fails only the reader who follows it, so nothing else
would catch one; anchors are checked against the headings GitHub derives them from."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 200

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"(?<!!)\[(?:[^\]\n]*)\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links
    and `#` lines are not headings."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text lower-cased, punctuation
    dropped (hyphens and underscores kept), each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = text.replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page, with GitHub's -1, -2 … for repeated headings."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found: set[str] = set()
    for heading in HEADING.findall(text):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if EXTERNAL.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        where = f"{_name(page)} → {target}"
        if not dest.exists():
            problems.append(f"{where}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading #{anchor} in {_name(dest)}")
        elif anchor and dest.suffix != ".md":
            problems.append(f"{where}: an anchor into a file that is not Markdown")
    return problems


def test_the_slug_is_githubs() -> None:
    assert slug("R1 — Schedule, triggers, one run at a time") == (
        "r1--schedule-triggers-one-run-at-a-time")
    assert slug("Write-back needs `enableWriteBack`") == "write-back-needs-enablewriteback"
    assert slug("3. Poll the run: `GET /api/sync/runs/{runId}`") == (
        "3-poll-the-run-get-apisyncrunsrunid")
    assert slug("R14's delta links (`syncstate/state-events.json.gz`)") == (
        "r14s-delta-links-syncstatestate-eventsjsongz")


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## A part\n", encoding="utf-8")
    page.write_text("# Page\n\n[ok](other.md#a-part) [self](#page) `[code](nowhere.md)`\n"
                    "[gone](missing.md) [no anchor](other.md#b-part)\n"
                    "```\n[in a block](nowhere.md)\n```\n", encoding="utf-8")
    assert broken_links(page) == ["page.md → missing.md: no such file",
                                  "page.md → other.md#b-part: no heading #b-part in other.md"]


def test_every_relative_link_in_the_readme_and_docs_leads_somewhere() -> None:
    pages = _pages()
    assert len(pages) > 10  # the README and the pages of docs/ were found
    problems = [problem for page in pages for problem in broken_links(page)]
    assert problems == []


def test_the_readme_is_a_front_door() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "make demo" in text and "make test" in text
    for rule in range(1, 19):
        assert re.search(rf"^- \*\*R{rule}\*\* ", text, re.M), f"R{rule} has no line"


def test_every_page_of_docs_is_linked_from_the_readme() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve()
              for target in LINK.findall(_prose(README.read_text(encoding="utf-8")))
              if not EXTERNAL.match(target)}
    unlinked = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert unlinked == []
