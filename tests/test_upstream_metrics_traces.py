"""What the program renders for Prometheus, Alertmanager, the exporters, the collector and Jaeger,
held against the upstream contract taken from their source at the pinned tags (tests/upstream/,
written by tests/upstream/extract_metrics_traces.py; see tests/upstream/README.md).

Flags, environment variables, config keys, component types and metric names: each must exist in
the release the stack runs. Every check has a test that shows it catches a bad value.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Iterable, Optional

import promql_parser
import pytest
import yaml

from conftest import (
    ROOT,
    STACKS,
    Run,
    container_args,
    container_files,
    controller,
    merge,
    prometheus_config,
    run_program,
    stack_config,
)

UPSTREAM = ROOT / "tests" / "upstream"
CATALOG = ROOT / "configs" / "metrics" / "catalog.yml"
CONTAINER = "docker:index/container:Container"
COLLECTOR_CONFIG = "/etc/otelcol-contrib/config.yaml"
JAEGER_CONFIG = "/etc/jaeger/config.yaml"
ALERTMANAGER_CONFIG = "/etc/alertmanager/alertmanager.yml"
RULES_DIR = "/etc/prometheus/rules/"
# Set by the Kubernetes platform on GPU pods for the NVIDIA container runtime, not the exporter.
RUNTIME_ENV = {"NVIDIA_VISIBLE_DEVICES"}


@cache
def upstream(name: str) -> dict:
    return json.loads((UPSTREAM / f"{name}.json").read_text())


# --- reading what the program renders -----------------------------------------------------------


def flag_name(arg: str) -> Optional[str]:
    """The flag an argument sets ("--a.b=c" -> "a.b"), or None for a positional argument."""
    if not arg.startswith("-"):
        return None
    return arg.lstrip("-").split("=", 1)[0]


def flag_values(args: Iterable[str], name: str) -> list[str]:
    return [a.split("=", 1)[1] for a in args if flag_name(a) == name and "=" in a]


def env_names(run: Run, service: str) -> set[str]:
    """Names of the environment variables a service's container starts with, on either platform."""
    containers = [r for r in run.of_type(CONTAINER) if r.name == service]
    if containers:
        return {e.split("=", 1)[0] for e in containers[0].inputs.get("envs") or []}
    container = controller(run, service).inputs["spec"]["template"]["spec"]["containers"][0]
    return {e["name"] for e in container.get("env") or []}


def env_values(run: Run, service: str) -> dict[str, str]:
    containers = [r for r in run.of_type(CONTAINER) if r.name == service]
    if containers:
        return dict(e.split("=", 1) for e in containers[0].inputs.get("envs") or [])
    container = controller(run, service).inputs["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def unknown_flags(args: Iterable[str], known: Iterable[str]) -> list[str]:
    known = set(known)
    return [a for a in args if flag_name(a) is not None and flag_name(a) not in known]


# --- config keys against the upstream schema ----------------------------------------------------


def key_problems(types: dict, expr: str, value: Any, path: str) -> list[str]:
    """Keys of `value` that the upstream type `expr` does not have (see the extraction script for
    the expression forms). A mapping where upstream takes a plain value cannot be checked: that is
    a problem too, so nothing passes unchecked."""
    if expr.startswith("[]"):
        if isinstance(value, list):
            return [p for i, item in enumerate(value) for p in key_problems(types, expr[2:], item, f"{path}[{i}]")]
        return key_problems(types, expr[2:], value, path)
    if expr.startswith("map:"):
        if isinstance(value, dict):
            return [p for k, v in value.items() for p in key_problems(types, expr[4:], v, f"{path}.{k}")]
        return []
    if not isinstance(value, dict):
        return []
    if expr not in types:
        return [f"{path}: a mapping where upstream takes {expr}"]
    keys = types[expr]
    problems = []
    for key, item in value.items():
        if key in keys:
            problems += key_problems(types, keys[key], item, f"{path}.{key}")
        elif "*" not in keys:
            problems.append(f"{path}.{key}: no such key")
    return problems


def config_problems(data: dict, config: dict) -> list[str]:
    return key_problems(data["config"]["types"], data["config"]["root"], config, "")


# --- Prometheus ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_prometheus_flag_exists_upstream(stack_runs, stack):
    args = container_args(stack_runs[stack], "prometheus")
    assert args
    assert unknown_flags(args, upstream("prometheus")["flags"]) == []


def feature_problems(args: list[str]) -> list[str]:
    data = upstream("prometheus")
    problems = []
    for value in flag_values(args, "enable-feature"):
        for feature in value.split(","):
            if feature not in data["feature_flags"]:
                problems.append(f"{feature}: not a feature Prometheus knows (it only logs a warning)")
            elif feature in data["deprecated_feature_flags"] or feature in data["noop_feature_flags"]:
                problems.append(f"{feature}: deprecated or a no-op")
    return problems


@pytest.mark.parametrize("stack", STACKS)
def test_every_prometheus_feature_is_a_known_one(stack_runs, stack):
    assert feature_problems(container_args(stack_runs[stack], "prometheus")) == []


def test_the_feature_check_rejects_unknown_and_retired_features():
    assert feature_problems(["--enable-feature=exemplar-storage"]) == []
    assert len(feature_problems(["--enable-feature=exemplar-storage,expand-external-labels"])) == 1
    assert len(feature_problems(["--enable-feature=native-histograms"])) == 1


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_uses_no_deprecated_flag(stack_runs, stack):
    args = container_args(stack_runs[stack], "prometheus")
    assert [a for a in args if flag_name(a) in upstream("prometheus")["deprecated_flags"]] == []


def test_upstream_deprecates_the_retention_flags_for_the_config_file():
    data = upstream("prometheus")
    assert {"storage.tsdb.retention.time", "storage.tsdb.retention.size"} <= set(data["deprecated_flags"])
    problems = config_problems(data, {"storage": {"tsdb": {"retention": {"time": "7d", "size": "5GB"}}}})
    assert problems == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_prometheus_config_key_exists_upstream(stack_runs, stack):
    assert config_problems(upstream("prometheus"), prometheus_config(stack_runs[stack])) == []


def test_the_key_check_rejects_unknown_and_misplaced_keys():
    data = upstream("prometheus")
    assert config_problems(data, {"global": {"scrape_interval": "15s"}}) == []
    assert config_problems(data, {"global": {"scrape_intervals": "15s"}}) == [".global.scrape_intervals: no such key"]
    bad = {"scrape_configs": [{"job_name": "a", "kubernetes_sd_configs": [{"role": "pod", "namespace": ["x"]}]}]}
    assert config_problems(data, bad) == [".scrape_configs[0].kubernetes_sd_configs[0].namespace: no such key"]
    # A mapping where upstream takes a plain value is reported, not skipped.
    assert config_problems(data, {"rule_files": [{"path": "x"}]}) == [".rule_files[0]: a mapping where upstream takes value"]


# --- Alertmanager -------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_alertmanager_flag_exists_upstream(stack_runs, stack):
    args = container_args(stack_runs[stack], "alertmanager")
    assert args
    assert unknown_flags(args, upstream("alertmanager")["flags"]) == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_alertmanager_config_key_exists_upstream(stack_runs, stack):
    config = yaml.safe_load(container_files(stack_runs[stack], "alertmanager")[ALERTMANAGER_CONFIG])
    assert config_problems(upstream("alertmanager"), config) == []


def test_the_alertmanager_key_check_rejects_a_key_of_another_receiver():
    data = upstream("alertmanager")
    good = {"receivers": [{"name": "a", "webhook_configs": [{"url_file": "/x"}]}]}
    assert config_problems(data, good) == []
    bad = {"receivers": [{"name": "a", "webhook_configs": [{"api_url_file": "/x"}]}]}
    assert config_problems(data, bad) == [".receivers[0].webhook_configs[0].api_url_file: no such key"]


# --- exporters ----------------------------------------------------------------------------------


def gpu_run(stack_runs, variant: str) -> Run:
    """A run with the GPU exporter `variant` on each platform: prod (dcgm) and staging (nvidia_smi)
    on Kubernetes; dev with either on Docker, which no shipped stack enables."""
    platform, exporter = variant.split("/")
    if platform == "kubernetes":
        run = stack_runs["prod" if exporter == "dcgm" else "staging"]
        assert stack_config(run.stack)["exporters"]["gpu"]["exporter"] == exporter
        return run
    return _docker_gpu_run(exporter)


@cache
def _docker_gpu_run(exporter: str) -> Run:
    return run_program("dev", merge(stack_config("dev"), {"exporters": {"gpu": {"enabled": True, "exporter": exporter}}}))


EXPORTERS = {
    # service -> upstream data file
    "node-exporter": "node_exporter",
    "cadvisor": "cadvisor",
    "postgres-exporter": "postgres_exporter",
    "redis-exporter": "redis_exporter",
}
GPU_DATA = {"dcgm": "dcgm_exporter", "nvidia_smi": "nvidia_gpu_exporter"}
GPU_VARIANTS = ("kubernetes/dcgm", "kubernetes/nvidia_smi", "docker/dcgm", "docker/nvidia_smi")


def exporter_runs(stack_runs, service: str) -> list[Run]:
    runs = [r for r in stack_runs.values() if service in r.outputs["services"]]
    assert runs, f"no shipped stack deploys {service}"
    return runs


@pytest.mark.parametrize("service", sorted(EXPORTERS))
def test_every_exporter_flag_exists_upstream(stack_runs, service):
    data = upstream(EXPORTERS[service])
    for run in exporter_runs(stack_runs, service):
        assert unknown_flags(container_args(run, service), data["flags"]) == [], run.stack


@pytest.mark.parametrize("service", sorted(EXPORTERS))
def test_every_exporter_env_var_is_read_upstream(stack_runs, service):
    data = upstream(EXPORTERS[service])
    for run in exporter_runs(stack_runs, service):
        assert sorted(env_names(run, service) - set(data["env"])) == [], run.stack


def test_every_cadvisor_disabled_metric_kind_exists_upstream(stack_runs):
    kinds = set(upstream("cadvisor")["disable_metrics_values"])
    for run in exporter_runs(stack_runs, "cadvisor"):
        for value in flag_values(container_args(run, "cadvisor"), "disable_metrics"):
            assert sorted(set(value.split(",")) - kinds) == [], run.stack


@pytest.mark.parametrize("variant", GPU_VARIANTS)
def test_every_gpu_exporter_flag_and_env_var_exists_upstream(stack_runs, variant):
    run = gpu_run(stack_runs, variant)
    data = upstream(GPU_DATA[variant.split("/")[1]])
    assert unknown_flags(container_args(run, "gpu-exporter"), data["flags"]) == []
    known = set(data["env"]) | set(data.get("image_env", [])) | RUNTIME_ENV
    assert sorted(env_names(run, "gpu-exporter") - known) == []


def test_the_flag_and_env_checks_reject_what_upstream_lacks():
    data = upstream("node_exporter")
    assert unknown_flags(["--path.rootfs=/host", "--no-collector.wifi"], data["flags"]) == []
    assert unknown_flags(["--path.root=/host"], data["flags"]) == ["--path.root=/host"]
    assert "DATA_SOURCE_PASS_FILE" in upstream("postgres_exporter")["env"]
    assert "DATA_SOURCE_PASSWORD_FILE" not in upstream("postgres_exporter")["env"]


# --- the collector and Jaeger -------------------------------------------------------------------


def collector_config(run: Run) -> dict:
    return yaml.safe_load(container_files(run, "otel-collector")[COLLECTOR_CONFIG])


def jaeger_config(run: Run) -> dict:
    return yaml.safe_load(container_files(run, "jaeger")[JAEGER_CONFIG])


KINDS = ("receivers", "processors", "exporters", "extensions", "connectors")


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def distribution_types(kind: str) -> set[str]:
    """Type names (deprecated aliases included) of the contrib image's modules whose type is known."""
    dist = upstream("collector")["distribution"]
    out = set()
    for module, info in dist["module_types"][kind].items():
        if module in dist["modules"][kind]:
            out |= {info["type"], info.get("deprecated_type", info["type"])}
    return out


def component_problems(data: dict, config: dict, available: dict[str, set[str]]) -> list[str]:
    """Components the binary lacks, and keys their upstream configs do not have."""
    schema = data["config"]
    problems = []
    for kind in KINDS:
        for component_id, settings in (config.get(kind) or {}).items():
            ctype = component_type(component_id)
            if ctype not in available[kind]:
                problems.append(f"{kind}.{component_id}: {ctype} is not in the binary")
                continue
            root = schema["components"].get(f"{kind}/{ctype}")
            if root is None:
                problems.append(f"{kind}.{component_id}: no upstream config schema for {ctype}")
                continue
            problems += key_problems(schema["types"], root, settings or {}, f"{kind}.{component_id}")
    service = config.get("service") or {}
    problems += key_problems(schema["types"], schema["components"]["service"], service, "service")
    for component_id in service.get("extensions") or []:
        if component_id not in (config.get("extensions") or {}):
            problems.append(f"service.extensions: {component_id} is not defined")
    return problems


@pytest.mark.parametrize("stack", STACKS)
def test_every_collector_component_is_in_the_contrib_image_with_upstream_keys(stack_runs, stack):
    available = {kind: distribution_types(kind) for kind in KINDS}
    assert component_problems(upstream("collector"), collector_config(stack_runs[stack]), available) == []


def test_the_component_check_rejects_a_missing_component_and_a_bad_key():
    data = upstream("collector")
    available = {kind: distribution_types(kind) for kind in KINDS}
    assert "otlp_grpc" in available["exporters"] and "otlp" in available["exporters"]
    config = {
        "exporters": {"otlp_grpc/a": {"endpoint": "x:4317", "tls": {"insecure": True}}},
        "processors": {"batch": {"send_batch_size": 1, "timeout_ms": 5}},
        "receivers": {"otlp_json": {}},
    }
    assert component_problems(data, config, available) == [
        "receivers.otlp_json: otlp_json is not in the binary",
        "processors.batch.timeout_ms: no such key",
    ]


def jaeger_available() -> dict[str, set[str]]:
    components = upstream("jaeger")["components"]
    return {kind: set(components.get(kind, {})) for kind in KINDS}


@pytest.mark.parametrize("stack", STACKS)
def test_every_jaeger_component_is_in_its_binary_with_upstream_keys(stack_runs, stack):
    assert component_problems(upstream("jaeger"), jaeger_config(stack_runs[stack]), jaeger_available()) == []


@pytest.mark.parametrize("stack, backend", [("dev", "memory"), ("staging", "badger"), ("prod", "badger")])
def test_jaeger_storage_backend_keys_exist_upstream(stack_runs, stack, backend):
    data = upstream("jaeger")
    backends = jaeger_config(stack_runs[stack])["extensions"]["jaeger_storage"]["backends"]
    assert [next(iter(b)) for b in backends.values()] == [backend]
    root = data["config"]["components"]["extensions/jaeger_storage"]
    assert key_problems(data["config"]["types"], root, {"backends": backends}, "jaeger_storage") == []


def test_the_jaeger_check_rejects_a_backend_key_of_another_version():
    data = upstream("jaeger")
    root = data["config"]["components"]["extensions/jaeger_storage"]
    bad = {"backends": {"t": {"badger": {"ttl": {"spans": "72h"}, "directory_key": "/badger"}}}}
    assert key_problems(data["config"]["types"], root, bad, "s") == ["s.backends.t.badger.directory_key: no such key"]


# --- the metric catalog and the alert rules against what each source exposes -------------------


def reader_adds_no_suffixes(data: dict, config: dict) -> bool:
    """Whether every Prometheus pull reader in a collector config exposes names without the type
    and unit suffixes: settings it leaves unset take the defaults the collector applies."""
    defaults = data["telemetry"]["prometheus_reader_defaults"]
    readers = config["service"]["telemetry"]["metrics"]["readers"]
    assert readers
    for reader in readers:
        prom = reader["pull"]["exporter"]["prometheus"]
        if not all(prom.get(k, defaults[k]) for k in ("without_type_suffix", "without_units")):
            return False
    return True


def dcgm_counters_path(run: Run) -> str:
    """The counters file the DCGM exporter reads: -f/--collectors, DCGM_EXPORTER_COLLECTORS, or
    the image's default."""
    args = container_args(run, "gpu-exporter")
    chosen = flag_values(args, "collectors") + flag_values(args, "f")
    if chosen:
        return chosen[-1]
    default = upstream("dcgm_exporter")["default_counters_file"]
    return env_values(run, "gpu-exporter").get("DCGM_EXPORTER_COLLECTORS", default)


def csv_fields(text: str) -> list[str]:
    return [line.split(",")[0].strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def dcgm_fields(run: Run) -> list[str]:
    """The DCGM fields the exporter collects: from the file the program renders, or from the one
    the image ships at that path."""
    data = upstream("dcgm_exporter")
    path = dcgm_counters_path(run)
    rendered = container_files(run, "gpu-exporter")
    if path in rendered:
        return csv_fields(rendered[path])
    name = Path(path).name
    assert path == f"/etc/dcgm-exporter/{name}" and name in data["counters_files"], f"no such file in the image: {path}"
    return data["counters_files"][name]


@pytest.mark.parametrize("variant", ("kubernetes/dcgm", "docker/dcgm"))
def test_every_dcgm_field_collected_is_one_upstream_knows(stack_runs, variant):
    fields = dcgm_fields(gpu_run(stack_runs, variant))
    assert fields
    assert sorted(set(fields) - set(upstream("dcgm_exporter")["known_fields"])) == []


def exposed(stack_runs, source: str) -> tuple[set[str], tuple[str, ...]]:
    """(names, name prefixes) a catalog source exposes, from the upstream data."""
    if source == "prometheus":
        d = upstream("prometheus")
        return set(d["metrics"]) | set(d["process_metrics"]) | set(d["synthetic_metrics"]), ()
    if source == "alertmanager":
        d = upstream("alertmanager")
        return set(d["metrics"]) | set(d["process_metrics"]), ()
    if source in EXPORTERS:
        d = upstream(EXPORTERS[source])
        return set(d["metrics"]), tuple(d.get("metric_prefixes", []))
    if source == "gpu-exporter/dcgm":
        return set(dcgm_fields(stack_runs["prod"])), ()
    if source == "gpu-exporter/nvidia_smi":
        return set(upstream("nvidia_gpu_exporter")["metrics"]), ()
    if source == "loki":
        # A histogram is exposed as its buckets, count and sum (Loki's own data: loki.json).
        metrics = upstream("loki")["metrics"]
        return {f"{name}{suffix}" for name, kind in metrics.items()
                for suffix in (("_bucket", "_count", "_sum") if kind == "histogram" else ("",))}, ()
    if source in ("otel-collector", "jaeger"):
        data = upstream("collector" if source == "otel-collector" else "jaeger")
        for stack in STACKS:
            config = collector_config(stack_runs[stack]) if source == "otel-collector" else jaeger_config(stack_runs[stack])
            assert reader_adds_no_suffixes(data, config), (
                f"{stack}: the {source} reader adds suffixes; the upstream data lists the names without them"
            )
        return set(data["telemetry"]["exposed_metrics"]), ()
    raise KeyError(source)


CHECKED = (
    "prometheus", "alertmanager", "node-exporter", "cadvisor", "postgres-exporter", "redis-exporter",
    "gpu-exporter/dcgm", "gpu-exporter/nvidia_smi", "loki", "otel-collector", "jaeger",
)
# `application` is this project's own instrumentation contract, which no upstream defines. See
# tests/upstream/README.md.
UNCHECKED = ("application",)


@cache
def catalog() -> dict[str, list[str]]:
    return yaml.safe_load(CATALOG.read_text())


def test_every_catalog_section_is_checked_or_listed_as_unchecked():
    assert sorted(catalog()) == sorted(CHECKED + UNCHECKED)


def missing(names: Iterable[str], known: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n not in known and not n.startswith(prefixes))


@pytest.mark.parametrize("source", CHECKED)
def test_every_catalog_metric_is_exposed_upstream(stack_runs, source):
    known, prefixes = exposed(stack_runs, source)
    assert missing(catalog()[source], known, prefixes) == []


def test_the_catalog_check_rejects_suffixed_collector_names(stack_runs):
    known, _ = exposed(stack_runs, "otel-collector")
    assert "otelcol_receiver_accepted_spans" in known
    assert missing(["otelcol_receiver_accepted_spans_total"], known, ()) == ["otelcol_receiver_accepted_spans_total"]


# A rule's metric belongs to the job its selector names, else to the exporter its name starts with.
JOB_SOURCES = {
    "node-exporter": "node-exporter", "cadvisor": "cadvisor", "postgres-exporter": "postgres-exporter",
    "redis-exporter": "redis-exporter", "otel-collector": "otel-collector", "jaeger": "jaeger",
}
PREFIX_SOURCES = {
    "node_": "node-exporter", "container_": "cadvisor", "machine_": "cadvisor", "pg_": "postgres-exporter",
    "redis_": "redis-exporter", "DCGM_": "gpu-exporter/dcgm", "nvidia_smi_": "gpu-exporter/nvidia_smi",
    "otelcol_": "otel-collector", "otelcol.": "otel-collector",
}


def rule_metrics(expr: str) -> list[tuple[str, Optional[str]]]:
    """(metric name, job it is selected from) for every selector in a PromQL expression."""
    found: list = []
    promql_parser.walk(promql_parser.parse(expr), found.append)
    out = []
    for node in found:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            jobs = [m.value for m in node.matchers.matchers if m.name == "job" and str(m.op) == "MatchOp.Equal"]
            out.append((node.name, jobs[0] if jobs else None))
    return out


def rule_source(name: str, job: Optional[str]) -> Optional[str]:
    # up, scrape_duration_seconds and the like: Prometheus adds them to every target's series.
    if name in upstream("prometheus")["synthetic_metrics"]:
        return "prometheus"
    if job in JOB_SOURCES:
        return JOB_SOURCES[job]
    for prefix, source in PREFIX_SOURCES.items():
        if name.startswith(prefix):
            return source
    return None


def rendered_rules(run: Run) -> list[dict]:
    rules = []
    for path, text in container_files(run, "prometheus").items():
        if path.startswith(RULES_DIR) and path.endswith((".yml", ".yaml")):
            rules += [r for group in (yaml.safe_load(text) or {}).get("groups", []) for r in group["rules"]]
    return rules


@pytest.mark.parametrize("stack", STACKS)
def test_every_exporter_collector_and_jaeger_metric_in_the_rules_is_exposed_upstream(stack_runs, stack):
    problems = []
    for rule in rendered_rules(stack_runs[stack]):
        for name, job in rule_metrics(str(rule["expr"])):
            source = rule_source(name, job)
            if source is None:
                continue
            known, prefixes = exposed(stack_runs, source)
            if missing([name], known, prefixes):
                problems.append(f"{rule.get('alert') or rule.get('record')}: {name} ({source})")
    assert sorted(set(problems)) == []


def test_the_rule_check_attributes_metrics_to_their_jobs():
    assert rule_metrics('rate(otelcol_receiver_accepted_spans{job="jaeger"}[5m]) > 0') == [
        ("otelcol_receiver_accepted_spans", "jaeger")
    ]
    assert rule_source("otelcol_receiver_accepted_spans", "jaeger") == "jaeger"
    assert rule_source("node_load1", None) == "node-exporter"
    assert rule_source("http_requests_total", None) is None
    assert rule_source("up", "jaeger") == "prometheus"
