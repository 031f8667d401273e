"""Every relative link and #anchor in README.md, docs/*.md and examples/README.md resolves: a file or
folder that exists, and a heading of the page it names (GitHub's anchor rule)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "examples" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`[^`]*`")


def anchor(heading: str) -> str:
    """GitHub's rule: inline markup dropped, lowercase, punctuation dropped (word characters, '-' and
    spaces stay), each space -> '-'."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip())
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def lines_outside_code(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors_of(page: Path) -> set[str]:
    """A page's heading anchors; a repeated heading gets -1, -2, ... as on GitHub."""
    anchors, counts = set(), {}
    for line in lines_outside_code(page.read_text()):
        match = re.match(r"#{1,6} (.*)", line)
        if match:
            base = anchor(match.group(1))
            count = counts.get(base, 0)
            anchors.add(f"{base}-{count}" if count else base)
            counts[base] = count + 1
    return anchors


def links_of(page: Path) -> list[str]:
    return [target for line in lines_outside_code(page.read_text()) for target in LINK.findall(INLINE_CODE.sub("", line))]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links_of(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ... not checked here (no network)
            continue
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and (resolved.suffix != ".md" or fragment not in anchors_of(resolved)):
            broken.append(f"{target}: no heading #{fragment} in {resolved.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page):
    assert page.is_file()
    assert broken_links(page) == []


def test_the_front_door_links_every_docs_page():
    linked = {Path(target.partition("#")[0]).name for target in links_of(ROOT / "docs" / "README.md")}
    assert {page.name for page in (ROOT / "docs").glob("*.md")} - {"README.md"} <= linked


@pytest.mark.parametrize(
    "heading, expected",
    [
        ("Edge builds: GGUF for llama.cpp", "edge-builds-gguf-for-llamacpp"),  # ':' and '.' dropped
        ("`emo-prune eval`", "emo-prune-eval"),  # code markup dropped, '-' kept
        ("Offline tasks (`recipes/tasks/`)", "offline-tasks-recipestasks"),  # '/' and parentheses dropped
        ("Several processes or machines", "several-processes-or-machines"),
        ("Plans in other tools' formats", "plans-in-other-tools-formats"),  # apostrophe dropped
        ("MoE kernels: facts, limits and targets", "moe-kernels-facts-limits-and-targets"),
        ("A_b  c", "a_b--c"),  # underscores stay; each space is one '-'
    ],
)
def test_anchor_rule(heading, expected):
    assert anchor(heading) == expected


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Twice\n\n## Twice\n")
    (tmp_path / "page.md").write_text(
        "# Page\n\n"
        "[fine](other.md) [fine](other.md#other-page) [fine](#page) [fine](other.md#twice-1) [fine](https://x.org/y)\n"
        "[gone](missing.md) [no heading](other.md#nowhere) [no local heading](#nowhere) [third twice](other.md#twice-2)\n"
        "`[in code](missing-too.md)`\n\n```\n[in a block](missing-three.md)\n```\n"
    )
    assert broken_links(tmp_path / "page.md") == [
        "missing.md: no such file",
        "other.md#nowhere: no heading #nowhere in other.md",
        "#nowhere: no heading #nowhere in page.md",
        "other.md#twice-2: no heading #twice-2 in other.md",
    ]
