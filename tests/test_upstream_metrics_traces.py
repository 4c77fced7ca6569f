"""What the program renders for Prometheus, Alertmanager, the exporters, the collector and Jaeger,
and the metric names it expects of the cluster (kube-state-metrics, the kubelet, the API server,
CoreDNS), held against the upstream contract taken from their source at the pinned tags
(tests/upstream/, written by tests/upstream/extract_metrics_traces.py and
tests/upstream/extract_kubernetes.py; see tests/upstream/README.md).

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
    CONTROLLERS,
    ROOT,
    STACKS,
    Run,
    container_args,
    container_files,
    controller,
    merge,
    prometheus_config,
    run_program,
    scrape_jobs,
    stack_config,
    stack_secrets,
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


def collector_config(run: Run, service: str = "otel-collector") -> dict:
    return yaml.safe_load(container_files(run, service)[COLLECTOR_CONFIG])


def collector_configs(run: Run) -> dict[str, dict]:
    """The config of every collector workload: the one collector, or each tier of a scaled-out one."""
    return {s: collector_config(run, s) for s in run.outputs["services"]
            if s == "otel-collector" or s.startswith("otel-collector-")}


def jaeger_config(run: Run, service: str = "jaeger") -> dict:
    return yaml.safe_load(container_files(run, service)[JAEGER_CONFIG])


def jaeger_configs(run: Run) -> dict[str, dict]:
    """The config of every Jaeger workload: the one Jaeger, or each role's on a distributed store."""
    return {s: jaeger_config(run, s) for s in run.outputs["services"] if s == "jaeger" or s.startswith("jaeger-")}


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
    configs = collector_configs(stack_runs[stack])
    # prod runs the collector in two tiers: both configs are checked.
    assert len(configs) == (2 if stack == "prod" else 1)
    for service, config in configs.items():
        assert component_problems(upstream("collector"), config, available) == [], service


def test_the_collectors_token_check_is_in_the_contrib_image_with_upstream_keys():
    config = merge(stack_config("prod"), {"otel_collector": {"require_token": True}})
    run = run_program("prod", config, {**stack_secrets("prod"), "otlp_token": "t0ken"})
    available = {kind: distribution_types(kind) for kind in KINDS}
    rendered = collector_config(run)
    assert "bearertokenauth" in rendered["extensions"]
    assert component_problems(upstream("collector"), rendered, available) == []


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
    for service, config in jaeger_configs(stack_runs[stack]).items():
        assert component_problems(upstream("jaeger"), config, jaeger_available()) == [], service


@pytest.mark.parametrize("stack, backend", [("dev", "memory"), ("staging", "badger"), ("prod", "elasticsearch")])
def test_jaeger_storage_backend_keys_exist_upstream(stack_runs, stack, backend):
    data = upstream("jaeger")
    root = data["config"]["components"]["extensions/jaeger_storage"]
    for service, config in jaeger_configs(stack_runs[stack]).items():
        backends = config["extensions"]["jaeger_storage"]["backends"]
        assert [next(iter(b)) for b in backends.values()] == [backend], service
        assert key_problems(data["config"]["types"], root, {"backends": backends}, "jaeger_storage") == [], service


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


def with_suffixes(kinds: dict[str, str]) -> set[str]:
    """The series names of metrics by kind: a histogram is its buckets, count and sum; a summary
    its quantiles (the bare name), count and sum."""
    suffixes = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("", "_count", "_sum")}
    return {f"{name}{s}" for name, kind in kinds.items() for s in suffixes.get(kind, ("",))}


KSM = "kube-state-metrics"


def ksm_workload(run: Run) -> Optional[Any]:
    found = [r for r in run.resources if r.type in CONTROLLERS and r.name == KSM]
    return found[0] if found else None


def ksm_families(resources: Iterable[str], opted_in: Iterable[str] = ()) -> set[str]:
    """The metric families kube-state-metrics exposes when it watches `resources`: opt-in
    families only when named in --metric-opt-in-list."""
    resources, opted_in = set(resources), set(opted_in)
    return {name for name, info in upstream("kube_state_metrics")["metrics"].items()
            if info["resource"] in resources and (not info["opt_in"] or name in opted_in)}


def ksm_run_families(run: Run) -> set[str]:
    """What the stack's kube-state-metrics exposes on its metrics port: the families of the
    resources its --resources names (upstream's default set without one)."""
    args = container_args(run, KSM)
    chosen = [r for v in flag_values(args, "resources") for r in v.split(",") if r]
    opted = [m for v in flag_values(args, "metric-opt-in-list") for m in v.split(",") if m]
    return ksm_families(chosen or upstream("kube_state_metrics")["resources"]["default"], opted)


def ksm_scrapes_telemetry(run: Run) -> bool:
    """Whether the stack's Prometheus scrapes kube-state-metrics' telemetry port too (its own
    kube_state_metrics_* series): a kube-state-metrics job naming that port or its number."""
    port = upstream("kube_state_metrics")["server"]["telemetry_port"]
    return any(name.startswith(KSM) and ("telemetry" in yaml.safe_dump(job) or str(port) in yaml.safe_dump(job))
               for name, job in scrape_jobs(run).items())


def kubelet_cadvisor(run: Run) -> bool:
    """Whether the stack's `cadvisor` job scrapes the kubelet's embedded cAdvisor."""
    job = scrape_jobs(run).get("cadvisor") or {}
    return job.get("metrics_path") == "/metrics/cadvisor"


_EXPOSED: dict = {}


def exposed(stack_runs, source: str, stack: Optional[str] = None) -> tuple[set[str], tuple[str, ...]]:
    """(names, name prefixes) a catalog source exposes, from the upstream data. For the catalog
    (no stack), what every shipped stack exposes; for a stack's rules, what that stack does."""
    key = (id(stack_runs), source, stack)
    if key not in _EXPOSED:
        _EXPOSED[key] = _exposed(stack_runs, source, stack)
    return _EXPOSED[key]


def _exposed(stack_runs, source: str, stack: Optional[str]) -> tuple[set[str], tuple[str, ...]]:
    runs = [stack_runs[stack]] if stack else list(stack_runs.values())
    if source == "cadvisor":
        # On Kubernetes the `cadvisor` job reads the kubelet's cAdvisor, which serves fewer kinds.
        names = set(upstream("cadvisor")["metrics"])
        if any(kubelet_cadvisor(run) for run in runs):
            names &= set(upstream("kubernetes")["kubelet_cadvisor"]["metrics"])
        return names, ()
    if source == KSM:
        data = upstream("kube_state_metrics")
        deployed = [run for run in runs if ksm_workload(run) is not None]
        # Until a stack deploys it, the default resources: the workload's own test says it is missing.
        names = set.intersection(*(ksm_run_families(r) for r in deployed)) if deployed else ksm_families(data["resources"]["default"])
        if deployed and all(ksm_scrapes_telemetry(r) for r in deployed):
            names |= with_suffixes(data["telemetry_metrics"])
        return names, ()
    if source in ("kubelet", "apiserver"):
        data = upstream("kubernetes")
        return with_suffixes({n: i["kind"] for n, i in data[f"{source}_metrics"].items()}), tuple(data["metric_prefixes"])
    if source == "coredns":
        data = upstream("coredns")
        return with_suffixes({n: i["kind"] for n, i in data["metrics"].items()}) | with_suffixes(data["process_metrics"]), ()
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
            run = stack_runs[stack]
            configs = (collector_configs(run) if source == "otel-collector" else jaeger_configs(run)).values()
            for config in configs:
                assert reader_adds_no_suffixes(data, config), (
                    f"{stack}: the {source} reader adds suffixes; the upstream data lists the names without them"
                )
        return set(data["telemetry"]["exposed_metrics"]), ()
    raise KeyError(source)


CHECKED = (
    "prometheus", "alertmanager", "node-exporter", "cadvisor", "postgres-exporter", "redis-exporter",
    "gpu-exporter/dcgm", "gpu-exporter/nvidia_smi", "loki", "otel-collector", "jaeger",
    "kube-state-metrics", "kubelet", "apiserver", "coredns",
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
    "kube-state-metrics": "kube-state-metrics", "kubelet": "kubelet", "apiserver": "apiserver", "coredns": "coredns",
}
# Prefixes one producer owns. `kubelet_` is not `kube_` (kube-state-metrics). Shared names stay
# out: rest_client_, workqueue_, process_, go_ (every Kubernetes component and Go exporter), etcd_
# (the API server's storage client and etcd itself), kubernetes_ (every Kubernetes component):
# a rule naming them is checked only through its job selector.
PREFIX_SOURCES = {
    "node_": "node-exporter", "container_": "cadvisor", "machine_": "cadvisor", "pg_": "postgres-exporter",
    "redis_": "redis-exporter", "DCGM_": "gpu-exporter/dcgm", "nvidia_smi_": "gpu-exporter/nvidia_smi",
    "otelcol_": "otel-collector", "otelcol.": "otel-collector",
    "kube_": "kube-state-metrics", "kubelet_": "kubelet", "apiserver_": "apiserver", "coredns_": "coredns",
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
            known, prefixes = exposed(stack_runs, source, stack)
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


def test_the_rule_check_attributes_cluster_metrics_to_their_producers():
    assert rule_source("kube_pod_status_phase", None) == "kube-state-metrics"
    assert rule_source("kubelet_volume_stats_available_bytes", None) == "kubelet"
    assert rule_source("apiserver_request_total", None) == "apiserver"
    assert rule_source("coredns_dns_responses_total", None) == "coredns"
    # Names several producers share are checked through the job only.
    for shared in ("rest_client_requests_total", "workqueue_depth", "etcd_request_duration_seconds_bucket",
                   "process_resident_memory_bytes", "kubernetes_build_info"):
        assert rule_source(shared, None) is None, shared
    assert rule_source("rest_client_requests_total", "apiserver") == "apiserver"
    assert rule_source("process_resident_memory_bytes", "coredns") == "coredns"


# --- the cluster's producers: kube-state-metrics, the kubelet, the API server, CoreDNS ------------


def test_the_checks_reject_kube_state_metrics_names_upstream_lacks():
    default = upstream("kube_state_metrics")["resources"]["default"]
    known = ksm_families(default)
    assert missing(["kube_pod_status_phase", "kube_deployment_status_replicas_available"], known, ()) == []
    assert missing(["kube_pod_status_phases"], known, ()) == ["kube_pod_status_phases"]
    # A family of a resource the workload does not watch is not exposed.
    assert missing(["kube_secret_info"], ksm_families(["pods"]), ()) == ["kube_secret_info"]
    # Opt-in families only when opted in.
    opt_in = sorted(n for n, i in upstream("kube_state_metrics")["metrics"].items() if i["opt_in"])
    assert opt_in
    resources = [upstream("kube_state_metrics")["metrics"][opt_in[0]]["resource"]]
    assert missing(opt_in[:1], ksm_families(resources), ()) == opt_in[:1]
    assert missing(opt_in[:1], ksm_families(resources, opt_in[:1]), ()) == []


def test_the_checks_reject_kubelet_and_api_server_names_upstream_lacks(stack_runs):
    known, prefixes = exposed(stack_runs, "kubelet")
    assert missing(["kubelet_volume_stats_available_bytes", "kubelet_pleg_relist_duration_seconds_bucket",
                    "go_goroutines"], known, prefixes) == []
    # A histogram is its buckets, count and sum; the bare name is no series.
    bad = ["kubelet_pleg_relist_duration_seconds", "kubelet_volume_stats_available", "kube_node_info"]
    assert missing(bad, known, prefixes) == sorted(bad)
    known, prefixes = exposed(stack_runs, "apiserver")
    assert missing(["apiserver_request_total", "apiserver_request_duration_seconds_count"], known, prefixes) == []
    # apiserver_request_count: the name before Kubernetes 1.14.
    assert missing(["apiserver_request_count"], known, prefixes) == ["apiserver_request_count"]


def test_the_checks_reject_coredns_names_upstream_lacks(stack_runs):
    known, _ = exposed(stack_runs, "coredns")
    assert missing(["coredns_dns_responses_total", "coredns_dns_request_duration_seconds_bucket",
                    "coredns_forward_healthcheck_broken_total", "process_start_time_seconds"], known, ()) == []
    # Names of older releases: the forward plugin's request counter moved to coredns_proxy_*.
    bad = ["coredns_forward_requests_total", "coredns_dns_response_rcode_count_total"]
    assert missing(bad, known, ()) == sorted(bad)


def test_the_kubelets_cadvisor_lacks_kinds_the_standalone_one_serves():
    kubelet = set(upstream("kubernetes")["kubelet_cadvisor"]["metrics"])
    standalone = set(upstream("cadvisor")["metrics"])
    assert {"container_cpu_usage_seconds_total", "container_memory_working_set_bytes"} <= kubelet
    # Pressure (PSI), per-CPU and scheduler kinds: the kubelet does not include them.
    for name in ("container_pressure_cpu_stalled_seconds_total", "container_cpu_schedstat_run_seconds_total"):
        assert name in standalone and name not in kubelet, name


KUBERNETES_STACKS = tuple(s for s in STACKS if stack_config(s)["platform"] == "kubernetes")


def granted_rules(run: Run, service: str) -> list[dict]:
    """The RBAC rules bound to a workload's service account: its ClusterRoles and Roles."""
    pod = controller(run, service).inputs["spec"]["template"]["spec"]
    account = pod.get("serviceAccountName")
    assert account, f"{run.stack}: {service} runs as no service account of its own"
    rules = []
    for binding_type, role_type in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        roles = {r.inputs["metadata"]["name"]: r.inputs for r in run.of_type(f"kubernetes:rbac.authorization.k8s.io/v1:{role_type}")}
        for binding in run.of_type(f"kubernetes:rbac.authorization.k8s.io/v1:{binding_type}"):
            subjects = binding.inputs.get("subjects") or []
            if any(s.get("kind") == "ServiceAccount" and s.get("name") == account for s in subjects):
                ref = binding.inputs["roleRef"]["name"]
                assert ref in roles, f"{run.stack}: {binding.name} binds {ref}, which the program does not create"
                rules += roles[ref].get("rules") or []
    return rules


def ksm_access_problems(args: list[str], rules: list[dict]) -> list[str]:
    """The kube-state-metrics workload against upstream: every flag exists; every --resources
    value is one it accepts; its rules grant list and watch on exactly the group/resource of
    each chosen resource (and the reviews --auth-filter creates, with that flag only)."""
    data = upstream("kube_state_metrics")
    problems = [f"{a}: no such flag" for a in unknown_flags(args, data["flags"])]
    values = flag_values(args, "resources")
    chosen = [r for v in values for r in v.split(",") if r] if values else data["resources"]["default"]
    problems += [f"--resources={r}: not a resource kube-state-metrics accepts" for r in chosen
                 if r not in data["resources"]["accepted"]]
    expected = {(api["group"], api["resource"]): set(api["verbs"])
                for r, api in data["resources"]["api"].items() if r in chosen}
    if any(flag_name(a) == "auth-filter" and a.split("=", 1)[-1] != "false" for a in args):
        for rule in data["resources"]["auth_filter_rules"]:
            expected[(rule["group"], rule["resource"])] = set(rule["verbs"])
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        if rule.get("nonResourceURLs") or rule.get("resourceNames"):
            problems.append(f"{rule}: kube-state-metrics reads no URL and no single object")
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                granted.setdefault((group, resource), set()).update(rule.get("verbs") or [])
    for key in sorted(set(granted) | set(expected)):
        group, resource = key
        where = f"{group or 'core'}/{resource}"
        if key not in expected:
            problems.append(f"{where}: granted ({sorted(granted[key])}), but no chosen resource lists it")
        elif key not in granted:
            problems.append(f"{where}: not granted, and kube-state-metrics lists and watches it")
        elif granted[key] != expected[key]:
            problems.append(f"{where}: verbs {sorted(granted[key])}, upstream needs {sorted(expected[key])}")
    return problems


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_kube_state_metrics_resources_rbac_and_flags_match_upstream(stack_runs, stack):
    run = stack_runs[stack]
    if ksm_workload(run) is None:
        pytest.fail(f"{stack}: no {KSM} workload (a Deployment, StatefulSet or DaemonSet named {KSM}): "
                    "the Kubernetes stacks scrape it for the cluster's object metrics")
    args = container_args(run, KSM)
    assert flag_values(args, "resources"), f"{stack}: {KSM} watches upstream's whole default set without --resources"
    assert ksm_access_problems(args, granted_rules(run, KSM)) == []


def test_the_kube_state_metrics_access_check_rejects_what_upstream_does_not_need():
    def rule(group: str, *resources: str, verbs=("list", "watch")) -> dict:
        return {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}

    args = ["--resources=pods,deployments"]
    good = [rule("", "pods"), rule("apps", "deployments")]
    assert ksm_access_problems(args, good) == []
    assert ksm_access_problems(["--resources=pods,deployment"], good) == [
        "--resources=deployment: not a resource kube-state-metrics accepts",
        "apps/deployments: granted (['list', 'watch']), but no chosen resource lists it",
    ]
    # In the wrong group, an extra verb, a resource too many, one missing, a flag upstream lacks.
    assert ksm_access_problems(args, [rule("", "pods"), rule("extensions", "deployments")]) == [
        "apps/deployments: not granted, and kube-state-metrics lists and watches it",
        "extensions/deployments: granted (['list', 'watch']), but no chosen resource lists it",
    ]
    assert ksm_access_problems(args, [rule("", "pods", verbs=("get", "list", "watch")), rule("apps", "deployments")]) == [
        "core/pods: verbs ['get', 'list', 'watch'], upstream needs ['list', 'watch']",
    ]
    assert ksm_access_problems(args, good + [rule("", "secrets")]) == [
        "core/secrets: granted (['list', 'watch']), but no chosen resource lists it",
    ]
    assert ksm_access_problems([*args, "--telemetry-ports=8081"], good) == ["--telemetry-ports=8081: no such flag"]
    # --auth-filter makes kube-state-metrics create token and access reviews: allowed with it only.
    reviews = [rule("authentication.k8s.io", "tokenreviews", verbs=("create",)),
               rule("authorization.k8s.io", "subjectaccessreviews", verbs=("create",))]
    assert ksm_access_problems([*args, "--auth-filter"], good + reviews) == []
    assert len(ksm_access_problems(args, good + reviews)) == 2
