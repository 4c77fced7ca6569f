"""The log path and Grafana against their upstream contract: every key, flag, component, argument
and panel type the program renders exists in Loki 3.7.6, Promtail 3.6.15, Alloy v1.18.1 and
Grafana 13.2.3, as recorded in tests/upstream/{loki,promtail,alloy,grafana}.json (where each was
taken from, and how to take it again: tests/upstream/README.md).

Each checker also gets a made-up name it must reject, so a pass is never vacuous."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterator, Optional, Union

import pytest
import yaml

from conftest import (
    ROOT,
    STACKS,
    Run,
    container_args,
    container_files,
    merge,
    run_program,
    stack_config,
    stack_secrets,
)

UPSTREAM = ROOT / "tests" / "upstream"
CONTAINER = "docker:index/container:Container"
DATASOURCE = "grafana:oss/dataSource:DataSource"
DASHBOARD = "grafana:oss/dashboard:Dashboard"
LOKI_CONFIG = "/etc/loki/loki.yml"
PROMTAIL_CONFIG = "/etc/promtail/promtail.yml"
ALLOY_CONFIG = "/etc/alloy/config.alloy"
DOCKER_STACK, KUBERNETES_STACK = "dev", "staging"


@lru_cache(maxsize=None)
def upstream(name: str) -> dict:
    return json.loads((UPSTREAM / f"{name}.json").read_text())


def test_every_upstream_file_says_where_it_came_from():
    for name in ("loki", "promtail", "alloy", "grafana"):
        source = upstream(name)["source"]
        assert source["repository"] and source["paths"] and source["date"], name
        assert source.get("tag") or source.get("commit"), name


# --- key paths: one checker for YAML configs and Grafana's jsonData ----------------------------------


@dataclass(frozen=True)
class KeyPaths:
    """Valid dotted key paths ("limits_config.retention_period"). List items add no segment. A
    path with no children upstream is a scalar, a map of free keys or an opaque value: what is
    under it is not checked."""

    known: frozenset[str]
    parents: frozenset[str]

    @classmethod
    def of(cls, paths: list[str]) -> "KeyPaths":
        return cls(frozenset(paths), frozenset(p.rsplit(".", 1)[0] for p in paths if "." in p))

    def unknown(self, value: Any, path: str = "") -> list[str]:
        if isinstance(value, list):
            return [bad for item in value for bad in self.unknown(item, path)]
        if not isinstance(value, dict) or (path and path not in self.parents):
            return []
        bad = []
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            bad += [child] if child not in self.known else self.unknown(item, child)
        return bad


def flag_names(args: list[str], prefix: str) -> list[str]:
    """Flag names in a command line: "-config.file=/x" -> "config.file"."""
    return [a[len(prefix):].split("=", 1)[0] for a in args if a.startswith(prefix)]


_variants: dict[tuple[str, str], Run] = {}


def shipper_run(stack_runs: dict[str, Run], stack: str, shipper: str) -> Run:
    """The stack as shipped when it runs `shipper`, else the stack with `shipper` chosen."""
    if shipper in stack_runs[stack].outputs["services"]:
        return stack_runs[stack]
    if (stack, shipper) not in _variants:
        config = merge(stack_config(stack), {"log_shipper": {"type": shipper}})
        _variants[(stack, shipper)] = run_program(stack, config, stack_secrets(stack))
    run = _variants[(stack, shipper)]
    assert shipper in run.outputs["services"], f"{stack} does not run {shipper}"
    return run


# --- Loki 3.7.6 ----------------------------------------------------------------------------------------


def loki_keys() -> KeyPaths:
    return KeyPaths.of(upstream("loki")["keys"])


def loki_pods(run: Run) -> list[str]:
    """Loki's one pod, or (microservices mode) each of its roles' pods."""
    return [s for s in run.outputs["services"] if s == "loki" or s.startswith("loki-")]


def loki_configs(run: Run) -> dict[str, dict]:
    return {pod: yaml.safe_load(container_files(run, pod)[LOKI_CONFIG]) for pod in loki_pods(run)}


@pytest.mark.parametrize("stack", STACKS)
def test_every_loki_key_exists_in_loki(stack_runs, stack):
    for pod, config in loki_configs(stack_runs[stack]).items():
        unknown = loki_keys().unknown(config)
        assert not unknown, f"{stack}: {pod}'s {LOKI_CONFIG} has keys Loki 3.7.6 does not know: {unknown}"


@pytest.mark.parametrize("stack", STACKS)
def test_loki_schema_uses_valid_store_object_store_and_schema(stack_runs, stack):
    valid = upstream("loki")["schema_config"]
    for config in loki_configs(stack_runs[stack]).values():
        for period in config["schema_config"]["configs"]:
            assert period["store"] in valid["store"], period
            assert period["object_store"] in valid["object_store"], period
            assert period["schema"] in valid["schema"], period


def test_every_loki_role_is_a_target_loki_has(stack_runs):
    # Targets pkg/loki/modules.go names at v3.7.6 (lines 114-166): the flags list holds only
    # `-target` itself, not its values.
    targets = {"distributor", "ingester", "querier", "query-frontend", "query-scheduler", "index-gateway", "compactor",
               "all", "read", "write", "backend", "ruler", "overrides-exporter", "pattern-ingester"}
    used = [arg.split("=", 1)[1] for pod in loki_pods(stack_runs["prod"])
            for arg in container_args(stack_runs["prod"], pod) if arg.startswith("-target=")]
    # Each microservices role once, and none of the aliases that run several roles in one pod.
    assert sorted(used) == sorted({"distributor", "ingester", "querier", "query-frontend", "query-scheduler",
                                   "index-gateway", "compactor"})
    assert set(used) <= targets


def loki_command_lines(run: Run) -> list[list[str]]:
    """Loki's args, and the docker health check when it runs the loki binary itself."""
    lines = [container_args(run, pod) for pod in loki_pods(run)]
    for container in run.of_type(CONTAINER):
        if container.name == "loki":
            test = (container.inputs.get("healthcheck") or {}).get("tests") or []
            if len(test) > 1 and test[1].rsplit("/", 1)[-1] == "loki":
                lines.append(test[2:])
    return lines


@pytest.mark.parametrize("stack", STACKS)
def test_every_loki_flag_exists_in_loki(stack_runs, stack):
    flags = set(upstream("loki")["flags"])
    used = [name for line in loki_command_lines(stack_runs[stack]) for name in flag_names(line, "-")]
    assert "config.file" in used
    assert set(used) <= flags, f"{stack}: flags Loki 3.7.6 does not have: {set(used) - flags}"


def test_the_docker_health_check_uses_lokis_own_flags(stack_runs):
    (line,) = loki_command_lines(stack_runs[DOCKER_STACK])[1:]
    assert flag_names(line, "-") == ["health", "health.url"]


def test_the_loki_checks_reject_what_loki_does_not_have():
    config = {"limits_config": {"retention_period": "7d", "no_such_key": 1}, "no_such_block": {"x": 1}}
    assert loki_keys().unknown(config) == ["limits_config.no_such_key", "no_such_block"]
    assert "health-check" not in upstream("loki")["flags"]
    assert "v14" not in upstream("loki")["schema_config"]["schema"]


# --- Promtail 3.6.15 -------------------------------------------------------------------------------------


def promtail_config(stack_runs: dict[str, Run], stack: str) -> dict:
    return yaml.safe_load(container_files(shipper_run(stack_runs, stack, "promtail"), "promtail")[PROMTAIL_CONFIG])


@pytest.mark.parametrize("stack", [DOCKER_STACK, KUBERNETES_STACK])
def test_every_promtail_key_exists_in_promtail(stack_runs, stack):
    unknown = KeyPaths.of(upstream("promtail")["keys"]).unknown(promtail_config(stack_runs, stack))
    assert not unknown, f"{stack}: {PROMTAIL_CONFIG} has keys Promtail 3.6.15 does not know: {unknown}"


@pytest.mark.parametrize("stack", [DOCKER_STACK, KUBERNETES_STACK])
def test_every_pipeline_stage_is_a_promtail_stage(stack_runs, stack):
    stages = [name for job in promtail_config(stack_runs, stack)["scrape_configs"] for stage in job["pipeline_stages"] for name in stage]
    assert {"replace", "json", "labels", "structured_metadata"} <= set(stages)
    assert set(stages) <= set(upstream("promtail")["stages"]), set(stages) - set(upstream("promtail")["stages"])


@pytest.mark.parametrize("stack", [DOCKER_STACK, KUBERNETES_STACK])
def test_every_promtail_flag_exists_in_promtail(stack_runs, stack):
    used = flag_names(container_args(shipper_run(stack_runs, stack, "promtail"), "promtail"), "-")
    assert used and set(used) <= set(upstream("promtail")["flags"]), used


def test_the_promtail_check_rejects_what_promtail_does_not_have():
    config = {"scrape_configs": [{"job_name": "x", "pipeline_stages": [{"json": {"expressions": {"a": "a"}}}, {"no_such_stage": {}}],
                                  "docker_sd_configs": [{"host": "unix:///x", "no_such_option": 1}]}]}
    assert KeyPaths.of(upstream("promtail")["keys"]).unknown(config) == [
        "scrape_configs.pipeline_stages.no_such_stage",
        "scrape_configs.docker_sd_configs.no_such_option",
    ]


# --- Alloy v1.18.1: a reader for the syntax the program writes --------------------------------------------


TOKEN = re.compile(r"""
    (?P<space>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%^<>!])
  | (?P<punct>[{}\[\](),.=:])
""", re.X | re.S)


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if match is None:
            raise SyntaxError(f"unexpected {text[pos:pos + 20]!r} at {pos}")
        pos = match.end()
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))
    return tokens


@dataclass
class Attribute:
    name: str
    value: Any


@dataclass
class Block:
    name: str
    label: Optional[str]
    body: list[Union[Attribute, "Block"]] = field(default_factory=list)


@dataclass(frozen=True)
class Reference:
    path: str   # "loki.process.pipeline.receiver"


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple


@dataclass(frozen=True)
class Operation:
    op: str
    operands: tuple


class AlloyParser:
    """Bodies of blocks (`name.part "label" { ... }`) and attributes (`key = value`); values are
    strings, numbers, bools, null, lists, objects, references, calls and operators on them."""

    def __init__(self, text: str) -> None:
        self.tokens, self.i = tokenize(text), 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        return self.tokens[self.i + offset] if self.i + offset < len(self.tokens) else ("eof", "")

    def take(self, value: Optional[str] = None, kind: Optional[str] = None) -> str:
        got_kind, got = self.peek()
        if (value is not None and got != value) or (kind is not None and got_kind != kind):
            raise SyntaxError(f"expected {value or kind}, got {got!r} (token {self.i})")
        self.i += 1
        return got

    def parse(self) -> list[Union[Attribute, Block]]:
        body = self.body()
        self.take(kind="eof")
        return body

    def body(self) -> list[Union[Attribute, Block]]:
        statements: list[Union[Attribute, Block]] = []
        while self.peek()[1] != "}" and self.peek()[0] != "eof":
            name = self.take(kind="ident")
            if self.peek()[1] == "=":
                self.take("=")
                statements.append(Attribute(name, self.expression()))
                continue
            while self.peek()[1] == ".":
                self.take(".")
                name += "." + self.take(kind="ident")
            label = json.loads(self.take(kind="string")) if self.peek()[0] == "string" else None
            self.take("{")
            block = Block(name, label, self.body())
            self.take("}")
            statements.append(block)
        return statements

    BINARY = ("||", "&&", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "^")

    def expression(self) -> Any:
        left = self.unary()
        while self.peek()[0] == "op" and self.peek()[1] in self.BINARY:
            op = self.take()
            left = Operation(op, (left, self.unary()))
        return left

    def unary(self) -> Any:
        if self.peek()[1] in ("!", "-"):
            return Operation(self.take(), (self.unary(),))
        return self.postfix()

    def postfix(self) -> Any:
        value = self.primary()
        while self.peek()[1] in (".", "(", "["):
            punct = self.take()
            if punct == "." and isinstance(value, Reference):
                value = Reference(f"{value.path}.{self.take(kind='ident')}")
            elif punct == "(" and isinstance(value, Reference):
                value = Call(value.path, tuple(self.items(")")))
            elif punct == "[":
                value = Operation("[]", (value, self.expression()))
                self.take("]")
            else:
                raise SyntaxError(f"unexpected {punct!r} after {value!r}")
        return value

    def items(self, closing: str) -> list[Any]:
        values = []
        while self.peek()[1] != closing:
            values.append(self.expression())
            if self.peek()[1] != closing:
                self.take(",")
        self.take(closing)
        return values

    def primary(self) -> Any:
        kind, value = self.peek()
        if kind == "string":
            self.i += 1
            return json.loads(value)
        if kind == "raw":
            self.i += 1
            return value[1:-1]
        if kind == "number":
            self.i += 1
            return float(value) if "." in value or "e" in value.lower() else int(value)
        if kind == "ident":
            self.i += 1
            literals = {"true": True, "false": False, "null": None}
            return literals[value] if value in literals else Reference(value)
        if value == "[":
            self.i += 1
            return self.items("]")
        if value == "{":
            self.i += 1
            fields = {}
            while self.peek()[1] != "}":
                key_kind, key = self.peek()
                self.i += 1
                key = json.loads(key) if key_kind == "string" else key
                self.take("=")
                fields[key] = self.expression()
                if self.peek()[1] != "}":
                    self.take(",")
            self.take("}")
            return fields
        if value == "(":
            self.i += 1
            inner = self.expression()
            self.take(")")
            return inner
        raise SyntaxError(f"unexpected {value!r} (token {self.i})")


def references(value: Any) -> Iterator[str]:
    if isinstance(value, Reference):
        yield value.path
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, Call):
        yield from references(value.args)
    elif isinstance(value, Operation):
        yield from references(value.operands)


def test_the_alloy_parser_reads_blocks_attributes_and_values():
    text = '''
    // a comment
    discovery.relabel "pods" {
      targets = discovery.kubernetes.pods.targets
      rule {
        source_labels = ["a", "b\\"c"]
        field = "x=" + sys.env("NODE")
      }
    }
    loki.write "default" {
      endpoint { url = `raw` }
      external_labels = {env = "dev", "k.v" = 1.5, on = true, off = null}
      max_streams = -3
    }
    '''
    (relabel, write) = AlloyParser(text).parse()
    assert (relabel.name, relabel.label, write.name, write.label) == ("discovery.relabel", "pods", "loki.write", "default")
    targets, rule = relabel.body
    assert targets == Attribute("targets", Reference("discovery.kubernetes.pods.targets"))
    assert rule.name == "rule" and rule.label is None
    assert rule.body[0].value == ["a", 'b"c']
    assert rule.body[1].value == Operation("+", ("x=", Call("sys.env", ("NODE",))))
    endpoint, labels, streams = write.body
    assert endpoint.body == [Attribute("url", "raw")]
    assert labels.value == {"env": "dev", "k.v": 1.5, "on": True, "off": None}
    assert streams.value == Operation("-", (3,))
    with pytest.raises(SyntaxError):
        AlloyParser('loki.write "x" { url = }').parse()


# --- Alloy v1.18.1: components, arguments, blocks, exports, flags ------------------------------------------


def alloy_problems(statements: list[Union[Attribute, Block]]) -> list[str]:
    """What in a parsed config.alloy Alloy v1.18.1 would not accept."""
    data = upstream("alloy")
    components, schemas = set(data["components"]), data["arguments"]
    problems = []

    def check(body: list, schema: dict, where: str) -> None:
        for statement in body:
            if isinstance(statement, Attribute):
                if statement.name not in schema["arguments"]:
                    problems.append(f"{where}: no argument {statement.name}")
            elif statement.name not in schema["blocks"]:
                problems.append(f"{where}: no block {statement.name}")
            elif schema["blocks"][statement.name] is None:
                problems.append(f"{where}: block {statement.name} has no recorded arguments")
            else:
                check(statement.body, schema["blocks"][statement.name], f"{where} {statement.name}")

    for statement in statements:
        if isinstance(statement, Attribute) or statement.name not in components:
            problems.append(f"no component {statement.name}")
        elif statement.name not in schemas:
            problems.append(f"{statement.name}: arguments not recorded (extract_logs_grafana.py ALLOY_DETAILED)")
        else:
            check(statement.body, schemas[statement.name], f'{statement.name} "{statement.label}"')
            for statement_value in _attribute_values(statement.body):
                for path in references(statement_value):
                    problems += _export_problem(path, components, schemas)
    return problems


def _attribute_values(body: list) -> Iterator[Any]:
    for statement in body:
        if isinstance(statement, Attribute):
            yield statement.value
        else:
            yield from _attribute_values(statement.body)


def _export_problem(path: str, components: set[str], schemas: dict) -> list[str]:
    """A reference <component>.<label>.<export> must name an export the component has."""
    parts = path.split(".")
    for cut in range(len(parts) - 2, 0, -1):
        component = ".".join(parts[:cut])
        if component in components:
            export = parts[cut + 1]
            if component not in schemas:
                return [f"{path}: exports of {component} not recorded"]
            return [] if export in schemas[component]["exports"] else [f"{path}: {component} exports no {export}"]
    return []


def alloy_statements(stack_runs: dict[str, Run], stack: str) -> list[Union[Attribute, Block]]:
    return AlloyParser(container_files(shipper_run(stack_runs, stack, "alloy"), "alloy")[ALLOY_CONFIG]).parse()


@pytest.mark.parametrize("stack", STACKS)
def test_every_alloy_component_argument_and_block_exists_in_alloy(stack_runs, stack):
    statements = alloy_statements(stack_runs, stack)
    assert len([s for s in statements if isinstance(s, Block)]) >= 4, "too little parsed to prove anything"
    problems = alloy_problems(statements)
    assert not problems, f"{stack}: {ALLOY_CONFIG} is not valid for Alloy v1.18.1: {problems}"


def test_both_platforms_alloy_configs_are_checked(stack_runs):
    """The docker and the kubernetes render differ (discovery, source): both are read above."""
    assert {"discovery.docker", "loki.source.docker"} <= {s.name for s in alloy_statements(stack_runs, DOCKER_STACK)}
    assert "discovery.kubernetes" in {s.name for s in alloy_statements(stack_runs, KUBERNETES_STACK)}


def test_the_alloy_check_rejects_what_alloy_does_not_have():
    text = '''
    loki.process "p" {
      forward_to = [loki.write.w.receiver, loki.write.w.output]
      stage.json {
        expressions = {a = "a"}
        no_such_argument = 1
      }
      stage.no_such_stage { }
    }
    loki.write "w" { endpoint { url = "http://x" } }
    loki.no_such_component "x" { }
    '''
    assert alloy_problems(AlloyParser(text).parse()) == [
        'loki.process "p" stage.json: no argument no_such_argument',
        'loki.process "p": no block stage.no_such_stage',
        "loki.write.w.output: loki.write exports no output",
        "no component loki.no_such_component",
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_alloy_runs_with_flags_alloy_has(stack_runs, stack):
    run = shipper_run(stack_runs, stack, "alloy")
    args = container_args(run, "alloy")
    data = upstream("alloy")
    assert args[0] in data["commands"] and args[0] == "run"
    flags = flag_names(args[1:], "--")
    assert flags and set(flags) <= set(data["run_flags"]), set(flags) - set(data["run_flags"])
    (config_path,) = [a for a in args[1:] if not a.startswith("-")]
    assert config_path in container_files(run, "alloy")


def test_the_alloy_flag_list_rejects_a_made_up_flag():
    assert "server.http.listen-addr" in upstream("alloy")["run_flags"]
    assert "server.http.listen-address" not in upstream("alloy")["run_flags"]


# --- Grafana 13.2.3 ----------------------------------------------------------------------------------------


def json_data_keys(datasource_type: str) -> KeyPaths:
    known = upstream("grafana")["datasource_json_data"]
    return KeyPaths.of(known["common"] + known[datasource_type])


def datasource_problems(datasource_type: str, json_data: dict) -> list[str]:
    if datasource_type not in upstream("grafana")["datasource_json_data"]:
        return [f"no jsonData recorded for datasource type {datasource_type}"]
    problems = json_data_keys(datasource_type).unknown(json_data)
    for path, allowed in upstream("grafana")["values"].items():
        kind, _, key_path = path.partition(".")
        if kind == datasource_type:
            problems += [f"{key_path}={v!r}" for v in values_at(json_data, key_path.split(".")) if v not in allowed]
    return problems


def values_at(value: Any, keys: list[str]) -> Iterator[Any]:
    if isinstance(value, list):
        for item in value:
            yield from values_at(item, keys)
    elif not keys:
        yield value
    elif isinstance(value, dict) and keys[0] in value:
        yield from values_at(value[keys[0]], keys[1:])


@pytest.mark.parametrize("stack", STACKS)
def test_every_datasource_sets_only_json_data_grafana_reads(stack_runs, stack):
    datasources = stack_runs[stack].of_type(DATASOURCE)
    assert {d.inputs["type"] for d in datasources} == {"prometheus", "loki", "jaeger", "alertmanager"}
    problems = {
        f"{d.inputs['uid']} ({d.inputs['type']})": found
        for d in datasources
        if (found := datasource_problems(d.inputs["type"], json.loads(d.inputs["jsonDataEncoded"])))
    }
    assert not problems, f"{stack}: jsonData Grafana 13.2.3 does not read: {problems}"


def test_the_datasource_check_names_a_key_grafana_does_not_read():
    old = {"tracesToLogsV2": {"datasourceUid": "loki", "filterByTraceId": True}}
    assert datasource_problems("jaeger", old) == ["tracesToLogsV2.filterByTraceId"]
    assert datasource_problems("jaeger", {"tracesToLogsV2": {"filterByTraceID": True}}) == []
    assert datasource_problems("alertmanager", {"implementation": "thanos"}) == ["implementation='thanos'"]
    assert datasource_problems("tempo", {}) == ["no jsonData recorded for datasource type tempo"]


def panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panels(panel)   # a row holds its panels


def dashboard_problems(dashboard: dict) -> list[str]:
    grafana = upstream("grafana")
    problems = [f"dashboard key {k}" for k in dashboard if k not in grafana["dashboard_keys"]]
    for panel in panels(dashboard):
        where = f"panel {panel.get('title')!r}"
        if panel.get("type") not in grafana["panel_types"]:
            problems.append(f"{where}: type {panel.get('type')!r}")
        allowed = grafana["row_panel_keys"] if panel.get("type") == "row" else grafana["panel_keys"]
        problems += [f"{where}: key {k}" for k in panel if k not in allowed]
    return problems


@pytest.mark.parametrize("stack", STACKS)
def test_every_dashboard_uses_grafana_panel_types_and_keys(stack_runs, stack):
    dashboards = stack_runs[stack].of_type(DASHBOARD)
    assert dashboards
    problems = {}
    for resource in dashboards:
        dashboard = json.loads(resource.inputs["configJson"])
        assert any(True for _ in panels(dashboard)), resource.name
        if found := dashboard_problems(dashboard):
            problems[resource.name] = found
    assert not problems, f"{stack}: not in Grafana 13.2.3's classic dashboard schema: {problems}"


def test_the_dashboard_check_rejects_what_grafana_does_not_have():
    dashboard = {"title": "t", "style": "dark", "panels": [
        {"type": "row", "title": "r", "panels": [{"type": "graph", "title": "old", "gridPos": {}}]},
        {"type": "timeseries", "title": "ok", "nonsense": 1},
    ]}
    assert dashboard_problems(dashboard) == [
        "dashboard key style",
        "panel 'old': type 'graph'",
        "panel 'ok': key nonsense",
    ]
