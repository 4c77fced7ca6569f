#!/usr/bin/env python3
"""Take the Loki, Promtail and Alloy contract out of their upstream git mirrors and write it as JSON.

A developer runs this after bumping an image (CI never does: it has no mirrors). It reads the bare
mirrors with `git cat-file` only and writes tests/upstream/{loki,promtail,alloy}.json, which
tests/test_upstream_logs_grafana.py checks the rendered configs against. grafana.json is not
written here: Grafana is not mirrored, so that file is assembled from read copies (see README.md).

    python3 tests/upstream/extract_logs_grafana.py [--mirrors /work/.mirror] [--date YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent

LOKI_TAG = "v3.7.6"
PROMTAIL_TAG = "v3.6.15"  # Promtail's last build; its code left the Loki repository in 3.7
ALLOY_TAG = "v1.18.1"

# Alloy has about 180 components; arguments are written out for these only (the ones a log shipper
# can use), so the file stays small. The test fails naming any rendered component missing here.
ALLOY_DETAILED_PREFIXES = ("loki.",)
ALLOY_DETAILED = ("discovery.docker", "discovery.kubernetes", "discovery.relabel", "local.file_match")


# --- reading a bare mirror --------------------------------------------------------------------------


class Mirror:
    """One bare repository at one tag, read through a long-lived `git cat-file --batch`."""

    def __init__(self, git_dir: Path, tag: str) -> None:
        self.git_dir, self.tag = git_dir, tag
        self.commit = self._git("rev-parse", f"{tag}^{{commit}}").strip()
        self._batch = subprocess.Popen(
            ["git", f"--git-dir={git_dir}", "cat-file", "--batch"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        self._cache: dict[str, Optional[str]] = {}
        self.read_paths: set[str] = set()

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *args], check=True,
                              capture_output=True, text=True).stdout

    def show(self, path: str) -> Optional[str]:
        """The file's text at the tag, or None when it is not there."""
        if path not in self._cache:
            assert self._batch.stdin and self._batch.stdout
            self._batch.stdin.write(f"{self.commit}:{path}\n".encode())
            self._batch.stdin.flush()
            header = self._batch.stdout.readline().decode().split()
            if len(header) == 3 and header[1] == "blob":
                data = self._batch.stdout.read(int(header[2]) + 1)[:-1]
                self._cache[path] = data.decode("utf-8", "replace")
            else:
                self._cache[path] = None
        return self._cache[path]

    def ls(self, directory: str) -> list[str]:
        out = self._git("ls-tree", "--name-only", f"{self.commit}:{directory}") if self.show_dir(directory) else ""
        return [f"{directory}/{name}" for name in out.split()]

    def show_dir(self, directory: str) -> bool:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", "cat-file", "-e", f"{self.commit}:{directory}"],
                              capture_output=True).returncode == 0

    def grep_files(self, pattern: str, under: str) -> list[str]:
        out = subprocess.run(["git", f"--git-dir={self.git_dir}", "grep", "-l", "-F", pattern, self.commit, "--", under],
                             capture_output=True, text=True).stdout
        return sorted(line.split(":", 1)[1] for line in out.splitlines())

    def read(self, path: str) -> str:
        text = self.show(path)
        assert text is not None, f"{path} is not in {self.git_dir} at {self.tag}"
        self.read_paths.add(path)
        return text

    def source(self, repository: str, paths: list[str], date: str) -> dict:
        return {"repository": repository, "tag": self.tag, "commit": self.commit, "paths": paths, "date": date}


# --- a small reader of Go struct declarations ---------------------------------------------------------


@dataclass
class GoField:
    name: str            # Go field name ("" when embedded)
    type: str            # type expression as written
    tag: str             # raw struct tag, without backticks
    inline_body: Optional[list["GoField"]] = None   # fields of an anonymous struct type


@dataclass
class GoType:
    package_dir: str
    name: str
    fields: Optional[list[GoField]] = None   # None: not a struct
    underlying: str = ""                       # for non-struct types: what it is defined as


@dataclass
class GoPackage:
    directory: str
    name: str = ""
    imports: dict[str, str] = field(default_factory=dict)   # qualifier -> import path, merged over files
    types: dict[str, GoType] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    opaque: set[str] = field(default_factory=set)   # types that decode YAML their own way


# Strings come first so that "//" or "/*" inside a literal is not taken for a comment.
LITERAL_OR_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|\'(?:[^\'\\\n]|\\.)*\'|//[^\n]*|/\*.*?\*/', re.S)


def strip_comments(text: str) -> str:
    return LITERAL_OR_COMMENT.sub(lambda m: "" if m.group().startswith("/") else m.group(), text)


def struct_fields(body: str) -> list[GoField]:
    """Fields of a struct body (the text between its braces); anonymous struct fields recurse."""
    fields: list[GoField] = []
    lines = body.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        opening = re.match(r"^(\w+)\s+(?:\[\])?\*?struct\s*\{$", line)
        if opening:   # an anonymous struct: collect to its closing brace, which carries the tag
            depth, inner = 1, []
            while i < len(lines) and depth:
                text = lines[i]
                depth += text.count("{") - text.count("}")
                if depth:
                    inner.append(text)
                i += 1
            closing = re.search(r"`([^`]*)`", text)
            fields.append(GoField(opening.group(1), "struct", closing.group(1) if closing else "", struct_fields("\n".join(inner))))
            continue
        tag_match = re.search(r"`([^`]*)`\s*$", line)
        tag = tag_match.group(1) if tag_match else ""
        decl = line[: tag_match.start()].strip() if tag_match else line
        named = re.match(r"^([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s+(\S.*)$", decl)
        if named:
            for name in re.split(r"\s*,\s*", named.group(1)):
                fields.append(GoField(name, named.group(2).strip(), tag))
        elif re.match(r"^\*?[\w.]+$", decl):
            fields.append(GoField("", decl.lstrip("*"), tag))
    return fields


def parse_types(text: str) -> dict[str, GoType]:
    """Top-level type declarations of one Go file (single and grouped `type (...)` forms)."""
    text = strip_comments(text)
    found: dict[str, GoType] = {}
    lines = text.split("\n")
    i, in_group = 0, False
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("type ("):
            in_group = True
            continue
        if in_group and line.startswith(")"):
            in_group = False
            continue
        m = re.match(r"^type\s+(\w+)(?:\[[^\]]*\])?\s+(=\s*)?(.*)$", line) if not in_group else \
            re.match(r"^\s+(\w+)(?:\[[^\]]*\])?\s+(=\s*)?(.*)$", line)
        if not m:
            continue
        name, rest = m.group(1), m.group(3).strip()
        if re.match(r"^struct\s*\{", rest):
            if rest.rstrip().endswith("}"):   # struct{} on one line
                found[name] = GoType("", name, struct_fields(rest[rest.index("{") + 1: rest.rindex("}")]))
                continue
            depth, body = 1, []
            while i < len(lines) and depth:
                depth += lines[i].count("{") - lines[i].count("}")
                if depth:
                    body.append(lines[i])
                i += 1
            found[name] = GoType("", name, struct_fields("\n".join(body)))
        else:
            found[name] = GoType("", name, None, rest)
    return found


def parse_imports(text: str) -> dict[str, str]:
    """{qualifier or "": import path}; an unaliased import is keyed by its last path element."""
    imports: dict[str, str] = {}
    block = re.search(r"^import\s*\((.*?)^\)", text, re.S | re.M)
    specs = block.group(1).split("\n") if block else []
    specs += [m.group(1) for m in re.finditer(r'^import\s+(\w+\s+"[^"]+"|"[^"]+")', text, re.M)]
    for spec in specs:
        m = re.match(r'^\s*(?:(\w+|\.|_)\s+)?"([^"]+)"', spec)
        if m:
            path = m.group(2)
            elements = [e for e in path.split("/") if not re.match(r"^v\d+$", e)]   # .../y/v2 is package y
            imports[m.group(1) or elements[-1].split(".")[0]] = path               # gopkg.in/yaml.v2 is yaml
    return imports


class GoTree:
    """Resolves Go types across packages of one mirror (its own module and vendor/)."""

    def __init__(self, mirror: Mirror, module: str) -> None:
        self.mirror, self.module = mirror, module
        self.packages: dict[str, Optional[GoPackage]] = {}

    def directory(self, import_path: str) -> Optional[str]:
        if import_path == self.module:
            return ""
        if import_path.startswith(self.module + "/"):
            return import_path[len(self.module) + 1:]
        vendored = f"vendor/{import_path}"
        return vendored if self.mirror.show_dir(vendored) else None

    def package(self, directory: str) -> Optional[GoPackage]:
        if directory not in self.packages:
            names = [p for p in self.mirror.ls(directory) if p.endswith(".go") and not p.endswith("_test.go")]
            if not names:
                self.packages[directory] = None
                return None
            pkg = GoPackage(directory)
            for path in names:
                text = self.mirror.read(path)
                pkg.files[path] = text
                clause = re.search(r"^package\s+(\w+)", text, re.M)
                pkg.name = pkg.name or (clause.group(1) if clause else "")
                pkg.imports.update(parse_imports(text))
                # A type with its own UnmarshalYAML that does not decode into a local copy of
                # itself (`type plain T`, the usual trick) reads a scalar or a free form: its
                # fields are not keys.
                for m in re.finditer(r"^func \(\w+ \*?(\w+)\) UnmarshalYAML\(.*?^\}", text, re.S | re.M):
                    if not re.search(rf"\btype \w+ {m.group(1)}\b", m.group(0)):
                        pkg.opaque.add(m.group(1))
                for name, typ in parse_types(text).items():
                    typ.package_dir = directory
                    pkg.types.setdefault(name, typ)
            self.packages[directory] = pkg
        return self.packages[directory]

    def resolve(self, type_expr: str, where: GoPackage) -> tuple[str, Optional[GoType]]:
        """("struct", type) | ("map"|"list-of", ...) | ("leaf", None) for a type expression."""
        expr = type_expr.strip()
        while True:
            stripped = re.sub(r"^(\*|\[\d*\])", "", expr)
            if stripped == expr:
                break
            expr = stripped
        if expr.startswith(("map[", "func", "chan", "interface", "struct")):
            return "leaf", None
        if "." in expr:
            qualifier, name = expr.split(".", 1)
            import_path = where.imports.get(qualifier)
            directory = self.directory(import_path) if import_path else None
            pkg = self.package(directory) if directory is not None else None
        else:
            name, pkg = expr, where
        name = re.sub(r"\[.*\]$", "", name)
        typ = pkg.types.get(name) if pkg else None
        if typ is None:
            return "leaf", None
        if typ.name in pkg.opaque:
            return "leaf", None
        if typ.fields is None:
            underlying = typ.underlying
            if re.match(r"^(\*|\[\d*\])*[\w.]+$", underlying) and underlying not in ("string", "int", "bool"):
                return self.resolve(underlying, pkg)   # a defined type over another named type
            return "leaf", None
        return "struct", typ


def tag_value(tag: str, key: str) -> Optional[str]:
    m = re.search(rf'(?:^|\s){key}:"([^"]*)"', tag)
    return m.group(1) if m else None


def yaml_keys(tree: GoTree, typ: GoType, prefix: str, out: set[str], tag_key: str = "yaml", depth: int = 0) -> None:
    """Every YAML key path a struct accepts, as yaml.v2 would decode it (lists are transparent)."""
    if depth > 12:
        return
    pkg = tree.package(typ.package_dir)
    assert pkg is not None
    for f in typ.fields or []:
        tag = tag_value(f.tag, tag_key)
        name = tag.split(",")[0] if tag is not None else None
        options = tag.split(",")[1:] if tag is not None else []
        if name == "-":
            continue
        if not f.name:   # embedded: only an `,inline` one contributes keys
            if "inline" in options or "squash" in options:
                kind, inner = tree.resolve(f.type, pkg)
                if kind == "struct" and inner:
                    yaml_keys(tree, inner, prefix, out, tag_key, depth + 1)
            continue
        if not f.name[0].isupper():
            continue
        if "inline" in options or "squash" in options:
            kind, inner = tree.resolve(f.type, pkg)
            if kind == "struct" and inner:
                yaml_keys(tree, inner, prefix, out, tag_key, depth + 1)
            continue
        key = name or f.name.lower()   # yaml.v2: an untagged field is its name in lower case
        path = f"{prefix}{key}"
        out.add(path)
        if f.inline_body is not None:
            yaml_keys(tree, GoType(typ.package_dir, "", f.inline_body), path + ".", out, tag_key, depth + 1)
            continue
        kind, inner = tree.resolve(f.type, pkg)
        if kind == "struct" and inner:
            yaml_keys(tree, inner, path + ".", out, tag_key, depth + 1)


# --- Loki: the generated configuration reference ------------------------------------------------------


LOKI_DOC = "docs/sources/shared/configuration.md"


def loki_doc_blocks(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """(root block lines, {block name: lines}) from the reference's ```yaml fences.

    A section's schema is its last fence (named_stores_config shows an example first); a fence
    ends at a line that is only ``` (a comment inside one may quote a fence).
    """
    sections: dict[str, list[str]] = {}
    heading, inside, current = "", False, []
    for line in text.split("\n"):
        if inside:
            if line.strip() == "```":
                inside = False
                sections[heading] = current   # a later fence in the section replaces it
            else:
                current.append(line)
        elif line.strip() == "```yaml":
            inside, current = True, []
        elif re.match(r"^#{1,3} ", line):
            heading = line.lstrip("#").strip()
    root = sections.pop("Supported contents and default values of `loki.yaml`")
    return root, {name: body for name, body in sections.items() if re.match(r"^\w+$", name)}


def loki_keys(lines: list[str], blocks: dict[str, list[str]], prefix: str, out: set[str], depth: int = 0) -> None:
    assert depth < 10, f"block references nest too deep at {prefix}"
    stack: list[tuple[int, str]] = [(-1, prefix)]
    for raw in lines:
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        option = re.match(r"^\[(\w+):\s*(.*)\]$", stripped)
        nested = re.match(r"^(\w+):\s*$", stripped)
        inlined = re.match(r"^\[<(\w+)>\]$", stripped)   # a block whose keys sit at this level
        if stripped.startswith("[:"):   # free keys: the parent is a map
            continue
        if inlined:
            assert inlined.group(1) in blocks, f"unknown block {inlined.group(1)}"
            loki_keys(blocks[inlined.group(1)], blocks, parent, out, depth + 1)
        elif option:
            path = parent + option.group(1)
            out.add(path)
            kind = option.group(2).split("|")[0].strip()
            ref = re.match(r"^<(?:list of )?(\w+)>$", kind)
            if ref:
                for candidate in (ref.group(1), ref.group(1).removesuffix("s")):
                    if candidate in blocks:
                        loki_keys(blocks[candidate], blocks, path + ".", out, depth + 1)
                        break
        elif nested:
            path = parent + nested.group(1)
            out.add(path)
            stack.append((indent, path + "."))
        else:
            raise ValueError(f"unexpected line in {LOKI_DOC}: {raw!r}")


def go_string_list(text: str, var: str, constants: dict[str, str]) -> list[str]:
    body = re.search(rf"var {var} = \[\]string\{{(.*?)\}}", text, re.S)
    assert body, f"{var} not found"
    names = re.findall(r"\b(\w+)\s*,", strip_comments(body.group(1)))
    return sorted(constants[n] for n in names)


# A metric declared with Loki's namespace: New<Kind>[Vec|Func]([prometheus.]<Kind>Opts{ ... }).
METRIC_DECLARATION = re.compile(r"New(Counter|Gauge|Histogram|Summary)(?:Vec|Func)?\(\s*(?:prometheus\.)?\w*Opts\{(.*?)\}", re.S)
# constants.Loki in Loki's own packages; the server's metrics take cfg.MetricsNamespace, which
# Loki sets to "loki".
LOKI_NAMESPACE = re.compile(r'Namespace:\s*(constants\.Loki|"loki"|cfg\.MetricsNamespace)')


def loki_metrics(mirror: Mirror) -> dict[str, str]:
    """The metrics Loki registers under its namespace, by full name, with their kind."""
    found: dict[str, str] = {}
    for under in ("pkg", "vendor/github.com/grafana/dskit/server"):
        for path in mirror.grep_files("Namespace:", under):
            if path.endswith("_test.go"):
                continue
            for kind, body in METRIC_DECLARATION.findall(mirror.read(path)):
                name = re.search(r'Name:\s*"(\w+)"', body)
                if not (LOKI_NAMESPACE.search(body) and name):
                    continue
                subsystem = re.search(r'Subsystem:\s*"(\w+)"', body)
                full = "_".join(["loki", *([subsystem.group(1)] if subsystem else []), name.group(1)])
                found[full] = kind.lower()
    return dict(sorted(found.items()))


def extract_loki(mirror: Mirror, date: str) -> dict:
    text = mirror.read(LOKI_DOC)
    root, blocks = loki_doc_blocks(text)
    keys: set[str] = set()
    loki_keys(root, blocks, "", keys)

    # Valid values of schema_config.configs[*].{store,object_store,schema}: the lists the code checks.
    types_go = mirror.read("pkg/storage/types/types.go")
    constants = dict(re.findall(r'^\s*(\w+)\s*=\s*"([^"]*)"', types_go, re.M))
    schema_go = strip_comments(mirror.read("pkg/storage/config/schema_config.go"))
    validate = re.search(r"func \(cfg PeriodConfig\) validate\(\) error \{(.*?)\n\}", schema_go, re.S)
    assert validate, "PeriodConfig.validate not found"
    versions = sorted({int(n) for case in re.findall(r"case ([\d, ]+):", validate.group(1)) for n in re.findall(r"\d+", case)})

    # Command-line flags of the binary itself (the config's flags are in the reference too).
    flags = set(re.findall(r"CLI flag: -([\w.\-]+)", text))
    wrapper = mirror.read("pkg/loki/config_wrapper.go")
    flags |= set(re.findall(r'\w+Var\(&[\w.]+,\s*"([\w.\-]+)"', wrapper))
    flags |= {constants_value for constants_value in re.findall(r'versionFlag\s*=\s*"([\w.\-]+)"', wrapper)}
    health = mirror.read("cmd/loki/health.go")
    health_flag = re.search(r'healthFlag\s*=\s*"([\w.\-]+)"', health)
    assert health_flag and re.search(r"health\\?\.url", health), "the -health flags moved"
    flags |= {health_flag.group(1), f"{health_flag.group(1)}.url"}

    metrics = loki_metrics(mirror)

    return {
        "source": mirror.source("grafana/loki", sorted(mirror.read_paths), date),
        "keys": sorted(keys),
        # Metric name -> kind (a histogram is exposed as <name>_bucket, _count and _sum).
        "metrics": metrics,
        "schema_config": {
            "store": go_string_list(types_go, "SupportedIndexTypes", constants),
            "store_deprecated": go_string_list(types_go, "DeprecatedIndexTypes", constants),
            "object_store": go_string_list(types_go, "SupportedStorageTypes", constants),
            "object_store_deprecated": go_string_list(types_go, "DeprecatedStorageTypes", constants),
            "schema": [f"v{n}" for n in versions],
        },
        "flags": sorted(flags),
    }


# --- Promtail: the config structs ---------------------------------------------------------------------


def decoded_type(source: str, func: str, depth: int = 0) -> Optional[str]:
    """The type a stage constructor hands to mapstructure.Decode (following the helpers it calls)."""
    body = re.search(rf"^func {func}\(.*?^\}}", source, re.S | re.M)
    if body is None or depth > 2:
        return None
    for var, typ in re.findall(r"(\w+)\s*:?=\s*&(\w+)\{\}", body.group(0)):
        if re.search(rf"mapstructure\.\w*Decode\([^()]*,\s*{var}\)", body.group(0)):
            return typ
    for called in re.findall(r"\b([a-zA-Z]\w*)\(", body.group(0)[len(func) + 6:]):
        if called != func and re.search(rf"^func {called}\(", source, re.M):
            found = decoded_type(source, called, depth + 1)
            if found:
                return found
    return None


def extract_promtail(mirror: Mirror, date: str) -> dict:
    tree = GoTree(mirror, "github.com/grafana/loki/v3")
    config_pkg = tree.package("clients/pkg/promtail/config")
    assert config_pkg is not None
    keys: set[str] = set()
    yaml_keys(tree, config_pkg.types["Config"], "", keys)

    # Stages are decoded with mapstructure from a list of one-key maps {stage name: config}. Each
    # stage's constructor names the config type it decodes into.
    stages_pkg = tree.package("clients/pkg/logentry/stages")
    assert stages_pkg is not None
    stage_go = stages_pkg.files["clients/pkg/logentry/stages/stage.go"]
    names = dict(re.findall(r'^\s*(StageType\w+)\s*=\s*"([\w_]+)"', stage_go, re.M))
    creators = re.search(r"stageCreators = map\[string\]stageCreator\{(.*?)\n\t\}", stage_go, re.S)
    assert creators, "stageCreators not found"
    stage_base = "scrape_configs.pipeline_stages"
    assert stage_base in keys
    stage_names = []
    all_source = "\n".join(stages_pkg.files.values())
    for const, body in re.findall(r"(StageType\w+):\s*(.*?)(?=\n\t\tStageType|\Z)", creators.group(1), re.S):
        stage = names[const]
        stage_names.append(stage)
        keys.add(f"{stage_base}.{stage}")
        constructor = re.search(r"\b(new\w+|New\w+)\b", body)
        assert constructor, f"no constructor for stage {stage}"
        config_type = decoded_type(all_source, constructor.group(1))
        typ = stages_pkg.types.get(config_type) if config_type else None
        if typ is not None and typ.fields is not None:
            yaml_keys(tree, typ, f"{stage_base}.{stage}.", keys, tag_key="mapstructure")

    main = mirror.read("clients/cmd/promtail/main.go")
    flags = set(re.findall(r'\w+Var\(&[\w.]+,\s*"([\w.\-]+)"', main))
    paths = sorted({p.rsplit("/", 1)[0] + "/" for p in mirror.read_paths if not p.startswith("vendor/")})
    paths.append("vendor/ (the types the structs embed)")
    return {
        "source": mirror.source("grafana/loki", paths, date),
        "keys": sorted(keys),
        "stages": sorted(stage_names),
        "flags": sorted(flags),
    }


# --- Alloy: components, their arguments and blocks ------------------------------------------------------


def alloy_schema(tree: GoTree, typ: GoType, depth: int = 0) -> dict:
    """{"arguments": [...], "blocks": {name: schema}} of a struct by its `alloy:` tags."""
    schema: dict = {"arguments": set(), "blocks": {}}
    if depth > 10:
        return schema
    pkg = tree.package(typ.package_dir)
    assert pkg is not None
    for f in typ.fields or []:
        tag = tag_value(f.tag, "alloy")
        if tag is None:
            continue
        name, *options = tag.split(",")
        if "squash" in options:
            kind, inner = tree.resolve(f.type, pkg)
            if kind == "struct" and inner:
                sub = alloy_schema(tree, inner, depth + 1)
                schema["arguments"] |= sub["arguments"]
                schema["blocks"].update(sub["blocks"])
            continue
        if "label" in options:
            continue
        if "attr" in options:
            schema["arguments"].add(name)
            continue
        kind, inner = tree.resolve(f.type, pkg) if f.inline_body is None else ("struct", GoType(typ.package_dir, "", f.inline_body))
        sub = alloy_schema(tree, inner, depth + 1) if kind == "struct" and inner else None
        if "enum" in options:   # each block field of the element type is a block named "<name>.<field>"
            for block, block_schema in (sub or {"blocks": {}})["blocks"].items():
                schema["blocks"][f"{name}.{block}"] = block_schema
        elif "block" in options:
            schema["blocks"][name] = sub
    return schema


def plain(schema: Optional[dict]) -> Optional[dict]:
    if schema is None:
        return None
    return {"arguments": sorted(schema["arguments"]),
            "blocks": {k: plain(v) for k, v in sorted(schema["blocks"].items())}}


def extract_alloy(mirror: Mirror, date: str) -> dict:
    tree = GoTree(mirror, "github.com/grafana/alloy")
    components: dict[str, Optional[dict]] = {}
    for path in mirror.grep_files("component.Register(", "internal/component"):
        if path.endswith("_test.go"):
            continue
        text = strip_comments(mirror.read(path))
        for reg in re.finditer(r"component\.Register\(component\.Registration\{(.*?)\n\t\}\)", text, re.S):
            name = re.search(r'\bName:\s*"([\w.]+)"', reg.group(1))
            if not name:   # Name: <a constant of the package>
                const = re.search(r"\bName:\s*(\w+),", reg.group(1))
                pkg_files = "\n".join(mirror.read(p) for p in mirror.ls(path.rsplit("/", 1)[0]) if p.endswith(".go"))
                name = re.search(rf'\b{const.group(1)}\s*=\s*"([\w.]+)"', pkg_files) if const else None
            assert name, f"{path}: a component whose name is not found"
            args = re.search(r"\bArgs:\s*([\w.]+)\{\}", reg.group(1))
            detailed = name.group(1).startswith(ALLOY_DETAILED_PREFIXES) or name.group(1) in ALLOY_DETAILED
            if not detailed:
                components[name.group(1)] = None
                continue
            assert args, f"{name.group(1)}: no Args type"
            pkg = tree.package(path.rsplit("/", 1)[0])
            assert pkg is not None
            kind, typ = tree.resolve(args.group(1), pkg)
            assert kind == "struct" and typ, f"{name.group(1)}: Args {args.group(1)} not resolved"
            schema = plain(alloy_schema(tree, typ))
            exports = re.search(r"\bExports:\s*([\w.]+)\{\}", reg.group(1))
            export_kind, export_type = tree.resolve(exports.group(1), pkg) if exports else ("leaf", None)
            schema["exports"] = plain(alloy_schema(tree, export_type))["arguments"] if export_type else []
            components[name.group(1)] = schema

    run = mirror.read("internal/alloycli/cmd_run.go")
    flags = set(re.findall(r'\w*Var\w*\(&[\w.]+,\s*"([\w.\-]+)"', run)) | set(re.findall(r'fset\.Var\(&[\w.]+,\s*"([\w.\-]+)"', run))
    commands = sorted(set(re.findall(r'Use:\s*"(\w+)', "\n".join(mirror.read(p) for p in mirror.ls("internal/alloycli")
                                                                      if p.endswith(".go") and not p.endswith("_test.go")))))
    walked = sorted(f"{d}/" for d, pkg in tree.packages.items() if pkg is not None)
    paths = ["internal/component/ (every component.Register call)", "internal/alloycli/", *walked]
    return {
        "source": mirror.source("grafana/alloy", paths, date),
        "components": sorted(components),
        "arguments": {name: schema for name, schema in sorted(components.items()) if schema is not None},
        "commands": commands,
        "run_flags": sorted(flags),
    }


def write(name: str, data: dict) -> None:
    target = HERE / f"{name}.json"
    target.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"wrote {target} ({target.stat().st_size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--date", default=datetime.date.today().isoformat(), help="date recorded as taken")
    args = parser.parse_args()
    loki_git = args.mirrors / "grafana+loki" / "repo"
    write("loki", extract_loki(Mirror(loki_git, LOKI_TAG), args.date))
    write("promtail", extract_promtail(Mirror(loki_git, PROMTAIL_TAG), args.date))
    write("alloy", extract_alloy(Mirror(args.mirrors / "grafana+alloy" / "repo", ALLOY_TAG), args.date))


if __name__ == "__main__":
    main()
