"""CHANGELOG.md keeps the Keep a Changelog 1.1.0 format (https://keepachangelog.com/en/1.1.0/).

What the format asks, as checked here: the title "Changelog" and a short introduction before any
entry; `## [Unreleased]` first, then the earlier entries newest first, each named by an ISO 8601
date (`## 2026-11-30`, or `## [1.2.0] - 2026-12-07` once there are versions); inside an entry, the
changes grouped under the format's types of change. This project adds one subsection of its own,
`### Upgrade notes`: what `pulumi up` does to a deployed stack. No entry and no group is empty, and
every link reference the file uses (`[Unreleased]`, `[text][label]`) is defined in it.

Each check returns the problems it finds, so the tests at the end can show that it finds them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

CHANGELOG = Path(__file__).resolve().parent.parent / "CHANGELOG.md"

# Keep a Changelog's types of change, and the one subsection this project adds to them.
TYPES_OF_CHANGE = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")
SUBSECTIONS = (*TYPES_OF_CHANGE, "Upgrade notes")

ISO_DATE = r"\d{4}-\d{2}-\d{2}"
DATED = re.compile(rf"^(?P<date>{ISO_DATE})$")
VERSIONED = re.compile(rf"^\[(?P<version>[^\[\]]+)\] - (?P<date>{ISO_DATE})$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
DEFINITION = re.compile(r"^ {0,3}\[(?P<label>[^\[\]]+)\]:\s*\S")


@dataclass
class Section:
    level: int
    title: str
    line: int  # 1-based line of the heading
    body: list[str] = field(default_factory=list)  # lines up to the next heading


@dataclass
class Document:
    before_first_heading: list[str]
    sections: list[Section]
    lines: list[str]  # every line outside fenced code


def parse(text: str) -> Document:
    """Headings and the lines under each; fenced code is not read as Markdown."""
    before: list[str] = []
    sections: list[Section] = []
    lines: list[str] = []
    fence = None
    for number, line in enumerate(text.splitlines(), start=1):
        marker = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
        if fence is not None:
            if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
                fence = None
            continue
        if marker:
            fence = marker.group(1)
            continue
        lines.append(line)
        heading = HEADING.match(line)
        if heading:
            sections.append(Section(len(heading.group(1)), heading.group(2), number))
        elif sections:
            sections[-1].body.append(line)
        else:
            before.append(line)
    return Document(before, sections, lines)


def entries(doc: Document) -> list[tuple[Section, list[Section]]]:
    """Each `##` entry with the `###` groups under it."""
    found: list[tuple[Section, list[Section]]] = []
    for section in doc.sections:
        if section.level == 2:
            found.append((section, []))
        elif section.level == 3 and found:
            found[-1][1].append(section)
    return found


def entry_date(title: str) -> date | None:
    match = DATED.match(title) or VERSIONED.match(title)
    if not match:
        return None
    try:
        parsed = date.fromisoformat(match.group("date"))
    except ValueError:
        return None
    return parsed if parsed.isoformat() == match.group("date") else None


# --- the checks ----------------------------------------------------------------------------------


def title_problems(doc: Document) -> list[str]:
    problems = []
    if any(line.strip() for line in doc.before_first_heading):
        problems.append("text before the title")
    if not doc.sections or (doc.sections[0].level, doc.sections[0].title) != (1, "Changelog"):
        problems.append("the first heading is not '# Changelog'")
    extra = [s.line for s in doc.sections[1:] if s.level == 1]
    if extra:
        problems.append(f"more than one title (lines {extra})")
    return problems


def intro_problems(doc: Document) -> list[str]:
    if not doc.sections or doc.sections[0].level != 1:
        return ["no title to introduce"]
    if not any(line.strip() for line in doc.sections[0].body):
        return ["no introduction between the title and the first entry"]
    return []


def heading_level_problems(doc: Document) -> list[str]:
    # A title, entries and groups of changes: nothing deeper, and no group outside an entry.
    problems = [f"line {s.line}: heading level {s.level}" for s in doc.sections if s.level > 3]
    seen_entry = False
    for s in doc.sections:
        seen_entry = seen_entry or s.level == 2
        if s.level == 3 and not seen_entry:
            problems.append(f"line {s.line}: '### {s.title}' before any entry")
    return problems


def unreleased_problems(doc: Document) -> list[str]:
    titles = [s.title for s, _ in entries(doc)]
    if not titles:
        return ["no entries"]
    problems = []
    if titles[0] != "[Unreleased]":
        problems.append(f"the first entry is {titles[0]!r}, not '[Unreleased]'")
    count = sum(t.strip("[]").lower() == "unreleased" for t in titles)
    if count != 1:
        problems.append(f"{count} Unreleased entries")
    return problems


def date_problems(doc: Document) -> list[str]:
    problems = []
    for section, _ in entries(doc)[1:]:
        if entry_date(section.title) is None:
            problems.append(f"line {section.line}: {section.title!r} is not YYYY-MM-DD or '[version] - YYYY-MM-DD'"
                            " with a real date")
    return problems


def order_problems(doc: Document) -> list[str]:
    dated = [(s, entry_date(s.title)) for s, _ in entries(doc)[1:]]
    dated = [(s, d) for s, d in dated if d is not None]
    return [
        f"line {later.line}: {later.title!r} comes after {earlier.title!r}: newest first, one entry per date"
        for (earlier, a), (later, b) in zip(dated, dated[1:])
        if not b < a
    ]


def subsection_problems(doc: Document) -> list[str]:
    problems = []
    for entry, groups in entries(doc):
        names = [g.title for g in groups]
        for group in groups:
            if group.title not in SUBSECTIONS:
                problems.append(f"line {group.line}: '### {group.title}' is not one of {', '.join(SUBSECTIONS)}")
        for name in sorted(set(names)):
            if names.count(name) > 1:
                problems.append(f"{entry.title}: '### {name}' {names.count(name)} times")
    return problems


def empty_problems(doc: Document) -> list[str]:
    problems = []
    for entry, groups in entries(doc):
        if not groups:
            problems.append(f"line {entry.line}: {entry.title!r} has no changes")
        if any(line.strip() and not DEFINITION.match(line) for line in entry.body):
            problems.append(f"line {entry.line}: {entry.title!r} has text outside a group of changes")
        for group in groups:
            items = [line for line in group.body if re.match(r"^ {0,3}[-*+] \S", line)]
            if not items:
                problems.append(f"line {group.line}: '### {group.title}' under {entry.title!r} lists nothing")
    return problems


def _normal(label: str) -> str:
    return " ".join(label.split()).casefold()


def _without_code(line: str) -> str:
    """The line with inline code spans and escaped brackets blanked out."""
    line = re.sub(r"(`+)(?:(?!\1).)+?\1", " ", line)
    return re.sub(r"\\[\[\]]", " ", line)


def used_references(doc: Document) -> list[str]:
    """Labels of reference links: [text][label], [label][] and [label] not followed by ( or :."""
    used = []
    for raw in doc.lines:
        if DEFINITION.match(raw):
            continue
        line = _without_code(raw)
        for text, label in re.findall(r"\[([^\[\]]+)\]\[([^\[\]]*)\]", line):
            used.append(label or text)
        line = re.sub(r"\[([^\[\]]+)\]\[([^\[\]]*)\]", " ", line)
        line = re.sub(r"\[([^\[\]]*)\]\([^)]*\)", " ", line)  # inline links
        used += re.findall(r"\[([^\[\]]+)\](?![(:\[])", line)
    return used


def defined_references(doc: Document) -> set[str]:
    return {_normal(m.group("label")) for m in map(DEFINITION.match, doc.lines) if m}


def reference_problems(doc: Document) -> list[str]:
    defined = defined_references(doc)
    return sorted({f"[{label}] is used but not defined" for label in used_references(doc)
                   if _normal(label) not in defined})


CHECKS = {
    "title": title_problems,
    "intro": intro_problems,
    "heading levels": heading_level_problems,
    "unreleased first": unreleased_problems,
    "iso dates": date_problems,
    "newest first": order_problems,
    "subsections": subsection_problems,
    "no empty sections": empty_problems,
    "link references": reference_problems,
}


# --- the changelog itself ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def changelog() -> Document:
    return parse(CHANGELOG.read_text())


@pytest.mark.parametrize("check", CHECKS, ids=str)
def test_the_changelog_keeps_the_format(changelog: Document, check: str):
    assert CHECKS[check](changelog) == []


def test_the_changelog_has_dated_entries_after_unreleased(changelog: Document):
    # Beyond the format's minimum: this one holds history, so Unreleased is not all there is.
    assert len(entries(changelog)) >= 2


# --- each check finds what it is for -------------------------------------------------------------

GOOD = """# Changelog

All notable changes.

## [Unreleased]

### Added

- A thing.

## [1.0.0] - 2026-12-01

### Fixed

- A bug.

## 2026-11-29

### Upgrade notes

- Pods restart.

[Unreleased]: https://example.com/compare/v1.0.0...HEAD
[1.0.0]: https://example.com/releases/v1.0.0
"""


def test_a_well_formed_changelog_passes_every_check():
    doc = parse(GOOD)
    assert {name: check(doc) for name, check in CHECKS.items()} == {name: [] for name in CHECKS}


@pytest.mark.parametrize(
    "check, old, new",
    [
        ("title", "# Changelog", "# Change log"),
        ("title", "# Changelog\n", "Notes\n\n# Changelog\n"),
        ("intro", "All notable changes.\n", ""),
        ("heading levels", "### Added", "#### Added"),
        ("heading levels", "All notable changes.", "### Added\n\n- Early."),
        ("unreleased first", "## [Unreleased]\n\n### Added\n\n- A thing.\n\n", ""),
        ("unreleased first", "## 2026-11-29", "## [Unreleased]"),
        ("iso dates", "## 2026-11-29", "## 2026-11-31"),
        ("iso dates", "## 2026-11-29", "## 29/11/2026"),
        ("iso dates", "## [1.0.0] - 2026-12-01", "## [1.0.0] 2026-12-01"),
        ("newest first", "## 2026-11-29", "## 2026-12-02"),
        ("newest first", "## 2026-11-29", "## 2026-12-01"),
        ("subsections", "### Fixed", "### Bug fixes"),
        ("subsections", "### Upgrade notes\n\n- Pods restart.", "### Fixed\n\n- Pods restart.\n\n### Fixed\n\n- Again."),
        ("no empty sections", "### Fixed\n\n- A bug.\n\n", ""),
        ("no empty sections", "- Pods restart.", ""),
        ("no empty sections", "## 2026-11-29\n", "## 2026-11-29\n\nLoose text.\n"),
        ("link references", "[1.0.0]: https://example.com/releases/v1.0.0\n", ""),
        ("link references", "- A thing.", "- A thing, see [the docs][docs]."),
        ("link references", "- A bug.", "- A bug in [Grafana]."),
    ],
)
def test_each_check_finds_a_break_of_its_rule(check: str, old: str, new: str):
    assert old in GOOD
    broken = parse(GOOD.replace(old, new, 1))
    assert CHECKS[check](broken) != []


def test_code_and_inline_links_are_not_link_references():
    doc = parse(GOOD.replace("- A thing.", "- `[secret]`, [a page](docs/page.md), \\[x\\].\n\n```\n[y]\n```"))
    assert reference_problems(doc) == []
