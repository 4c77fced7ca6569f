"""The documentation holds together: every link and anchor in the repository's Markdown resolves,
every page of docs/ is reachable from its index, the README stays short, and the configuration
reference documents every key of the settings model and no key the model lacks."""

from __future__ import annotations

import re
import subprocess
import types
import typing
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest
from markdown_it import MarkdownIt
from pydantic import BaseModel

from components.settings import Resources, Settings
from conftest import ROOT

PARSER = MarkdownIt("commonmark").enable("table")
# Documented as one value with its own section ("Resources"), not key by key.
UNITS = (Resources,)


def markdown_files() -> list[Path]:
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "*.md"], capture_output=True, text=True, check=True)
    files = [ROOT / name for name in listed.stdout.split()]
    # Pages added in the working tree and not yet committed are checked too.
    files += [p for p in (ROOT / "docs").glob("*.md") if p not in files]
    return sorted(p for p in files if p.is_file())


def slug(text: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces made hyphens."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


@cache
def tokens(path: Path) -> list:
    return PARSER.parse(path.read_text())


def heading_texts(path: Path) -> list[str]:
    found, toks = [], tokens(path)
    for i, tok in enumerate(toks):
        if tok.type == "heading_open":
            found.append("".join(c.content for c in toks[i + 1].children if c.type in ("text", "code_inline")))
    return found


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    result = set()
    for text in heading_texts(path):
        base = slug(text)
        n = seen.get(base, 0)
        result.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return frozenset(result)


def links(path: Path) -> list[str]:
    found = []
    for tok in tokens(path):
        for child in tok.children or []:
            if child.type == "link_open":
                found.append(child.attrs["href"])
            elif child.type == "image":
                found.append(child.attrs["src"])
    return found


def broken_links(path: Path) -> list[str]:
    problems = []
    for href in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", href):  # http:, https:, mailto: are not followed offline
            continue
        target, _, anchor = href.partition("#")
        file = (path.parent / unquote(target)).resolve() if target else path
        if not file.exists():
            problems.append(f"{href}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            shown = file.relative_to(ROOT) if file.is_relative_to(ROOT) else file.name
            problems.append(f"{href}: no heading with that anchor in {shown}")
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_anchor_resolves(path: Path):
    assert broken_links(path) == []


def test_the_link_check_sees_a_broken_anchor_and_a_missing_file(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## How `pulumi up` reaches Grafana\n\n[a](#how-pulumi-up-reaches-grafana) "
                    "[b](#no-such-heading) [c](missing.md) [d](https://example.com/x#y) [e](page.md#title)\n")
    assert broken_links(page) == ["#no-such-heading: no heading with that anchor in page.md", "missing.md: no such file"]


def test_anchors_follow_githubs_rules_for_code_punctuation_and_repeats(tmp_path: Path):
    page = tmp_path / "anchors.md"
    page.write_text("# `observability:prometheus`\n\n## GPU & ML\n\n## Grafana's Ingress\n\n## Notes\n\n## Notes\n")
    assert anchors(page) == {"observabilityprometheus", "gpu--ml", "grafanas-ingress", "notes", "notes-1"}


def test_every_page_of_docs_is_linked_from_the_index_and_the_index_from_the_readme():
    index = ROOT / "docs" / "README.md"
    linked = {(index.parent / h.partition("#")[0]).resolve() for h in links(index) if not h.startswith("http")}
    pages = {p.resolve() for p in (ROOT / "docs").glob("*.md") if p.name != "README.md"}
    assert pages - linked == set(), "pages the index does not list"
    assert "docs/README.md" in links(ROOT / "README.md")


def test_the_readme_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    first_screen = "\n".join(text.splitlines()[:60])
    assert "pulumi up --yes" in first_screen, "the command that deploys dev"
    assert "bash .ci/test" in first_screen, "the command that runs the tests"


# --- the configuration reference against the settings model -------------------------------------


def _model_of(annotation) -> tuple[str, type[BaseModel]] | None:
    """('', Model), ('[]', Model) or ('.<name>', Model) when the annotation holds a model."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _model_of(args[0])
    if origin in (typing.Union, types.UnionType):
        models = [m for m in (_model_of(a) for a in args if a is not type(None)) if m]
        return models[0] if models else None
    if origin in (list, tuple) and args:
        inner = _model_of(args[0])
        return ("[]" + inner[0], inner[1]) if inner else None
    if origin is dict and len(args) == 2:
        inner = _model_of(args[1])
        return (".<name>" + inner[0], inner[1]) if inner else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and not issubclass(annotation, UNITS):
        return "", annotation
    return None


def model_keys(model: type[BaseModel], prefix: str = "") -> tuple[set[str], set[str]]:
    """(leaves, sections): every key path a stack file can set, as the reference writes it."""
    leaves, sections = set(), set()
    for name, field in model.model_fields.items():
        path = prefix + (field.alias or name)
        nested = _model_of(field.annotation)
        if nested is None:
            leaves.add(path)
            continue
        sections.add(path)
        more_leaves, more_sections = model_keys(nested[1], path + nested[0] + ".")
        leaves |= more_leaves
        sections |= more_sections
    return leaves, sections


def documented_keys() -> set[str]:
    """The first column of every `| key | ...` table of the configuration reference."""
    keys, in_table = set(), False
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        if line.startswith("| key |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table:
            match = re.match(r"^\| `([^`]+)` \|", line)
            if match:
                keys.add(match.group(1))
    return keys


def test_every_key_of_the_settings_model_is_in_the_configuration_reference():
    leaves, _ = model_keys(Settings)
    assert sorted(leaves - documented_keys()) == []


def test_the_configuration_reference_documents_no_key_the_model_lacks():
    leaves, sections = model_keys(Settings)
    assert sorted(documented_keys() - leaves - sections) == []


def test_the_model_walk_finds_nested_lists_and_maps_of_settings():
    leaves, sections = model_keys(Settings)
    assert {"prometheus.scrape_targets[].job", "alerts.overrides.<name>.for", "loki.storage.bucket",
            "prometheus.resources", "secrets.watchdog_url"} <= leaves
    assert {"prometheus.scrape_targets", "alerts.overrides", "exporters.gpu"} <= sections


# --- the stack files' headers --------------------------------------------------------------------

SET_SECRET = re.compile(r"^#\s+pulumi config set --stack (\S+) --secret --path secrets\.(\w+)\b", re.M)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_stack_files_header_lists_exactly_the_secrets_it_requires_with_its_stack(stack: str):
    from components.settings import SecretsSettings, required_secrets
    from components.tools.render import stack_config

    text = (ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text()
    header = text[: text.index("\nconfig:")]
    commands = SET_SECRET.findall(header)
    assert {name for _, name in commands} == required_secrets(stack, stack_config(stack))
    assert len(commands) == len({name for _, name in commands}), "a secret listed twice"
    assert {named for named, _ in commands} <= {stack}, "every command names this stack"
    # What the header calls optional is a secret the model has, and not one the stack requires.
    optional = set(re.findall(r"secrets\.(\w+)", header)) - {name for _, name in commands}
    assert optional <= set(SecretsSettings.model_fields)
    assert not optional & required_secrets(stack, stack_config(stack))
