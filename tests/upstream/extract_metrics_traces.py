#!/usr/bin/env python3
"""Take the upstream contract for the metrics and traces services from their source.

Reads bare git mirrors (git show / ls-tree at the pinned tags) and writes, next to this file:
prometheus.json, alertmanager.json, node_exporter.json, cadvisor.json, postgres_exporter.json,
redis_exporter.json, dcgm_exporter.json, nvidia_gpu_exporter.json, collector.json, jaeger.json.

Rerun it after an image bump (components/images.py), with the new tags below, then run the tests:

    python3 tests/upstream/extract_metrics_traces.py --mirrors /work/.mirror --date YYYY-MM-DD

The contrib collector repository is too large to mirror whole. Pass --contrib with the git dir of
any clone of it that can show the files at --contrib-ref (a blobless clone is enough:
`git clone --bare --filter=blob:none <url>`); without it, the contrib part of collector.json and
jaeger.json is kept as it is committed, provenance included.

The Go source is read with regular expressions, not a Go parser: enough for struct definitions,
string constants, flag definitions and metric descriptors, which is all this needs. Not run by CI.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

HERE = Path(__file__).resolve().parent

# Pinned releases: keep in step with components/images.py.
PROMETHEUS_TAG = "v3.14.0"
ALERTMANAGER_TAG = "v0.34.0"
NODE_EXPORTER_TAG = "v1.12.1"
CADVISOR_TAG = "v0.60.5"
POSTGRES_EXPORTER_TAG = "v0.20.1"
REDIS_EXPORTER_TAG = "v1.88.0"
DCGM_EXPORTER_TAG = "4.5.3-4.8.2"
NVIDIA_GPU_EXPORTER_TAG = "v1.14.0"
COLLECTOR_TAG = "v0.159.0"
JAEGER_TAG = "v2.20.0"


# --- git ----------------------------------------------------------------------------------------


class Repo:
    """One repository at one ref, read through git; remembers every path it was asked for."""

    def __init__(self, repository: str, git_dir: Path, ref: str) -> None:
        self.repository = repository
        self.git_dir = git_dir
        self.ref = ref
        self.read: set[str] = set()
        self._tree: Optional[list[str]] = None

    def _git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", f"--git-dir={self.git_dir}", *args], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise FileNotFoundError(f"{self.repository}@{self.ref}: git {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def commit(self) -> str:
        return self._git("rev-parse", f"{self.ref}^{{commit}}").strip()

    def show(self, path: str) -> str:
        self.read.add(path)
        return self._git("show", f"{self.ref}:{path}")

    def exists(self, path: str) -> bool:
        return path in self.files() or any(p.startswith(path.rstrip("/") + "/") for p in self.files())

    def files(self, under: str = "") -> list[str]:
        if self._tree is None:
            self._tree = self._git("ls-tree", "-r", "--name-only", self.ref).splitlines()
        prefix = under.rstrip("/") + "/" if under else ""
        return [p for p in self._tree if p.startswith(prefix)]

    def go_files(self, directory: str) -> list[str]:
        """The package's own .go files (no tests, no subpackages)."""
        prefix = directory.rstrip("/") + "/" if directory else ""
        return [
            p for p in self.files(directory)
            if p.endswith(".go") and not p.endswith("_test.go") and "/" not in p[len(prefix):]
        ]

    def source(self, date: str, paths: Optional[Iterable[str]] = None) -> dict:
        return {
            "repository": self.repository,
            "tag": self.ref,
            "commit": self.commit(),
            "paths": sorted(set(paths) if paths is not None else self.read),
            "date": date,
        }


# --- reading Go ---------------------------------------------------------------------------------


def strip_comments(text: str) -> str:
    """Go source without comments; string and rune literals are kept as they are."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and i + 1 < n and text[i + 1] == "/":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c == "/" and i + 1 < n and text[i + 1] == "*":
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c in "\"'`":
            j = i + 1
            while j < n and text[j] != c:
                if c != "`" and text[j] == "\\":
                    j += 1
                j += 1
            out.append(text[i : j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def past_literal(text: str, start: int, end: int) -> int:
    """Index just past the Go string or rune literal that opens at start (raw strings: no escapes)."""
    quote, j = text[start], start + 1
    while j < end and text[j] != quote:
        if quote != "`" and text[j] == "\\":
            j += 1
        j += 1
    return j + 1


def matching_brace(text: str, open_at: int) -> int:
    """Index of the brace closing the one at open_at (braces inside literals are skipped)."""
    depth, i, n = 0, open_at, len(text)
    while i < n:
        c = text[i]
        if c in "\"'`":
            i = past_literal(text, i, n)
            continue
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError("unbalanced braces")


GO_STRING = r'"(?:[^"\\]|\\.)*"|`[^`]*`'


def go_string(literal: str) -> str:
    if literal.startswith("`"):
        return literal[1:-1]
    return json.loads(literal)


def string_constants(text: str) -> dict[str, str]:
    """name -> value of every `name = "literal"` (const or var) and `name string = "literal"`."""
    found = {}
    for m in re.finditer(rf'(?m)^\s*(?:const\s+|var\s+)?(\w+)\s*(?:string\s*)?=\s*({GO_STRING})\s*$', text):
        found[m.group(1)] = go_string(m.group(2))
    return found


def imports(text: str) -> dict[str, str]:
    """alias -> import path of one Go file."""
    found = {}
    blocks = re.findall(r"(?s)\bimport\s*\((.*?)\)", text) + re.findall(r'\bimport\s+((?:\w+\s+)?"[^"]+")', text)
    for block in blocks:
        for m in re.finditer(r'(?m)^\s*(?:(\w+|\.)\s+)?"([^"]+)"', block):
            alias, path = m.group(1), m.group(2)
            if alias in (None, ""):
                alias = path.rstrip("/").split("/")[-1]
                if re.fullmatch(r"v\d+(\.\d+)*", alias):  # .../otelconf/v0.3.0, .../kingpin/v2
                    alias = path.rstrip("/").split("/")[-2]
                alias = alias.replace("-", "")
            found[alias] = path
    return found


@dataclass
class Field:
    name: str  # Go field name; "" for an embedded field
    type: str  # Go type expression, or "struct{...}" for an anonymous struct (see nested)
    tag: str
    nested: Optional[list["Field"]] = None


def struct_fields(body: str) -> list[Field]:
    """The fields of a struct body (between its braces)."""
    fields: list[Field] = []
    i, n = 0, len(body)
    while i < n:
        # One field declaration runs to the end of the line, or past an anonymous struct's braces.
        end = body.find("\n", i)
        end = n if end < 0 else end
        line = body[i:end]
        m = re.match(r"\s*([\w, ]+?)\s+struct\s*{", line)
        if m and "`" not in line[: m.end()]:
            open_at = i + line.index("{", m.start())
            close = matching_brace(body, open_at)
            rest_end = body.find("\n", close)
            rest_end = n if rest_end < 0 else rest_end
            tag = re.search(r"`([^`]*)`", body[close:rest_end])
            nested = struct_fields(body[open_at + 1 : close])
            for name in [x.strip() for x in m.group(1).split(",")]:
                fields.append(Field(name, "struct{...}", tag.group(1) if tag else "", nested))
            i = rest_end + 1
            continue
        i = end + 1
        line = line.strip().rstrip(";")
        if not line:
            continue
        tag_m = re.search(r"`([^`]*)`\s*$", line)
        tag = tag_m.group(1) if tag_m else ""
        decl = line[: tag_m.start()].strip() if tag_m else line
        m = re.match(r"^([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s+(\S.*)$", decl)
        if m and not decl.startswith("*"):
            for name in [x.strip() for x in m.group(1).split(",")]:
                fields.append(Field(name, m.group(2).strip(), tag))
        elif re.fullmatch(r"\*?[\w.]+(\[[\w.\[\]*, ]+\])?", decl):
            fields.append(Field("", decl, tag))
    return fields


@dataclass
class GoPackage:
    import_path: str
    structs: dict[str, list[Field]] = field(default_factory=dict)
    named: dict[str, str] = field(default_factory=dict)  # type Name <underlying> (not struct)
    file_of: dict[str, str] = field(default_factory=dict)  # type name -> file it is declared in
    imports: dict[str, dict[str, str]] = field(default_factory=dict)  # file -> alias -> path
    texts: dict[str, str] = field(default_factory=dict)  # file -> source without comments
    constants: dict[str, str] = field(default_factory=dict)


def parse_types(pkg: GoPackage, path: str, text: str) -> None:
    # `type X struct {`, also inside `type ( ... )` groups, and generic `type X[T any] struct {`.
    for m in re.finditer(r"(?m)^\s*(?:type\s+)?([A-Za-z_]\w*)(?:\[[^\]]*\])?\s+struct\s*{", text):
        line_start = text.rfind("\n", 0, m.start()) + 1
        before = text[line_start : m.start()]
        if before.strip():
            continue
        if not text[m.start() :].lstrip().startswith("type") and not _in_type_group(text, m.start()):
            continue
        open_at = text.index("{", m.start())
        close = matching_brace(text, open_at)
        pkg.structs[m.group(1)] = struct_fields(text[open_at + 1 : close])
        pkg.file_of[m.group(1)] = path
    for m in re.finditer(r"(?m)^\s*(?:type\s+)?([A-Za-z_]\w*)\s+(=\s*)?([\[\]*\w.]+(?:\[[^\]]*\])?)\s*$", text):
        if not m.group(0).lstrip().startswith("type") and not _in_type_group(text, m.start()):
            continue
        if m.group(3) in ("struct", "interface"):
            continue
        pkg.named.setdefault(m.group(1), m.group(3))
        pkg.file_of.setdefault(m.group(1), path)


def _in_type_group(text: str, at: int) -> bool:
    """Whether `at` lies inside a `type ( ... )` group."""
    for m in re.finditer(r"(?m)^type\s*\(", text[:at]):
        open_at = m.end() - 1
        try:
            if matching_brace(text, open_at) > at:
                return True
        except ValueError:
            return False
    return False


class GoWorld:
    """Go packages of several repositories, found by import path."""

    def __init__(self) -> None:
        self.modules: list[tuple[str, Repo, str]] = []  # import prefix, repo, directory
        self._packages: dict[str, Optional[GoPackage]] = {}

    def add_module(self, prefix: str, repo: Repo, directory: str = "") -> None:
        self.modules.append((prefix.rstrip("/"), repo, directory.strip("/")))
        self.modules.sort(key=lambda m: -len(m[0]))

    def locate(self, import_path: str) -> Optional[tuple[Repo, str]]:
        for prefix, repo, directory in self.modules:
            if import_path == prefix or import_path.startswith(prefix + "/"):
                rest = import_path[len(prefix) :].strip("/")
                return repo, "/".join(p for p in (directory, rest) if p)
        return None

    def package(self, import_path: str) -> Optional[GoPackage]:
        if import_path in self._packages:
            return self._packages[import_path]
        where = self.locate(import_path)
        pkg = None
        if where is not None:
            repo, directory = where
            files = repo.go_files(directory)
            if files:
                pkg = GoPackage(import_path)
                for path in files:
                    text = strip_comments(repo.show(path))
                    if re.search(r"(?m)^//go:build\s+ignore", text):
                        continue
                    pkg.texts[path] = text
                    pkg.imports[path] = imports(text)
                    pkg.constants.update(string_constants(text))
                    parse_types(pkg, path, text)
        self._packages[import_path] = pkg
        return pkg


# --- config schemas: the keys a YAML config may hold, by Go type --------------------------------

LEAF = "value"  # anything decoded from a scalar or a list of scalars
MAP = "map:value"  # a mapping whose keys are free
BUILTIN = {
    "string", "bool", "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32",
    "uint64", "float32", "float64", "byte", "rune", "any", "error", "interface{}", "uintptr",
}


class Schema:
    """Builds {type: {key: type-expression}} for the struct types reachable from some roots.

    Type expressions: a qualified struct type name (a key of the result), "[]<expr>" for a
    sequence, "map:<expr>" for a mapping with free keys, "value" for anything else.
    """

    def __init__(self, world: GoWorld, tag: str, transparent_generics: Iterable[str] = (),
                 map_types: Iterable[str] = (), hooks: Optional[dict[str, Callable[["Schema", str], dict]]] = None):
        self.world = world
        self.tag = tag  # "yaml" or "mapstructure"
        self.transparent = set(transparent_generics)  # e.g. configoptional.Optional[T] decodes as T
        self.map_types = set(map_types)
        self.hooks = hooks or {}
        self.types: dict[str, dict[str, str]] = {}

    def _key_of(self, f: Field) -> Optional[str]:
        """The config key of a field; "" when embedded inline; None when it takes no key."""
        tags = dict(re.findall(r'(\w+):"([^"]*)"', f.tag))
        value = tags.get(self.tag)
        if value is not None:
            name = value.split(",")[0]
            options = value.split(",")[1:]
            if name == "-":
                return None
            if "inline" in options or "squash" in options:
                return ""
            if "remain" in options:
                return "*"
            if name:
                return name
        if f.name == "":
            # An embedded struct with no tag: yaml.v2 and mapstructure both use the type's name,
            # lowercased (mapstructure matches names case-insensitively).
            return f.type.lstrip("*").split(".")[-1].split("[")[0].lower()
        if not f.name[0].isupper():
            return None
        return f.name.lower()

    def expr(self, pkg: GoPackage, file: str, go_type: str) -> str:
        """The schema expression of a Go type written in `file` of `pkg`."""
        t = go_type.strip()
        while t.startswith("*"):
            t = t[1:].strip()
        if t.startswith("[]"):
            return "[]" + self.expr(pkg, file, t[2:])
        m = re.match(r"^\[\w*\](.*)$", t)
        if m:
            return "[]" + self.expr(pkg, file, m.group(1))
        if t.startswith("map["):
            close = matching_brace(t, 3)
            return "map:" + self.expr(pkg, file, t[close + 1 :])
        if t in BUILTIN or t.startswith(("func", "chan", "interface")):
            return LEAF
        generic = re.match(r"^([\w.]+)\[(.*)\]$", t)
        if generic:
            base = self._qualify(pkg, file, generic.group(1))
            if base in self.transparent:
                return self.expr(pkg, file, generic.group(2))
            return LEAF
        qualified = self._qualify(pkg, file, t)
        if qualified is None:
            return LEAF
        return self.resolve(qualified)

    def _qualify(self, pkg: GoPackage, file: str, t: str) -> Optional[str]:
        if "." in t:
            alias, name = t.split(".", 1)
            path = pkg.imports.get(file, {}).get(alias)
            return f"{path}.{name}" if path else None
        return f"{pkg.import_path}.{t}"

    def resolve(self, qualified: str) -> str:
        """Schema expression for a qualified Go type name; records struct types on the way."""
        if qualified in self.map_types:
            return MAP
        if qualified in self.types:
            return qualified
        import_path, name = qualified.rsplit(".", 1)
        pkg = self.world.package(import_path)
        if pkg is None:
            return LEAF
        if name in pkg.structs:
            self.types[qualified] = {}  # placed first: a type may contain itself
            keys = self.struct_keys(pkg, pkg.file_of[name], pkg.structs[name])
            if qualified in self.hooks:
                keys.update(self.hooks[qualified](self, qualified))
            self.types[qualified] = dict(sorted(keys.items()))
            return qualified
        if name in pkg.named:
            underlying = self.expr(pkg, pkg.file_of[name], pkg.named[name])
            if qualified in self.hooks:
                self.types[qualified] = dict(sorted(self.hooks[qualified](self, qualified).items()))
                return qualified
            return underlying
        return LEAF

    def struct_keys(self, pkg: GoPackage, file: str, fields: list[Field]) -> dict[str, str]:
        keys: dict[str, str] = {}
        for f in fields:
            key = self._key_of(f)
            if key is None:
                continue
            if f.nested is not None:
                nested = self.struct_keys(pkg, file, f.nested)
                if key == "":
                    keys.update(nested)
                else:
                    anon = f"{pkg.import_path}.{f.name}@{file.rsplit('/', 1)[-1]}"
                    self.types[anon] = dict(sorted(nested.items()))
                    keys[key] = anon
                continue
            target = self.expr(pkg, file, f.type)
            if key == "":
                if target in self.types:
                    keys.update(self.types[target])
                continue
            keys[key] = target
        return keys


# --- flags and environment variables --------------------------------------------------------------


def kingpin_flags(text: str) -> dict[str, bool]:
    """name -> whether it is a bool flag, for kingpin Flag("name", ...) definitions in one file."""
    flags = {}
    for m in re.finditer(r'\bFlag\(\s*(' + GO_STRING + r')', text):
        name = go_string(m.group(1))
        # The chain ends at the closing parenthesis of the statement; look a short way ahead.
        rest = text[m.end() : m.end() + 1500]
        end = re.search(r"\)\s*\n\s*(?![.\s])", rest)
        chain = rest[: end.start() + 1] if end else rest
        flags[name] = bool(re.search(r"\.(Bool|BoolVar)\(", chain))
    return flags


def kingpin_envars(text: str) -> set[str]:
    return {go_string(m) for m in re.findall(r"\.Envar\(\s*(" + GO_STRING + r")", text)}


def getenv_names(text: str) -> set[str]:
    return {go_string(m) for m in re.findall(r"\bos\.(?:Getenv|LookupEnv)\(\s*(" + GO_STRING + r")", text)}


def go_flag_names(text: str) -> set[str]:
    """Names of flags defined with the standard library's flag package (flag.String("name", ...))."""
    pattern = r"\bflag\.(?:String|Bool|Int|Int64|Uint|Uint64|Float64|Duration|Var|Func|TextVar)(?:Var)?\(\s*(?:&?[\w.]+\s*,\s*)?(" + GO_STRING + r")"
    return {go_string(m) for m in re.findall(pattern, text)}


def flag_catalog(names: dict[str, bool]) -> list[str]:
    """Sorted flag names, with the --no-<name> form kingpin adds for each bool flag."""
    out = set(names)
    out |= {f"no-{n}" for n, is_bool in names.items() if is_bool}
    return sorted(out)


def promslog_and_web_flags(common: Repo, toolkit: Repo) -> dict[str, bool]:
    """Flags that prometheus/common (promslog/flag) and exporter-toolkit (web/kingpinflag) add."""
    flags = {}
    for repo, directory in ((common, "promslog/flag"), (toolkit, "web/kingpinflag")):
        for path in repo.go_files(directory):
            text = strip_comments(repo.show(path))
            consts = string_constants(text)
            for m in re.finditer(r"\bFlag\(\s*(\w+)\s*,", text):
                if m.group(1) in consts:
                    flags[consts[m.group(1)]] = False
            flags.update(kingpin_flags(text))
    return flags


# --- metric names from Go source ------------------------------------------------------------------


def _resolve_parts(expr: str, consts: dict[str, str], text: str = "", at: int = 0) -> Optional[str]:
    """Value of a `"a" + name + "b"` string expression, or None when a part is not a constant.

    A name takes its last literal assignment before `at` in `text` (function-local constants
    shadow package ones), else its package constant.
    """
    out = []
    for part in [p.strip() for p in expr.split("+")]:
        if re.fullmatch(GO_STRING, part):
            out.append(go_string(part))
            continue
        local = None
        if text and re.fullmatch(r"[\w.]+", part):
            found = re.findall(rf"(?<![\w.]){re.escape(part)}\s*(?::=|=)\s*({GO_STRING})", text[:at])
            local = go_string(found[-1]) if found else None
        if local is not None:
            out.append(local)
        elif part in consts:
            out.append(consts[part])
        else:
            return None
    return "".join(out)


def _split_args(text: str, open_at: int) -> list[str]:
    """The top-level comma-separated arguments of the call whose parenthesis is at open_at."""
    close = matching_brace(text, open_at)
    args, depth, start = [], 0, open_at + 1
    i = start
    while i < close:
        c = text[i]
        if c in "\"'`":
            i = past_literal(text, i, close)
            continue
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    last = text[start:close].strip()
    if last:
        args.append(last)
    return args


def fq_name(namespace: str, subsystem: str, name: str) -> str:
    """client_golang's BuildFQName: the non-empty parts joined by underscores."""
    if not name:
        return ""
    return "_".join(p for p in (namespace, subsystem, name) if p)


def descriptor_names(text: str, consts: dict[str, str]) -> set[str]:
    """Metric names a Go file builds with BuildFQName, NewDesc and the *Opts structs."""
    names: set[str] = set()
    for m in re.finditer(r"\bBuildFQName\(", text):
        args = _split_args(text, m.end() - 1)
        if len(args) == 3:
            parts = [_resolve_parts(a, consts, text, m.start()) for a in args]
            if all(p is not None for p in parts):
                names.add(fq_name(*parts))  # type: ignore[arg-type]
    for m in re.finditer(r"\bNewDesc\(", text):
        args = _split_args(text, m.end() - 1)
        if args:
            value = _resolve_parts(args[0], consts, text, m.start())
            if value:
                names.add(value)
    for m in re.finditer(r"\b(?:Counter|Gauge|Histogram|Summary|Untyped)(?:Vec)?Opts\s*{", text):
        open_at = m.end() - 1
        body = text[open_at + 1 : matching_brace(text, open_at)]
        found = {}
        for key in ("Namespace", "Subsystem", "Name"):
            km = re.search(rf"(?m)\b{key}\s*:\s*([^,\n]+)", body)
            if km:
                found[key] = _resolve_parts(km.group(1).strip(), consts, text, m.start())
        if found.get("Name"):
            if any(found.get(k, "") is None for k in ("Namespace", "Subsystem")):
                continue
            names.add(fq_name(found.get("Namespace") or "", found.get("Subsystem") or "", found["Name"]))
    return {n for n in names if re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", n)}


def package_metric_names(repo: Repo, directories: Iterable[str], extra_consts: Optional[dict[str, str]] = None) -> set[str]:
    """Metric names built in the Go packages under the given directories (subpackages included)."""
    names: set[str] = set()
    for directory in directories:
        packages: dict[str, list[str]] = {}
        for path in repo.files(directory):
            if path.endswith(".go") and not path.endswith("_test.go"):
                packages.setdefault(path.rsplit("/", 1)[0] if "/" in path else "", []).append(path)
        for files in packages.values():
            texts = [strip_comments(repo.show(p)) for p in files]
            consts = dict(extra_consts or {})
            for text in texts:
                consts.update(string_constants(text))
            for text in texts:
                names |= descriptor_names(text, consts)
    return names


# --- Prometheus -----------------------------------------------------------------------------------


def prometheus_flags(repo: Repo) -> tuple[dict[str, bool], list[str], list[str]]:
    """Flags of the prometheus binary, the valid --enable-feature values, and deprecated flags."""
    text = strip_comments(repo.show("cmd/prometheus/main.go"))
    flags = kingpin_flags(text)
    for m in re.finditer(r"\b(?:serverOnlyFlag|agentOnlyFlag)\(\s*\w+\s*,\s*(" + GO_STRING + r")", text):
        rest = text[m.end() : m.end() + 1500]
        end = re.search(r"\)\s*\n\s*(?![.\s])", rest)
        chain = rest[: end.start() + 1] if end else rest
        flags[go_string(m.group(1))] = bool(re.search(r"\.(Bool|BoolVar)\(", chain))
    start = text.index("func (c *flagConfig) setFeatureListOptions")
    body = text[start : matching_brace(text, text.index("{", start))]
    features = sorted({go_string(s) for m in re.finditer(r"(?m)^\s*case\s+(.*?):\s*$", body)
                       for s in re.findall(GO_STRING, m.group(1))})
    # Deprecation is stated in the flag's help text; the raw source keeps it next to the name.
    raw = repo.show("cmd/prometheus/main.go")
    deprecated = sorted({go_string(m.group(1)) for m in re.finditer(
        r"(?:Flag|serverOnlyFlag\(\s*\w+\s*,|agentOnlyFlag\(\s*\w+\s*,)\(?\s*(" + GO_STRING + r")\s*,\s*\"\[DEPRECATED\]", raw)})
    return flags, features, deprecated


def prometheus_feature_notes(repo: Repo) -> tuple[list[str], list[str]]:
    """--enable-feature values that only warn: deprecated ones, and permanent no-ops."""
    text = strip_comments(repo.show("cmd/prometheus/main.go"))
    start = text.index("func (c *flagConfig) setFeatureListOptions")
    body = text[start : matching_brace(text, text.index("{", start))]
    deprecated, noop = set(), set()
    cases = list(re.finditer(r"(?m)^\s*case\s+(.*?):\s*$", body))
    for i, m in enumerate(cases):
        block = body[m.end() : cases[i + 1].start() if i + 1 < len(cases) else len(body)]
        values = {go_string(s) for s in re.findall(GO_STRING, m.group(1))}
        if re.search(r"is deprecated|being phased out", block):
            deprecated |= values
        if re.search(r"no-op", block):
            noop |= values
    return sorted(deprecated), sorted(noop)


def sd_hook(repo: Repo, discovery_prefix: str) -> Callable[[Schema, str], dict]:
    """Keys a discovery.Configs field adds: static_configs and <name>_sd_configs of every SD."""

    def hook(schema: Schema, _: str) -> dict:
        keys = {"static_configs": "[]" + schema.resolve(f"{discovery_prefix}/targetgroup.Group")}
        for path in repo.files("discovery"):
            if not path.endswith(".go") or path.endswith("_test.go"):
                continue
            text = strip_comments(repo.show(path))
            for m in re.finditer(r"func \(\*?(?:\w+\s+)?\*?(\w+)\)\s*Name\(\)\s*string\s*{\s*return\s+(" + GO_STRING + r")", text):
                type_name, sd = m.group(1), go_string(m.group(2))
                if sd == "static":
                    continue
                directory = path.rsplit("/", 1)[0]
                keys[f"{sd}_sd_configs"] = "[]" + schema.resolve(f"{discovery_prefix}/{directory[len('discovery/'):]}.{type_name}")
        return keys

    return hook


def prometheus_schema(world: GoWorld, prom: Repo) -> tuple[str, dict]:
    base = "github.com/prometheus/prometheus"
    holders = [f"{base}/config.ScrapeConfig", f"{base}/config.AlertmanagerConfig"]
    sd = sd_hook(prom, f"{base}/discovery")

    def targetgroup(schema: Schema, qualified: str) -> dict:
        # Group decodes through an anonymous struct in its UnmarshalYAML.
        pkg = world.package(qualified.rsplit(".", 1)[0])
        assert pkg is not None
        path = pkg.file_of["Group"]
        text = pkg.texts[path]
        start = text.index("func (tg *Group) UnmarshalYAML")
        open_at = text.index("struct {", start) + len("struct ")
        fields = struct_fields(text[open_at + 1 : matching_brace(text, open_at)])
        return schema.struct_keys(pkg, path, fields)

    hooks: dict[str, Callable[[Schema, str], dict]] = {h: sd for h in holders}
    hooks[f"{base}/discovery/targetgroup.Group"] = lambda s, q: {}
    schema = Schema(world, "yaml", map_types={f"{base}/model/labels.Labels"}, hooks=hooks)
    # targetgroup.Group's own fields carry no yaml tags: replace them with the decoded ones.
    group = f"{base}/discovery/targetgroup.Group"
    schema.types[group] = {}
    schema.types[group] = dict(sorted(targetgroup(schema, group).items()))
    root = schema.resolve(f"{base}/config.Config")
    return root, schema.types


# --- what every Go service built on client_golang exposes ----------------------------------------


def go_mod_version(repo: Repo, module: str) -> Optional[str]:
    m = re.search(rf"(?m)^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", repo.show("go.mod"))
    return m.group(1) if m else None


def process_metric_names(client: Repo) -> set[str]:
    """The process collector's metric names (client_golang registers it by default)."""
    text = strip_comments(client.show("prometheus/process_collector.go"))
    return {go_string(m) for m in re.findall(r"\bns\s*\+\s*(" + GO_STRING + r")", text)}


def build_info_name(client: Repo, text: str, consts: dict[str, str]) -> Optional[str]:
    """<program>_build_info when the service registers client_golang's version collector."""
    m = re.search(r"versioncollector\.NewCollector\(\s*(?:strings\.ReplaceAll\(\s*)?(\w+|" + GO_STRING + r")", text)
    if not m:
        return None
    program = _resolve_parts(m.group(1), consts)
    version_src = strip_comments(client.show("prometheus/collectors/version/version.go"))
    suffix = re.search(r"Namespace:\s*program,\s*Name:\s*(" + GO_STRING + r")", version_src)
    if program is None or suffix is None:
        return None
    return fq_name(program.replace("-", "_"), "", go_string(suffix.group(1)))


def added_flags(text: str, common: Repo, toolkit: Repo) -> dict[str, bool]:
    """Flags that shared packages add to a kingpin application: a file importing them calls them."""
    flags: dict[str, bool] = {}
    imported = set(imports(text).values())
    if "github.com/prometheus/common/promslog/flag" in imported:
        for path in common.go_files("promslog/flag"):
            src = strip_comments(common.show(path))
            consts = string_constants(src)
            for m in re.finditer(r"\bFlag\(\s*(\w+)\s*,", src):
                if m.group(1) in consts:
                    flags[consts[m.group(1)]] = False
    if "github.com/prometheus/exporter-toolkit/web/kingpinflag" in imported:
        for path in toolkit.go_files("web/kingpinflag"):
            flags.update(kingpin_flags(strip_comments(toolkit.show(path))))
    return flags


# --- Alertmanager ---------------------------------------------------------------------------------


def alertmanager_schema(world: GoWorld) -> tuple[str, dict]:
    schema = Schema(world, "yaml")
    root = schema.resolve("github.com/prometheus/alertmanager/config.Config")
    return root, schema.types


# --- exporters ------------------------------------------------------------------------------------


@dataclass
class Deps:
    """The shared Go modules a service builds with, each at the version its go.mod requires."""

    common: Optional[Repo]
    toolkit: Optional[Repo]
    client: Optional[Repo]


def deps_of(repo: Repo, mirrors: Path) -> Deps:
    def at(module: str, mirror: str) -> Optional[Repo]:
        version = go_mod_version(repo, module)
        return Repo(module.split("github.com/")[1], mirrors / mirror / "repo", version) if version else None

    return Deps(
        at("github.com/prometheus/common", "prometheus+common"),
        at("github.com/prometheus/exporter-toolkit", "prometheus+exporter-toolkit"),
        at("github.com/prometheus/client_golang", "prometheus+client_golang"),
    )


def go_texts(repo: Repo, directories: Iterable[str], exclude: Iterable[str] = ()) -> dict[str, str]:
    """path -> source without comments, for the non-test Go files under the directories."""
    skip = tuple(exclude)
    out = {}
    for directory in directories:
        for path in repo.files(directory):
            if path.endswith(".go") and not path.endswith("_test.go") and not path.startswith(skip):
                out[path] = strip_comments(repo.show(path))
    return out


def kingpin_service(repo: Repo, deps: Deps, texts: dict[str, str]) -> tuple[list[str], list[str]]:
    """Flags (with kingpin's --no- forms) and environment variables of a kingpin program."""
    flags: dict[str, bool] = {}
    env: set[str] = set()
    for text in texts.values():
        flags.update(kingpin_flags(text))
        env |= kingpin_envars(text) | getenv_names(text)
        if deps.common and deps.toolkit:
            flags.update(added_flags(text, deps.common, deps.toolkit))
    return flag_catalog(flags), sorted(env)


def node_exporter(repo: Repo, deps: Deps) -> dict:
    texts = go_texts(repo, ["", "collector"], exclude=("collector/fixtures", "docs", "examples"))
    texts = {p: t for p, t in texts.items() if "/" not in p or p.startswith("collector/")}
    flags, env = kingpin_service(repo, deps, texts)
    extra = set()
    for text in texts.values():
        # registerCollector("name", ...) adds --collector.<name> (a bool, so --no-collector.<name> too).
        for name in re.findall(r'\bregisterCollector\(\s*"([\w.-]+)"', text):
            extra |= {f"collector.{name}", f"no-collector.{name}"}
    consts: dict[str, str] = {}
    for text in texts.values():
        consts.update(string_constants(text))
    metrics: set[str] = set()
    for path, text in texts.items():
        if path.startswith("collector/"):
            metrics |= descriptor_names(text, consts)
    ns = consts["namespace"]
    # meminfo: one series per /proc/meminfo field the collector maps, node_memory_<key>.
    meminfo = texts["collector/meminfo_linux.go"]
    metrics |= {fq_name(ns, consts["memInfoSubsystem"], k) for k in re.findall(r'\bmetrics\["([\w()]+)"\]\s*=', meminfo)}
    # netdev: node_network_<statistic>_total, for each statistic the Linux collector reads.
    subsystem = re.search(r'subsystem:\s*"(\w+)"', texts["collector/netdev_common.go"])
    for path in ("collector/netdev_linux.go", "collector/netdev_common.go"):
        for key in re.findall(r'"((?:receive|transmit)_\w+)"', texts[path]):
            metrics.add(fq_name(ns, subsystem.group(1) if subsystem else "network", key + "_total"))
    main = texts["node_exporter.go"]
    build = build_info_name(deps.client, main, string_constants(main)) if deps.client else None
    process = process_metric_names(deps.client) if deps.client else set()
    return {
        "flags": sorted(set(flags) | extra),
        "env": env,
        "metrics": sorted(m for m in metrics | process | ({build} if build else set()) if m),
    }


def cadvisor(repo: Repo) -> dict:
    texts = go_texts(repo, [""], exclude=("integration", "docs", "build", "deploy", "client"))
    flags: set[str] = set()
    env: set[str] = set()
    for text in texts.values():
        flags |= go_flag_names(text)
        env |= getenv_names(text)
    metrics: set[str] = set()
    for path in ("lib/metrics/prometheus.go", "lib/metrics/prometheus_machine.go"):
        text = texts[path]
        metrics |= {go_string(m) for m in re.findall(r"\bname:\s*(" + GO_STRING + r")", text)}
        metrics |= descriptor_names(text, string_constants(text))
    kinds = sorted({go_string(v) for v in re.findall(r"\bMetricKind\s*=\s*(" + GO_STRING + r")", texts["lib/container/factory.go"])})
    return {"flags": sorted(flags), "env": sorted(env), "metrics": sorted(metrics), "disable_metrics_values": kinds}


def postgres_exporter(repo: Repo, deps: Deps) -> dict:
    texts = go_texts(repo, ["cmd", "collector", "config", "exporter"])
    flags, env = kingpin_service(repo, deps, texts)
    extra = set()
    consts: dict[str, str] = {}
    for path, text in texts.items():
        consts.update(string_constants(text))
    prefix = consts["collectorFlagPrefix"]
    for text in texts.values():
        for name in re.findall(r'\bregisterCollector\(\s*"([\w.-]+)"', text):
            extra |= {prefix + name, "no-" + prefix + name}
    metrics: set[str] = set()
    collector_consts = {k: v for p, t in texts.items() if p.startswith("collector/") for k, v in string_constants(t).items()}
    exporter_consts = {k: v for p, t in texts.items() if p.startswith("exporter/") for k, v in string_constants(t).items()}
    for path, text in texts.items():
        if path.startswith("collector/"):
            metrics |= descriptor_names(text, collector_consts)
        if path.startswith("exporter/"):
            metrics |= descriptor_names(text, exporter_consts)
    # The builtin queries: <map key>_<column> for every column that is not a label or discarded.
    text = texts["exporter/postgres_exporter.go"]
    start = text.index("var builtinMetricMaps")
    body = text[start : matching_brace(text, text.index("{", text.index("intermediateMetricMap{", start)))]
    for group in re.finditer(r'(' + GO_STRING + r')\s*:\s*{\s*map\[string\]ColumnMapping{', body):
        block = body[group.end() - 1 : matching_brace(body, group.end() - 1)]
        namespace = go_string(group.group(1))
        for column, kind in re.findall(r'"(\w+)"\s*:\s*{\s*(\w+)\s*,', block):
            if kind in ("LABEL", "DISCARD"):
                continue
            metrics.add(f"{namespace}_{column}_milliseconds" if kind == "DURATION" else f"{namespace}_{column}")
    # pg_settings_<setting>: one series per numeric server setting, named after the setting.
    setting = texts["collector/pg_setting.go"]
    m = re.search(r"BuildFQName\(\s*(\w+)\s*,\s*(\w+)\s*,\s*name\s*\)", setting)
    prefixes = [fq_name(collector_consts[m.group(1)], collector_consts[m.group(2)], "x")[:-1]] if m else []
    main = texts["cmd/postgres_exporter/main.go"]
    build = build_info_name(deps.client, main, {**string_constants(main), **exporter_consts}) if deps.client else None
    process = process_metric_names(deps.client) if deps.client else set()
    return {
        "flags": sorted(set(flags) | extra),
        "env": env,
        "metrics": sorted(metrics | process | ({build} if build else set())),
        "metric_prefixes": prefixes,
    }


def redis_exporter(repo: Repo, deps: Deps) -> dict:
    texts = go_texts(repo, ["", "exporter"])
    texts = {p: t for p, t in texts.items() if "/" not in p or p.startswith("exporter/")}
    main = texts["main.go"]
    flags = go_flag_names(main)
    env = {go_string(m) for m in re.findall(r"\bgetEnv\w*\(\s*(" + GO_STRING + r")", main)} | getenv_names(main)
    default_ns = re.search(r'flag\.String\(\s*"namespace"\s*,\s*getEnv\(\s*"\w+"\s*,\s*(' + GO_STRING + r")", main)
    ns = go_string(default_ns.group(1)) if default_ns else "redis"
    names: set[str] = set()
    for path, text in texts.items():
        if not path.startswith("exporter/"):
            continue
        # metricMapGauges / metricMapCounters: INFO field -> metric name (the map's values).
        for block_start in re.finditer(r"\bmetricMap(?:Gauges|Counters):\s*map\[string\]string{", text):
            open_at = block_start.end() - 1
            block = text[open_at : matching_brace(text, open_at)]
            names |= {go_string(v) for v in re.findall(r"(?:" + GO_STRING + r")\s*:\s*(" + GO_STRING + r")", block)}
        names |= {go_string(v) for v in re.findall(r"\bmetricMap(?:Gauges|Counters)\[" + r"(?:" + GO_STRING + r")\]\s*=\s*(" + GO_STRING + r")", text)}
        # The described metrics: `"name": {txt: ...}` entries of the descriptions map.
        names |= {go_string(k) for k in re.findall(r"(" + GO_STRING + r")\s*:\s*{\s*txt:", text)}
        for m in re.finditer(r"\bregisterConstMetric\w*\(", text):
            args = _split_args(text, m.end() - 1)
            if len(args) > 1 and re.fullmatch(GO_STRING, args[1]):
                names.add(go_string(args[1]))
    metrics = {fq_name(ns, "", n) for n in names}
    for text in texts.values():
        metrics |= descriptor_names(text, {"opts.Namespace": ns, **string_constants(text)})
    process = process_metric_names(deps.client) if deps.client else set()
    return {"flags": sorted(flags), "env": sorted(env), "metrics": sorted(metrics | process)}


def dcgm_exporter(repo: Repo) -> dict:
    texts = go_texts(repo, ["cmd", "pkg", "internal"])
    app = texts["pkg/cmd/app.go"]
    consts = string_constants(app)
    flags: set[str] = set()
    env: set[str] = set()
    for m in re.finditer(r"&cli\.\w+Flag{", app):
        block = app[m.end() - 1 : matching_brace(app, m.end() - 1)]
        name = re.search(r"\bName:\s*([\w\"]+)", block)
        if name:
            value = _resolve_parts(name.group(1), consts)
            if value:
                flags.add(value)
        aliases = re.search(r"\bAliases:\s*\[\]string{([^}]*)}", block)
        if aliases:
            flags |= {go_string(a) for a in re.findall(GO_STRING, aliases.group(1))}
        envs = re.search(r"\bEnvVars:\s*\[\]string{([^}]*)}", block)
        if envs:
            env |= {go_string(e) for e in re.findall(GO_STRING, envs.group(1))}
    for text in texts.values():
        env |= getenv_names(text)
    default = re.search(r"Name:\s*CLIFieldsFile,.*?Value:\s*(" + GO_STRING + r")", app, re.S)
    counters = {}
    known: set[str] = set()
    for path in repo.files("etc"):
        if path.endswith(".csv"):
            # Every field a shipped file names, enabled or commented out: DCGM fields the exporter knows.
            known |= set(re.findall(r"(?m)^\s*#?\s*(DCGM_\w+)\s*,", repo.show(path)))
        if path.endswith(".csv"):
            rows = csv.reader(io.StringIO(repo.show(path)))
            counters[path.rsplit("/", 1)[1]] = sorted(
                {row[0].strip() for row in rows if row and row[0].strip() and not row[0].lstrip().startswith("#")}
            )
    # The image sets some variables itself (read by the NVIDIA container runtime, not the exporter).
    # Only the stages that become images: not the one that builds the binary.
    stages = re.split(r"(?m)^(?=FROM\s)", repo.show("docker/Dockerfile"))
    image_env = {v for stage in stages if stage.startswith("FROM") and not re.match(r"FROM\s.*\bAS\s+builder\b", stage, re.I)
                 for v in re.findall(r"(?m)^ENV\s+(\w+)=", stage)}
    return {
        "flags": sorted(flags),
        "env": sorted(env),
        "image_env": sorted(image_env),
        "default_counters_file": go_string(default.group(1)) if default else "",
        "counters_files": counters,
        "known_fields": sorted(known),
    }


def nvidia_gpu_exporter(repo: Repo, deps: Deps) -> dict:
    texts = go_texts(repo, ["cmd/nvidia_gpu_exporter", "internal"], exclude=("internal/fakesmi", "internal/demo"))
    flags, env = kingpin_service(repo, deps, texts)
    exporter = texts["internal/exporter/exporter.go"]
    consts = string_constants(exporter)
    prefix = consts["DefaultPrefix"]
    units = re.findall(r"{suffix:\s*(" + GO_STRING + r"),\s*nameSuffix:\s*(" + GO_STRING + r")", exporter)
    units = [(go_string(a), go_string(b)) for a, b in units]

    def metric_name(rfield: str) -> str:
        # The exporter's rule for a returned field: a known unit becomes a name suffix, dots
        # become underscores, camel case becomes snake case, anything left illegal an underscore.
        out = rfield
        for suffix, name_suffix in units:
            if rfield.endswith(suffix):
                out = rfield.split(" ")[0] + name_suffix
                break
        out = out.replace(".", "_")
        out = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", out)
        out = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", out).lower()
        out = out.replace(" [", "_").replace("]", "")
        out = re.sub(r"[^a-zA-Z0-9_:]+", "_", out)
        return fq_name(prefix, "", out)

    fields_src = texts["internal/nvidiasmi/fields.go"]
    start = fields_src.index("fallbackQFieldToRFieldMap")
    block = fields_src[start : matching_brace(fields_src, fields_src.index("{", start))]
    rfields = [go_string(v) for _, v in re.findall(r"(" + GO_STRING + r")\s*:\s*(" + GO_STRING + r")", block)]
    metrics = {metric_name(r) for r in rfields}
    for text in texts.values():
        metrics |= descriptor_names(text, {"prefix": prefix, **string_constants(text)})
    return {
        "flags": flags,
        "env": env,
        "query_fields": sorted({go_string(k) for k, _ in re.findall(r"(" + GO_STRING + r")\s*:\s*(" + GO_STRING + r")", block)}),
        "metrics": sorted(m for m in metrics if m.startswith(prefix + "_")),
    }


# --- OpenTelemetry Collector and Jaeger -----------------------------------------------------------

KINDS = ("receivers", "processors", "exporters", "extensions", "connectors")
CORE = "go.opentelemetry.io/collector"
CONTRIB = "github.com/open-telemetry/opentelemetry-collector-contrib"
OTELCONF = "go.opentelemetry.io/contrib/otelconf"


def collector_world(core: Repo, gocontrib: Optional[Repo], contrib: Optional[Repo], extra: Iterable[tuple[str, Repo, str]] = ()) -> GoWorld:
    world = GoWorld()
    world.add_module(CORE, core)
    if gocontrib is not None:
        world.add_module(OTELCONF, gocontrib, "otelconf")
    if contrib is not None:
        world.add_module(CONTRIB, contrib)
    for prefix, repo, directory in extra:
        world.add_module(prefix, repo, directory)
    return world


def collector_schema(world: GoWorld, roots: dict[str, str]) -> tuple[dict[str, str], dict]:
    """Schemas of the given component configs and of the service section (telemetry included)."""
    telemetry = f"{CORE}/service/telemetry/otelconftelemetry.Config"

    def service_hook(schema: Schema, _: str) -> dict:
        # service.telemetry is typed component.Config; the collector fills it with this factory's.
        return {"telemetry": schema.resolve(telemetry)}

    schema = Schema(
        world, "mapstructure",
        transparent_generics={f"{CORE}/config/configoptional.Optional"},
        hooks={f"{CORE}/service.Config": service_hook},
    )
    resolved = {name: schema.resolve(root) for name, root in roots.items()}
    resolved["service"] = schema.resolve(f"{CORE}/service.Config")
    return resolved, schema.types


# The schema of a component whose factory's default config is `&struct{}{}`: it takes no keys.
EMPTY_CONFIG = "struct{}"


def empty_config(repo: Repo, factory: str) -> str:
    """EMPTY_CONFIG, once the factory file shows that its config is an empty struct."""
    if "func() component.Config { return &struct{}{} }" not in strip_comments(repo.show(factory)):
        raise SystemExit(f"{repo.repository}@{repo.ref}: {factory} no longer makes an empty config")
    return EMPTY_CONFIG


def component_type(repo: Repo, directory: str) -> tuple[Optional[str], Optional[str]]:
    """(type, deprecated type) of a component, from its metadata.yaml or generated status."""
    meta = f"{directory}/metadata.yaml"
    if meta in repo.files(directory):
        text = repo.show(meta)
        t = re.search(r"(?m)^type:\s*(\S+)", text)
        d = re.search(r"(?m)^deprecated_type:\s*(\S+)", text)
        return (t.group(1) if t else None), (d.group(1) if d else None)
    status = f"{directory}/internal/metadata/generated_status.go"
    if status in repo.files(directory):
        text = repo.show(status)
        t = re.search(r'\bType\s*=\s*component\.MustNewType\("([\w/]+)"\)', text)
        d = re.search(r'\bDeprecatedType\s*=\s*component\.MustNewType\("([\w/]+)"\)', text)
        return (t.group(1) if t else None), (d.group(1) if d else None)
    return None, None


def distribution(releases: Repo, core: Repo, contrib: Optional[Repo]) -> dict:
    """The contrib image's components: modules by kind, and each module's type where read."""
    import yaml  # only this script needs PyYAML; the tests read JSON

    manifest = yaml.safe_load(releases.show("distributions/otelcol-contrib/manifest.yaml"))
    modules: dict[str, list[str]] = {}
    types: dict[str, dict[str, dict[str, str]]] = {}
    for kind in KINDS:
        modules[kind] = sorted(entry["gomod"].split()[0] for entry in manifest.get(kind) or [])
        types[kind] = {}
        for module in modules[kind]:
            repo, directory = None, None
            if module.startswith(CORE + "/"):
                repo, directory = core, module[len(CORE) + 1 :]
            elif module.startswith(CONTRIB + "/") and contrib is not None:
                repo, directory = contrib, module[len(CONTRIB) + 1 :]
            if repo is None or not repo.exists(directory):
                continue
            t, d = component_type(repo, directory)
            if t:
                types[kind][module] = {"type": t, **({"deprecated_type": d} if d else {})}
    return {"modules": modules, "module_types": types}


def telemetry_instruments(core: Repo) -> dict[str, str]:
    """name -> instrument kind, for every instrument mdatagen generated in the core repository."""
    out = {}
    for path in core.files():
        if not path.endswith("generated_telemetry.go") or "cmd/mdatagen" in path:
            continue
        text = core.show(path)
        for m in re.finditer(r"\.meter\.(\w+)\(\s*(" + GO_STRING + r")", text):
            out[go_string(m.group(2))] = m.group(1)
    return out


def exposed_names(instruments: dict[str, str]) -> list[str]:
    """Names the Prometheus pull reader exposes when it adds no suffixes (see README): the
    instrument name itself, and for a histogram its _bucket, _sum and _count series."""
    out = set()
    for name, kind in instruments.items():
        if "Histogram" in kind:
            out |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            out.add(name)
    return sorted(out)


def prometheus_reader_defaults(core: Repo) -> dict[str, bool]:
    """Defaults the collector applies to a pull Prometheus reader that leaves them unset."""
    text = strip_comments(core.show("service/telemetry/otelconftelemetry/internal/migration/v0.3.0.go"))
    start = text.index("func applyPrometheusDefaults")
    body = text[start : matching_brace(text, text.index("{", start))]
    fields = re.findall(r"p\.(\w+)\s*=\s*boolPtr\((true|false)\)", body)
    snake = {f: re.sub(r"(?<!^)([A-Z])", r"_\1", f).lower() for f, _ in fields}
    return {snake[f]: v == "true" for f, v in fields}


def jaeger_components(jaeger: Repo, core: Repo, contrib: Optional[Repo]) -> dict[str, dict[str, str]]:
    """kind -> {type: module} for every component the jaeger binary registers."""
    text = strip_comments(jaeger.show("cmd/jaeger/internal/components.go"))
    imported = imports(text)
    body = text[text.index("func (b builders) build()") :]
    out: dict[str, dict[str, str]] = {k: {} for k in KINDS}
    for kind in KINDS:
        m = re.search(rf"factories\.{kind.capitalize()},\s*err\s*=\s*b\.\w+\(", body)
        if not m:
            continue
        for alias in re.findall(r"(\w+)\.NewFactory\(\)", body[m.end() : matching_brace(body, m.end() - 1)]):
            module = imported[alias]
            # Jaeger's components/ packages re-export a factory: follow `impl "<path>"` to it.
            for _ in range(3):
                directory = module.replace("github.com/jaegertracing/jaeger/", "")
                if not module.startswith("github.com/jaegertracing/jaeger/") or not jaeger.exists(directory + "/factory.go"):
                    break
                factory = strip_comments(jaeger.show(directory + "/factory.go"))
                impl = re.search(r'import\s+impl\s+"([^"]+)"', factory)
                if not impl:
                    t = re.search(r'MustNewType\("([\w/]+)"\)', factory)
                    if t:
                        out[kind][t.group(1)] = module
                    break
                module = impl.group(1)
            else:
                continue
            if module.startswith(CORE + "/"):
                t, d = component_type(core, module[len(CORE) + 1 :])
            elif module.startswith(CONTRIB + "/") and contrib is not None and contrib.exists(module[len(CONTRIB) + 1 :]):
                t, d = component_type(contrib, module[len(CONTRIB) + 1 :])
            else:
                continue
            for name in (t, d):
                if name:
                    out[kind][name] = module
    return {k: dict(sorted(v.items())) for k, v in out.items()}


# --- writing --------------------------------------------------------------------------------------


def write(name: str, data: dict) -> None:
    path = HERE / name
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(HERE.parent.parent)}")


def contrib_source(contrib: Optional[Repo], commits: dict[str, str], date: str) -> Optional[dict]:
    if contrib is None:
        return None
    paths = sorted(contrib.read)
    src = {"repository": CONTRIB.split("github.com/")[1], "paths": paths, "date": date}
    if commits:
        # Read file by file from an index at other commits than the release: say which.
        src["commits"] = {p: commits[p] for p in paths if p in commits}
        src["tag"] = "not the release tag: see commits"
    else:
        src["tag"] = contrib.ref
        src["commit"] = contrib.commit()
    return src


def keep_contrib(old: dict, resolved: dict[str, str], types: dict, dist: Optional[dict] = None) -> None:
    """Without a contrib source: carry the committed contrib roots, their types and the contrib
    module types over, as they were taken."""
    if not old:
        return
    for name, root in old["config"]["components"].items():
        if root.startswith(CONTRIB) and name not in resolved:
            resolved[name] = root
    for name, keys in old["config"]["types"].items():
        types.setdefault(name, keys)
    if dist is not None:
        for kind, modules in old["distribution"]["module_types"].items():
            for module, info in modules.items():
                if module.startswith(CONTRIB) and module in dist["modules"].get(kind, []):
                    dist["module_types"][kind].setdefault(module, info)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--date", required=True, help="the day the data is taken, YYYY-MM-DD")
    parser.add_argument("--contrib", type=Path, help="git dir of opentelemetry-collector-contrib")
    parser.add_argument("--contrib-ref", default=COLLECTOR_TAG)
    parser.add_argument("--contrib-commits", type=Path,
                        help="JSON path -> commit, when --contrib holds files read one by one")
    args = parser.parse_args(argv)
    m, date = args.mirrors, args.date

    def mirror(repository: str, tag: str) -> Repo:
        return Repo(repository, m / repository.replace("/", "+") / "repo", tag)

    # Prometheus.
    prom = mirror("prometheus/prometheus", PROMETHEUS_TAG)
    deps = deps_of(prom, m)
    assert deps.common and deps.toolkit and deps.client
    world = GoWorld()
    world.add_module("github.com/prometheus/prometheus", prom)
    world.add_module("github.com/prometheus/common", deps.common)
    root, types = prometheus_schema(world, prom)
    flags, features, deprecated = prometheus_flags(prom)
    main_go = strip_comments(prom.show("cmd/prometheus/main.go"))
    flags.update(added_flags(main_go, deps.common, deps.toolkit))
    deprecated_features, noop_features = prometheus_feature_notes(prom)
    dirs = sorted({p.split("/")[0] for p in prom.files() if p.endswith(".go") and "/" in p} - {"documentation", "web", "util", "internal"})
    metrics = {n for n in package_metric_names(prom, dirs) if n.startswith("prometheus_")}
    build = build_info_name(deps.client, main_go, string_constants(main_go))
    scrape = strip_comments(prom.show("scrape/scrape.go"))
    synthetic = sorted({go_string(s) for s in re.findall(r"\bname:\s*\[\]byte\(\s*(" + GO_STRING + r")", scrape)})
    write("prometheus.json", {
        "source": {**prom.source(date), "also": [deps.common.source(date), deps.toolkit.source(date), deps.client.source(date)]},
        "flags": flag_catalog(flags),
        "deprecated_flags": deprecated,
        "feature_flags": features,
        "deprecated_feature_flags": deprecated_features,
        "noop_feature_flags": noop_features,
        "config": {"root": root, "types": types},
        "metrics": sorted(metrics | ({build} if build else set())),
        "process_metrics": sorted(process_metric_names(deps.client)),
        "synthetic_metrics": synthetic,
    })

    # Alertmanager.
    am = mirror("prometheus/alertmanager", ALERTMANAGER_TAG)
    deps = deps_of(am, m)
    assert deps.common and deps.toolkit and deps.client
    world = GoWorld()
    world.add_module("github.com/prometheus/alertmanager", am)
    world.add_module("github.com/prometheus/common", deps.common)
    root, types = alertmanager_schema(world)
    main_go = strip_comments(am.show("cmd/alertmanager/main.go"))
    flags = kingpin_flags(main_go)
    flags.update(added_flags(main_go, deps.common, deps.toolkit))
    feature_src = strip_comments(am.show("featurecontrol/featurecontrol.go"))
    fconsts = string_constants(feature_src)
    allowed = feature_src[feature_src.index("AllowedFlags") :]
    allowed = allowed[: allowed.index("}")]
    dirs = sorted({p.split("/")[0] for p in am.files() if p.endswith(".go") and "/" in p} - {"ui", "test", "examples", "docs"})
    metrics = {n for n in package_metric_names(am, dirs) if n.startswith("alertmanager_")}
    build = build_info_name(deps.client, main_go, string_constants(main_go))
    write("alertmanager.json", {
        "source": {**am.source(date), "also": [deps.common.source(date), deps.toolkit.source(date), deps.client.source(date)]},
        "flags": flag_catalog(flags),
        "feature_flags": sorted(fconsts[n] for n in re.findall(r"\b(\w+),", allowed) if n in fconsts),
        "config": {"root": root, "types": types},
        "metrics": sorted(metrics | ({build} if build else set())),
        "process_metrics": sorted(process_metric_names(deps.client)),
    })

    # Exporters, one file each.
    node = mirror("prometheus/node_exporter", NODE_EXPORTER_TAG)
    deps = deps_of(node, m)
    write("node_exporter.json", {"source": {**node.source(date), "also": [d.source(date) for d in (deps.common, deps.toolkit, deps.client) if d]}, **node_exporter(node, deps)})
    cad = mirror("google/cadvisor", CADVISOR_TAG)
    write("cadvisor.json", {"source": cad.source(date), **cadvisor(cad)})
    pg = mirror("prometheus-community/postgres_exporter", POSTGRES_EXPORTER_TAG)
    deps = deps_of(pg, m)
    write("postgres_exporter.json", {"source": {**pg.source(date), "also": [d.source(date) for d in (deps.common, deps.toolkit, deps.client) if d]}, **postgres_exporter(pg, deps)})
    redis = mirror("oliver006/redis_exporter", REDIS_EXPORTER_TAG)
    deps = deps_of(redis, m)
    write("redis_exporter.json", {"source": {**redis.source(date), "also": [d.source(date) for d in (deps.client,) if d]}, **redis_exporter(redis, deps)})
    dcgm = mirror("NVIDIA/dcgm-exporter", DCGM_EXPORTER_TAG)
    write("dcgm_exporter.json", {"source": dcgm.source(date), **dcgm_exporter(dcgm)})
    nv = mirror("utkuozdemir/nvidia_gpu_exporter", NVIDIA_GPU_EXPORTER_TAG)
    deps = deps_of(nv, m)
    write("nvidia_gpu_exporter.json", {"source": {**nv.source(date), "also": [d.source(date) for d in (deps.common, deps.toolkit) if d]}, **nvidia_gpu_exporter(nv, deps)})

    # The collector: the release's manifest, core at the same tag, contrib where given.
    contrib = Repo(CONTRIB.split("github.com/")[1], args.contrib, args.contrib_ref) if args.contrib else None
    commits = json.loads(args.contrib_commits.read_text()) if args.contrib_commits else {}
    releases = mirror("open-telemetry/opentelemetry-collector-releases", COLLECTOR_TAG)
    core = mirror("open-telemetry/opentelemetry-collector", COLLECTOR_TAG)
    otelconf_version = go_mod_version_of(core, "service/go.mod", OTELCONF)
    gocontrib = mirror("open-telemetry/opentelemetry-go-contrib", f"otelconf/{otelconf_version}")
    world = collector_world(core, gocontrib, contrib)
    roots = {
        "receivers/otlp": f"{CORE}/receiver/otlpreceiver.Config",
        "processors/batch": f"{CORE}/processor/batchprocessor.Config",
        "processors/memory_limiter": f"{CORE}/processor/memorylimiterprocessor.Config",
        "exporters/otlp_grpc": f"{CORE}/exporter/otlpexporter.Config",
        "exporters/otlp_http": f"{CORE}/exporter/otlphttpexporter.Config",
    }
    if contrib is not None:
        roots.update({
            "processors/resource": f"{CONTRIB}/processor/resourceprocessor.Config",
            "processors/tail_sampling": f"{CONTRIB}/processor/tailsamplingprocessor.Config",
            "extensions/health_check": f"{CONTRIB}/internal/healthcheck.Config",
            "extensions/bearertokenauth": f"{CONTRIB}/extension/bearertokenauthextension.Config",
            "exporters/load_balancing": f"{CONTRIB}/exporter/loadbalancingexporter.Config",
        })
    resolved, types = collector_schema(world, roots)
    instruments = telemetry_instruments(core)
    old = json.loads((HERE / "collector.json").read_text()) if (HERE / "collector.json").exists() else {}
    dist = distribution(releases, core, contrib)
    if contrib is None:
        keep_contrib(old, resolved, types, dist)
    srcs = [core.source(date), gocontrib.source(date)]
    c_src = contrib_source(contrib, commits, date)
    if c_src:
        srcs.append(c_src)
    else:
        # With contrib's own entry, grafana/alloy's: the load-balancing exporter's fields as Alloy reads them.
        srcs += [s for s in old.get("source", {}).get("also", [])
                 if s.get("repository") in (CONTRIB.split("github.com/")[1], "grafana/alloy")]
    write("collector.json", {
        "source": {**releases.source(date), "also": srcs},
        "distribution": dist,
        "config": {"components": dict(sorted(resolved.items())), "types": types},
        "telemetry": {
            "prometheus_reader_defaults": prometheus_reader_defaults(core),
            "instruments": dict(sorted(instruments.items())),
            "exposed_metrics": exposed_names(instruments),
        },
    })

    # Jaeger: its own components, on the collector core its go.mod requires.
    jaeger = mirror("jaegertracing/jaeger", JAEGER_TAG)
    core_version = go_mod_version_of(jaeger, "go.mod", f"{CORE}/service")
    jcore = mirror("open-telemetry/opentelemetry-collector", core_version)
    jconf_version = go_mod_version_of(jcore, "service/go.mod", OTELCONF)
    jgocontrib = mirror("open-telemetry/opentelemetry-go-contrib", f"otelconf/{jconf_version}")
    if contrib is not None:
        contrib.read.clear()
    world = collector_world(jcore, jgocontrib, contrib, [("github.com/jaegertracing/jaeger", jaeger, "")])
    jroots = {
        "receivers/otlp": f"{CORE}/receiver/otlpreceiver.Config",
        "processors/batch": f"{CORE}/processor/batchprocessor.Config",
        "exporters/jaeger_storage_exporter": "github.com/jaegertracing/jaeger/cmd/jaeger/internal/exporters/storageexporter.Config",
        "extensions/jaeger_storage": "github.com/jaegertracing/jaeger/cmd/jaeger/internal/extension/jaegerstorage.Config",
        "extensions/jaeger_query": "github.com/jaegertracing/jaeger/cmd/jaeger/internal/extension/jaegerquery.Config",
    }
    if contrib is not None:
        jroots["extensions/healthcheckv2"] = f"{CONTRIB}/extension/healthcheckv2extension.Config"
    resolved, types = collector_schema(world, jroots)
    # The query role's placeholder pipeline (cmd/jaeger/config-query.yaml): nop in, nop out.
    for name, factory in (("receivers/nop", "receiver/nopreceiver/nop_receiver.go"),
                          ("exporters/nop", "exporter/nopexporter/nop_exporter.go")):
        resolved[name] = empty_config(jcore, factory)
    types[EMPTY_CONFIG] = {}
    jinstruments = telemetry_instruments(jcore)
    old = json.loads((HERE / "jaeger.json").read_text()) if (HERE / "jaeger.json").exists() else {}
    components = jaeger_components(jaeger, jcore, contrib)
    if contrib is None and old:
        keep_contrib(old, resolved, types)
        for kind, found in old["components"].items():
            for name, module in found.items():
                if module.startswith(CONTRIB):
                    components[kind].setdefault(name, module)
    srcs = [jcore.source(date), jgocontrib.source(date)]
    c_src = contrib_source(contrib, commits, date)
    if c_src:
        srcs.append(c_src)
    else:
        srcs += [s for s in old.get("source", {}).get("also", []) if s.get("repository") == CONTRIB.split("github.com/")[1]]
    write("jaeger.json", {
        "source": {**jaeger.source(date), "also": srcs},
        "components": {k: dict(sorted(v.items())) for k, v in components.items()},
        "config": {"components": dict(sorted(resolved.items())), "types": types},
        "telemetry": {
            "prometheus_reader_defaults": prometheus_reader_defaults(jcore),
            "instruments": dict(sorted(jinstruments.items())),
            "exposed_metrics": exposed_names(jinstruments),
        },
    })


def go_mod_version_of(repo: Repo, path: str, module: str) -> str:
    m = re.search(rf"(?m)^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", repo.show(path))
    if not m:
        raise SystemExit(f"{repo.repository}@{repo.ref}: {path} does not require {module}")
    return m.group(1)


if __name__ == "__main__":
    main()
