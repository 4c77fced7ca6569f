"""The alert catalog: its conventions, its metrics, per-stack tuning, and its promtool unit tests.

Checked over configs/alerts/catalog.yml itself and over the catalog.yml each stack renders for
Prometheus. Rule tests that need an exporter not every stack deploys are named
tests/rules/<domain>.<requirement>[+<requirement>...].rules-test.yml (the generic *_test.yml runner
in test_prometheus.py leaves them alone); the runner here gives each to the stacks that deploy
every requirement it names, a platform (platform-docker, platform-kubernetes) included.
"""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from functools import cache
from pathlib import Path

import promql_parser
import pytest
import yaml

from components.alerting.alert_rules import PLATFORMS
from components.settings import ConfigError, milliseconds
from conftest import (
    ROOT,
    STACKS,
    Run,
    container_args,
    container_files,
    merge,
    prometheus_config,
    require_tool,
    run_program,
    scrape_jobs,
    stack_config,
    stack_secrets,
)

CATALOG = ROOT / "configs" / "alerts" / "catalog.yml"
METRICS = ROOT / "configs" / "metrics" / "catalog.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
RULE_TESTS = ROOT / "tests" / "rules"
RULES_PATH = "/etc/prometheus/rules/catalog.yml"
SEVERITIES = {"critical", "warning", "info"}
COMPARISONS = {">", "<", ">=", "<=", "==", "!="}
RANGE_FUNCTIONS = re.compile(r"\b(rate|irate|increase|changes|resets|deriv|predict_linear|[a-z]+_over_time)\(")
# The scrape jobs of the cluster itself on Kubernetes, each named after what it scrapes (the
# producers of configs/metrics/catalog.yml), and kube-state-metrics, which the stack runs there.
KUBERNETES_PRODUCERS = ("kube-state-metrics", "kubelet", "cadvisor", "apiserver", "coredns")


# --- reading the catalog and what a stack renders ------------------------------------------------


@cache
def catalog_entries() -> tuple[dict, ...]:
    document = yaml.safe_load(CATALOG.read_text())
    return tuple({**entry, "group": group["name"]} for group in document["groups"] for entry in group["alerts"])


@cache
def metric_producers() -> dict[str, frozenset[str]]:
    """configs/metrics/catalog.yml: producer -> the metrics it exports."""
    return {producer: frozenset(names) for producer, names in yaml.safe_load(METRICS.read_text()).items()}


def runbook_headings() -> set[str]:
    return {line[3:].strip() for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}


def rendered_text(run: Run) -> str:
    return container_files(run, "prometheus")[RULES_PATH]


def rendered_rules(run: Run) -> list[dict]:
    return [rule for group in yaml.safe_load(rendered_text(run))["groups"] for rule in group["rules"]]


def alertnames(run: Run) -> set[str]:
    return {rule["alert"] for rule in rendered_rules(run)}


def rules_of(run: Run, alertname: str) -> list[dict]:
    return [rule for rule in rendered_rules(run) if rule["alert"] == alertname]


def dev_with(override: dict) -> Run:
    return run_program("dev", merge(stack_config("dev"), override))


def slow_dev_with(override: dict) -> Run:
    """dev with `override`, without its objectives: their 5m windows need scrapes every 75s or
    faster, which the slow scrape intervals below are not (tests/alerting/test_slos.py)."""
    config = stack_config("dev")
    del config["slos"]
    return run_program("dev", merge(config, override))


def dev_with_alerts(alerts: dict) -> Run:
    return dev_with({"alerts": alerts})


def platform_of(run: Run) -> str:
    """The platform the run deployed to: kubernetes if it registered a Kubernetes resource."""
    return "kubernetes" if any(r.type.startswith("kubernetes:") for r in run.resources) else "docker"


def deployed_producers(run: Run) -> set[str]:
    """What the stack deploys, in the terms of `requires` and configs/metrics/catalog.yml: its
    services; the scrape jobs of its rendered prometheus.yml that are named after a producer (the
    cluster's own on Kubernetes: kubelet, cadvisor, apiserver, coredns), so this follows the
    render; and its platform."""
    services = set(run.outputs["services"]) | (set(scrape_jobs(run)) & set(metric_producers()))
    services.add(f"platform/{platform_of(run)}")
    if "gpu-exporter" in services:
        exporter = stack_config(run.stack).get("exporters", {}).get("gpu", {}).get("exporter", "dcgm")
        services.add(f"gpu-exporter/{exporter}")
    return services


# --- reading PromQL ------------------------------------------------------------------------------


def nodes(expr: str) -> list:
    found = []
    promql_parser.walk(promql_parser.parse(expr), lambda node: found.append(node))
    return found


def metric_names(expr: str) -> set[str]:
    return {n.name for n in nodes(expr) if isinstance(n, promql_parser.VectorSelector) and n.name}


def windows(expr: str) -> list[timedelta]:
    return [n.range for n in nodes(expr) if isinstance(n, (promql_parser.MatrixSelector, promql_parser.SubqueryExpr))]


def _unwrap(node):
    while isinstance(node, promql_parser.ParenExpr):
        node = node.expr
    return node


def compares_against_a_number(expr: str) -> bool:
    return any(
        isinstance(n, promql_parser.BinaryExpr)
        and str(n.op) in COMPARISONS
        and (isinstance(_unwrap(n.lhs), promql_parser.NumberLiteral) or isinstance(_unwrap(n.rhs), promql_parser.NumberLiteral))
        for n in nodes(expr)
    )


def unproduced(expr: str, producers: set[str]) -> set[str]:
    """The metrics `expr` names that neither `producers` nor the application instrumentation export."""
    known = set(metric_producers()["application"])
    for producer in producers:
        known |= metric_producers().get(producer, frozenset())
    return metric_names(expr) - known


# --- the rules as the catalog states them and as each stack renders them -------------------------


def catalog_view() -> list[dict]:
    return [
        {
            "alert": e.get("alert", e["name"]),
            "name": e["name"],
            "severity": e["severity"],
            "summary": e["summary"],
            "description": e["description"],
            "for": e.get("for"),
        }
        for e in catalog_entries()
    ]


def rendered_view(run: Run) -> list[dict]:
    return [
        {
            "alert": r["alert"],
            "name": r["alert"],
            "severity": r["labels"]["severity"],
            "summary": r["annotations"]["summary"],
            "description": r["annotations"]["description"],
            "for": r.get("for"),
        }
        for r in rendered_rules(run)
    ]


SOURCES = ["catalog", *STACKS]


@pytest.fixture
def view(request, stack_runs) -> list[dict]:
    source = request.param
    return catalog_view() if source == "catalog" else rendered_view(stack_runs[source])


def with_sources(test):
    return pytest.mark.parametrize("view", SOURCES, indirect=True)(test)


# --- conventions ---------------------------------------------------------------------------------


@with_sources
def test_alertnames_and_catalog_names_are_camel_case(view):
    for rule in view:
        for name in (rule["alert"], rule["name"]):
            assert re.fullmatch(r"(?:[A-Z][a-z0-9]*)+", name), name


@with_sources
def test_severity_is_critical_warning_or_info(view):
    assert {rule["severity"] for rule in view} <= SEVERITIES


@with_sources
def test_summary_is_static_and_description_locates_the_problem(view):
    for rule in view:
        assert "{{" not in rule["summary"], rule["alert"]
        if rule["alert"] != "Watchdog":
            assert "{{ $labels." in rule["description"], rule["alert"]


@with_sources
def test_every_alertname_has_a_runbook_section(view):
    missing = {rule["alert"] for rule in view} - runbook_headings()
    assert not missing


@with_sources
def test_every_alert_but_the_watchdog_waits_before_firing(view):
    for rule in view:
        if rule["alert"] == "Watchdog":
            assert rule["for"] is None
        else:
            assert rule["for"] and milliseconds(rule["for"]) > 0, rule["alert"]


def test_catalog_names_are_unique_so_overrides_are_unambiguous():
    names = [e["name"] for e in catalog_entries()]
    assert len(names) == len(set(names))


def test_catalog_exprs_use_the_threshold_and_window_placeholders():
    for e in catalog_entries():
        if e["name"] == "Watchdog":
            continue
        assert isinstance(e["threshold"], (int, float)), e["name"]
        assert re.search(r"(>|<|>=|<=|==|!=)\s*\$\{threshold\}", e["expr"]), e["name"]
        # Every range is the rendered window: no literal [5m] that ignores the scrape interval.
        # Only the history predict_linear extrapolates is literal, in whole hours.
        ranges = re.findall(r"\[([^\]]*)\]", e["expr"])
        for history in re.findall(r"predict_linear\([^\[\]]*\[([^\]]*)\]", e["expr"]):
            assert re.fullmatch(r"[1-9][0-9]*h", history), e["name"]
            ranges.remove(history)
        assert set(ranges) <= {"${window}"}, e["name"]


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_runbook_urls_point_at_the_alerts_section(stack_runs, stack):
    headings = {heading.lower(): heading for heading in runbook_headings()}
    for rule in rendered_rules(stack_runs[stack]):
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/runbook.md#{rule['alert'].lower()}"
        assert headings[url.split("#")[1]] == rule["alert"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_alert_but_the_watchdog_compares_against_a_threshold(stack_runs, stack):
    for rule in rendered_rules(stack_runs[stack]):
        assert compares_against_a_number(rule["expr"]) == (rule["alert"] != "Watchdog"), rule["alert"]


def test_a_comparison_between_two_series_is_not_a_threshold():
    assert not compares_against_a_number("node_memory_MemAvailable_bytes < node_memory_MemTotal_bytes")
    assert compares_against_a_number("(rate(x[5m])) > (0.5)")


def range_windows(run: Run) -> list[timedelta]:
    found = []
    for rule in rendered_rules(run):
        # Every range function has its window, and nothing else has one.
        assert len(RANGE_FUNCTIONS.findall(rule["expr"])) == len(windows(rule["expr"])), rule["alert"]
        found += windows(rule["expr"])
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_rate_windows_span_at_least_four_scrapes(stack_runs, stack):
    run = stack_runs[stack]
    scrape = timedelta(milliseconds=milliseconds(prometheus_config(run)["global"]["scrape_interval"]))
    found = range_windows(run)
    assert found and all(window >= 4 * scrape for window in found)


def test_a_2m_scrape_interval_gives_8m_windows():
    run = slow_dev_with({"prometheus": {"scrape_interval": "2m"}})
    assert set(range_windows(run)) == {timedelta(minutes=8)}
    assert "[8m]" in rendered_text(run)


# --- metrics -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_metric_an_alert_names_is_produced_by_what_the_stack_deploys(stack_runs, stack):
    run = stack_runs[stack]
    producers = deployed_producers(run)
    for rule in rendered_rules(run):
        assert not unproduced(rule["expr"], producers), rule["alert"]


def test_the_metric_check_rejects_a_metric_nobody_produces():
    assert unproduced("rate(http_requests_total[5m]) / rate(made_up_requests_total[5m]) > 1", {"prometheus"}) == {
        "made_up_requests_total"
    }


def test_the_metric_check_rejects_a_metric_of_an_exporter_the_stack_does_not_deploy():
    assert unproduced("pg_up == 0", {"prometheus", "node-exporter"}) == {"pg_up"}
    assert unproduced("DCGM_FI_DEV_GPU_TEMP > 85", {"gpu-exporter", "gpu-exporter/nvidia_smi"}) == {"DCGM_FI_DEV_GPU_TEMP"}
    assert unproduced("pg_up == 0", {"postgres-exporter"}) == set()


def test_requires_names_every_producer_an_alerts_metrics_come_from():
    """So no stack renders an alert without what feeds it: beyond the application and Prometheus
    itself, an alert's metrics come from what its `requires` lists, and that names real producers."""
    for e in catalog_entries():
        requires = set(e.get("requires", ()))
        assert requires <= (set(metric_producers()) - {"application"}) | set(PLATFORMS), e["name"]
        expr = e["expr"].replace("${threshold}", "0").replace("${window}", "5m")
        assert not unproduced(expr, requires | {"prometheus"}), e["name"]


# --- per-stack tuning ----------------------------------------------------------------------------


def without(rules: list[dict], alertname: str) -> list[dict]:
    return [rule for rule in rules if rule["alert"] != alertname]


def test_a_threshold_override_changes_exactly_that_alerts_expr(stack_runs):
    default = rendered_rules(stack_runs["dev"])
    tuned = rendered_rules(dev_with_alerts({"overrides": {"HostHighCpu": {"threshold": 75}}}))
    assert without(tuned, "HostHighCpu") == without(default, "HostHighCpu")
    [before] = [r for r in default if r["alert"] == "HostHighCpu"]
    [after] = [r for r in tuned if r["alert"] == "HostHighCpu"]
    assert "> 90" in before["expr"]
    assert after == {**before, "expr": before["expr"].replace("> 90", "> 75")}


def test_a_for_override_changes_that_alerts_for(stack_runs):
    default = rendered_rules(stack_runs["dev"])
    tuned = rendered_rules(dev_with_alerts({"overrides": {"HttpErrorRateHigh": {"for": "30m"}}}))
    assert without(tuned, "HttpErrorRateHigh") == without(default, "HttpErrorRateHigh")
    [before] = [r for r in default if r["alert"] == "HttpErrorRateHigh"]
    [after] = [r for r in tuned if r["alert"] == "HttpErrorRateHigh"]
    assert before["for"] == "10m"
    assert after == {**before, "for": "30m"}


def test_a_severity_override_changes_that_alerts_severity(stack_runs):
    default = rendered_rules(stack_runs["dev"])
    tuned = rendered_rules(dev_with_alerts({"overrides": {"JaegerNotReceivingSpans": {"severity": "warning"}}}))
    assert without(tuned, "JaegerNotReceivingSpans") == without(default, "JaegerNotReceivingSpans")
    [before] = [r for r in default if r["alert"] == "JaegerNotReceivingSpans"]
    [after] = [r for r in tuned if r["alert"] == "JaegerNotReceivingSpans"]
    assert before["labels"] == {"severity": "info"}
    assert after == {**before, "labels": {"severity": "warning"}}


def test_disabling_an_alert_removes_it_and_nothing_else(stack_runs):
    default = rendered_rules(stack_runs["dev"])
    tuned = rendered_rules(dev_with_alerts({"overrides": {"LlmCostPerHourHigh": {"enabled": False}}}))
    assert tuned == without(default, "LlmCostPerHourHigh")
    assert len(tuned) == len(default) - 1


def test_disabling_one_level_keeps_the_other_level_of_the_alertname(stack_runs):
    tuned = dev_with_alerts({"overrides": {"ModelDriftCritical": {"enabled": False}}})
    assert [r["labels"]["severity"] for r in rules_of(tuned, "ModelDrift")] == ["warning"]
    assert [r["labels"]["severity"] for r in rules_of(stack_runs["dev"], "ModelDrift")] == ["warning", "critical"]


def test_an_unknown_alert_in_overrides_fails_before_any_resource():
    run = Run("dev")
    config = merge(stack_config("dev"), {"alerts": {"overrides": {"HostHighCpuu": {"threshold": 80}}}})
    with pytest.raises(ConfigError) as error:
        run_program("dev", config, run=run)
    assert "key 'alerts.overrides.HostHighCpuu'" in str(error.value)
    assert run.resources == [], "resources were registered before the configuration was rejected"


def test_an_override_of_an_alert_whose_exporter_is_not_deployed_changes_nothing(stack_runs):
    tuned = dev_with_alerts({"overrides": {"PostgresDown": {"for": "10m"}, "GpuTemperatureHighDcgm": {"threshold": 70}}})
    assert rendered_text(tuned) == rendered_text(stack_runs["dev"])


def test_the_runbook_base_url_applies_to_every_alert(stack_runs):
    tuned = rendered_rules(dev_with_alerts({"runbook_url": "https://runbooks.example/obs.md"}))
    assert len(tuned) == len(rendered_rules(stack_runs["dev"]))
    for rule in tuned:
        assert rule["annotations"]["runbook_url"] == f"https://runbooks.example/obs.md#{rule['alert'].lower()}"


def test_a_large_threshold_is_rendered_exactly():
    """Not 1.23457e+06 (1234570), as six significant digits would give."""
    tuned = dev_with_alerts({"overrides": {"HttpTooManyRequestsInProgress": {"threshold": 1234567}}})
    [rule] = rules_of(tuned, "HttpTooManyRequestsInProgress")
    assert rule["expr"].rstrip().endswith("> 1234567")


def test_windows_span_four_scrapes_of_a_target_with_a_longer_interval():
    """The api job scraped every 2m gets 8m windows, not 5m (2.5 scrapes)."""
    api = {**stack_config("dev")["prometheus"]["scrape_targets"][0], "interval": "2m"}
    [rule] = rules_of(slow_dev_with({"prometheus": {"scrape_targets": [api]}}), "HttpErrorRateHigh")
    assert all(window >= timedelta(minutes=8) for window in windows(rule["expr"]))


# --- requires ------------------------------------------------------------------------------------


def gpu_metrics(run: Run) -> set[str]:
    return set().union(*(metric_names(r["expr"]) for r in rendered_rules(run) if r["alert"].startswith("Gpu")))


def test_dev_renders_no_database_or_gpu_alerts(stack_runs):
    names = alertnames(stack_runs["dev"])
    assert not {n for n in names if n.startswith(("Postgres", "Redis", "Gpu"))}
    assert {"ServiceDown", "HostHighCpu", "ContainerRestarting", "HttpErrorRateHigh"} <= names


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_stacks_with_databases_render_their_alerts(stack_runs, stack):
    names = alertnames(stack_runs[stack])
    assert {"PostgresDown", "PostgresTooManyConnections", "PostgresConnectionPoolExhausted",
            "PostgresLowCacheHitRatio", "RedisDown", "RedisMemoryHigh", "RedisEvictions",
            "RedisLowKeyspaceHitRate"} <= names


@pytest.mark.parametrize("stack, exporter_metrics, other_prefix", [
    ("staging", metric_producers()["gpu-exporter/nvidia_smi"], "DCGM_"),
    ("prod", metric_producers()["gpu-exporter/dcgm"], "nvidia_smi_"),
])
def test_gpu_alerts_come_from_the_stacks_gpu_exporter_only(stack_runs, stack, exporter_metrics, other_prefix):
    run = stack_runs[stack]
    gpu_rules = [r for r in rendered_rules(run) if r["alert"].startswith("Gpu")]
    assert sorted(r["alert"] for r in gpu_rules) == ["GpuHighUtilization", "GpuMemoryHigh", "GpuTemperatureHigh"]
    assert gpu_metrics(run) and gpu_metrics(run) <= exporter_metrics
    assert not any(m.startswith(other_prefix) for m in gpu_metrics(run))


# --- promtool ------------------------------------------------------------------------------------


def promtool_test(promtool: str, directory: Path, catalog: str, test_name: str, test_text: str):
    (directory / "catalog.yml").write_text(catalog)
    (directory / test_name).write_text(test_text)
    return subprocess.run([promtool, "test", "rules", test_name], cwd=directory, capture_output=True, text=True)


HOST_CPU_TEST = """
rule_files: [catalog.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'node_cpu_seconds_total{job="node-exporter", instance="n1", cpu="0", mode="idle"}'
        values: '0+3x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: HostHighCpu
        exp_alerts: %s
"""
FIRING = """
          - exp_labels: {severity: warning, job: node-exporter, instance: n1}
            exp_annotations:
              summary: A host's CPUs are nearly always busy.
              description: n1 has used 95% of its CPU time.
              runbook_url: docs/runbook.md#hosthighcpu"""


def test_a_raised_threshold_keeps_an_input_quiet_that_fires_at_the_default(stack_runs, tmp_path):
    """95% busy fires HostHighCpu at the default 90 and stays quiet once dev raises it to 97."""
    promtool = require_tool("promtool")
    default = rendered_text(stack_runs["dev"])
    raised = rendered_text(dev_with_alerts({"overrides": {"HostHighCpu": {"threshold": 97}}}))
    for catalog, expected in ((default, FIRING), (raised, "[]")):
        result = promtool_test(promtool, tmp_path, catalog, "cpu_test.yml", HOST_CPU_TEST % expected)
        assert result.returncode == 0, f"{expected}:\n{result.stdout}{result.stderr}"
    # The same expectations the other way round fail: the test can tell them apart.
    result = promtool_test(promtool, tmp_path, raised, "cpu_test.yml", HOST_CPU_TEST % FIRING)
    assert result.returncode != 0


def test_promtool_accepts_a_catalog_with_every_kind_of_override(tmp_path):
    promtool = require_tool("promtool")
    run = slow_dev_with({
        "prometheus": {"scrape_interval": "2m", "evaluation_interval": "1m"},
        "alerts": {"runbook_url": "https://runbooks.example/obs.md", "overrides": {
            "HostHighCpu": {"threshold": 97.5},
            "HttpErrorRateHigh": {"for": "1h"},
            "JaegerNotReceivingSpans": {"severity": "warning"},
            "ModelDriftCritical": {"enabled": False},
        }},
    })
    (tmp_path / "catalog.yml").write_text(rendered_text(run))
    result = subprocess.run([promtool, "check", "rules", "catalog.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rendered_rules(run))} rules found" in result.stdout


# --- the rule tests: which stacks run which, and that every alert is tested ----------------------

REQUIREMENT_TEST = re.compile(
    r"^(?P<domain>[a-z]+(?:-[a-z]+)*)\.(?P<requirements>[a-z0-9_-]+(?:\+[a-z0-9_-]+)*)\.rules-test\.yml$"
)
REQUIREMENT_TESTS = sorted(RULE_TESTS.glob("*.rules-test.yml"))
PLAIN_TESTS = sorted(RULE_TESTS.glob("*_test.yml"))


def requirements(path: Path) -> frozenset[str]:
    """What a requirement file needs deployed, as `requires` names it: the producers of
    configs/metrics/catalog.yml and the platforms, `/` written as `-`, joined by `+`.
    gpu.gpu-exporter-dcgm.rules-test.yml -> {gpu-exporter/dcgm};
    containers.cadvisor+platform-docker.rules-test.yml -> {cadvisor, platform/docker}."""
    match = REQUIREMENT_TEST.match(path.name)
    assert match, f"{path.name}: name it <domain>.<requirement>[+<requirement>...].rules-test.yml"
    known = {name.replace("/", "-"): name for name in (*metric_producers(), *PLATFORMS)}
    found = set()
    for name in match["requirements"].split("+"):
        assert name in known, f"{path.name}: {name} is no producer in configs/metrics/catalog.yml, nor a platform"
        found.add(known[name])
    return frozenset(found)


def cases_by_alertname(path: Path) -> dict[str, dict[str, list]]:
    """alertname -> {"firing": [exp_alerts...], "quiet": [...]} over the file's test cases."""
    found: dict[str, dict[str, list]] = {}
    for case in yaml.safe_load(path.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            kind = "firing" if check.get("exp_alerts") else "quiet"
            found.setdefault(check["alertname"], {"firing": [], "quiet": []})[kind].append(check.get("exp_alerts") or [])
    return found


def selected_for(producers: set[str]) -> list[Path]:
    """The requirement files whose every requirement is deployed."""
    return [path for path in REQUIREMENT_TESTS if requirements(path) <= producers]


def selected(run: Run) -> list[Path]:
    return selected_for(deployed_producers(run))


def test_requirement_specific_rule_tests_are_not_picked_up_by_the_generic_runner():
    assert REQUIREMENT_TESTS
    assert not set(REQUIREMENT_TESTS) & set(PLAIN_TESTS)
    assert {p.name for p in RULE_TESTS.glob("*.yml")} == {p.name for p in (*REQUIREMENT_TESTS, *PLAIN_TESTS)}


KUBERNETES_TESTS = {
    "kubernetes-workloads.kube-state-metrics", "kubernetes-storage.kube-state-metrics",
    "kubernetes-storage.kubelet+kube-state-metrics", "kubernetes-nodes.kube-state-metrics",
    "kubernetes-nodes.kubelet", "kubernetes-control-plane.apiserver", "kubernetes-control-plane.coredns",
}


@pytest.mark.parametrize("stack, expected", [
    ("dev", {"hosts.node-exporter", "containers.cadvisor+platform-docker"}),
    ("staging", {"hosts.node-exporter", "containers.cadvisor+platform-kubernetes", "postgresql.postgres-exporter",
                 "redis.redis-exporter", "gpu.gpu-exporter-nvidia_smi", *KUBERNETES_TESTS}),
    ("prod", {"hosts.node-exporter", "containers.cadvisor+platform-kubernetes", "postgresql.postgres-exporter",
              "redis.redis-exporter", "gpu.gpu-exporter-dcgm", *KUBERNETES_TESTS}),
])
def test_each_stack_runs_the_rule_tests_of_what_it_renders(stack_runs, stack, expected):
    assert {path.name.removesuffix(".rules-test.yml") for path in selected(stack_runs[stack])} == expected


@pytest.mark.parametrize("stack", STACKS)
def test_requirement_specific_rule_tests_pass_against_the_stacks_rendered_catalog(stack_runs, stack, tmp_path):
    promtool = require_tool("promtool")
    run = stack_runs[stack]
    catalog = rendered_text(run)
    for path in selected(run):
        # promtool counts an alertname it does not know as quiet: every tested one must be rendered.
        assert set(cases_by_alertname(path)) <= alertnames(run), path.name
        result = promtool_test(promtool, tmp_path, catalog, path.name, path.read_text())
        assert result.returncode == 0, f"{stack} {path.name}:\n{result.stdout}{result.stderr}"


def test_a_requirement_specific_rule_test_fails_where_its_alerts_are_not_rendered(stack_runs, tmp_path):
    """Why the runner selects: dev has no PostgreSQL alerts, so the expected ones do not fire."""
    promtool = require_tool("promtool")
    path = RULE_TESTS / "postgresql.postgres-exporter.rules-test.yml"
    result = promtool_test(promtool, tmp_path, rendered_text(stack_runs["dev"]), path.name, path.read_text())
    assert result.returncode != 0
    assert "alertname: PostgresDown" in result.stdout + result.stderr


def test_every_catalog_alert_is_tested_firing_and_quiet_where_it_is_rendered():
    coverage = {path: cases_by_alertname(path) for path in (*PLAIN_TESTS, *REQUIREMENT_TESTS)}
    for e in catalog_entries():
        alertname = e.get("alert", e["name"])
        # A plain file runs on every stack; a requirement file where all it requires is deployed,
        # which the entry's own `requires` guarantees only if it names all of them.
        files = [p for p in coverage if p in PLAIN_TESTS or requirements(p) <= set(e.get("requires", ()))]
        firing = [exp for p in files for exp in coverage[p].get(alertname, {}).get("firing", [])]
        quiet = [exp for p in files for exp in coverage[p].get(alertname, {}).get("quiet", [])]
        # The Watchdog always fires: there is no input under which it stays quiet.
        assert quiet or alertname == "Watchdog", f"{e['name']}: no case where {alertname} stays quiet"
        expected = [alert for exp in firing for alert in exp if alert["exp_labels"]["severity"] == e["severity"]]
        assert expected, f"{e['name']}: no case where {alertname} fires at severity {e['severity']}"
        for alert in expected:
            assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}, e["name"]
            assert alert["exp_annotations"]["summary"] == e["summary"], e["name"]


def test_a_requirement_file_tests_only_alerts_that_its_requirements_render():
    """Else a stack that deploys what the file names would not render the alert it expects."""
    by_alertname: dict[str, list[set[str]]] = {}
    for e in catalog_entries():
        by_alertname.setdefault(e.get("alert", e["name"]), []).append(set(e.get("requires", ())))
    for path in REQUIREMENT_TESTS:
        for alertname in cases_by_alertname(path):
            assert any(r <= requirements(path) for r in by_alertname.get(alertname, [])), f"{path.name}: {alertname}"


def test_requirement_file_names_name_producers_and_platforms():
    assert requirements(Path("gpu.gpu-exporter-dcgm.rules-test.yml")) == {"gpu-exporter/dcgm"}
    assert requirements(Path("containers.cadvisor+platform-docker.rules-test.yml")) == {"cadvisor", "platform/docker"}
    assert requirements(Path("kubernetes-storage.kubelet+kube-state-metrics.rules-test.yml")) == {
        "kubelet", "kube-state-metrics"}
    with pytest.raises(AssertionError, match="kafka-exporter is no producer"):
        requirements(Path("queues.kafka-exporter.rules-test.yml"))
    with pytest.raises(AssertionError, match="name it"):
        requirements(Path("queues.kafka exporter.rules-test.yml"))


def test_container_restarts_are_counted_the_way_each_platform_can(stack_runs):
    """On docker a restarted container keeps its cAdvisor series (ContainerRestarting); on
    Kubernetes each restart is a new one, and kube-state-metrics counts restarts instead."""
    dev = stack_runs["dev"]
    assert deployed_producers(dev) >= {"cadvisor", "platform/docker"}
    assert not deployed_producers(dev) & {"platform/kubernetes", *KUBERNETES_PRODUCERS} - {"cadvisor"}
    assert "ContainerRestarting" in alertnames(dev)
    assert not {n for n in alertnames(dev) if n.startswith(("Kube", "CoreDns"))}
    kubernetes_alerts = {e.get("alert", e["name"]) for e in catalog_entries() if e["group"].startswith("kubernetes-")}
    for stack in ("staging", "prod"):
        run = stack_runs[stack]
        assert deployed_producers(run) >= {"platform/kubernetes", *KUBERNETES_PRODUCERS}
        assert "ContainerRestarting" not in alertnames(run)
        assert {"KubeContainerRestarting", "ContainerHighMemory"} | kubernetes_alerts <= alertnames(run)


def kubernetes_catalog(stack: str) -> tuple[str, set[str]]:
    """The catalog rendered for a Kubernetes stack's settings with every Kubernetes producer
    deployed, by alert_rules alone (whatever the program wires up), and what it deploys."""
    from components.alerting import alert_rules
    from components.settings import parse

    settings = parse(stack, {**stack_config(stack), "secrets": stack_secrets(stack)}, secret_keys={"secrets"})
    assert settings.platform == "kubernetes"
    services = ["prometheus", "alertmanager", "loki", "otel-collector", "jaeger", *KUBERNETES_PRODUCERS]
    return alert_rules.render(settings, services), alert_rules.producers(settings, services)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_kubernetes_rule_test_passes_against_a_render_for_a_kubernetes_stack(stack, tmp_path):
    promtool = require_tool("promtool")
    catalog, producers = kubernetes_catalog(stack)
    names = {rule["alert"] for group in yaml.safe_load(catalog)["groups"] for rule in group["rules"]}
    paths = selected_for(producers)
    assert KUBERNETES_TESTS <= {path.name.removesuffix(".rules-test.yml") for path in paths}
    assert "containers.cadvisor+platform-docker.rules-test.yml" not in {path.name for path in paths}
    for path in paths:
        assert set(cases_by_alertname(path)) <= names, path.name
        result = promtool_test(promtool, tmp_path, catalog, path.name, path.read_text())
        assert result.returncode == 0, f"{stack} {path.name}:\n{result.stdout}{result.stderr}"


# --- the catalog itself is checked ----------------------------------------------------------------

VALID = {"name": "QueueBacklog", "expr": "queue_depth > ${threshold}", "threshold": 100, "for": "5m",
         "severity": "warning", "summary": "A queue is backing up.", "description": "{{ $labels.queue }} is deep."}


@pytest.mark.parametrize("change, message", [
    ({"severity": "page"}, "severity 'page' is not one of critical, warning, info"),
    ({"requires": ["kafka-exporter"]}, "requires 'kafka-exporter', which configs/metrics/catalog.yml does not name"),
    ({"threshold": None}, "a threshold and ${threshold} in the expression go together"),
])
def test_a_catalog_mistake_is_reported_not_dropped(tmp_path, monkeypatch, change, message):
    from components.alerting import alert_rules

    entry = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queues", "alerts": [entry]}]}))
    monkeypatch.setattr(alert_rules, "CATALOG", path)
    with pytest.raises(ValueError, match=re.escape(f"configs/alerts/catalog.yml: QueueBacklog: {message}")):
        alert_rules.catalog()


@pytest.mark.parametrize("every", [1, "4", 2.5])
def test_a_group_every_that_is_not_a_whole_number_above_one_is_reported(tmp_path, monkeypatch, every):
    from components.alerting import alert_rules

    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queues", "every": every, "alerts": [VALID]}]}))
    monkeypatch.setattr(alert_rules, "CATALOG", path)
    with pytest.raises(ValueError, match=re.escape(f"QueueBacklog: its group's `every` is {every!r}, not a whole number")):
        alert_rules.catalog()


def group_intervals(run: Run) -> dict[str, str]:
    return {g["name"]: g["interval"] for g in yaml.safe_load(rendered_text(run))["groups"] if "interval" in g}


@pytest.mark.parametrize("stack", STACKS)
def test_the_groups_over_every_container_and_pod_are_evaluated_once_a_minute(stack_runs, stack):
    """Every fourth evaluation of the shipped 15s; the others at the global interval. docs/performance.md measures why."""
    expected = {"containers": "1m"} if stack == "dev" else {"containers": "1m", "kubernetes-workloads": "1m"}
    assert group_intervals(stack_runs[stack]) == expected


@pytest.mark.parametrize("evaluation_interval, expected", [("1s", "4s"), ("30s", "2m"), ("2m", "4m")])
def test_a_slower_group_follows_the_stacks_evaluation_interval(evaluation_interval, expected):
    run = slow_dev_with({"prometheus": {"evaluation_interval": evaluation_interval}})
    # At 2m, a fifth of ContainerRestarting's 10m is 2m: no slower than the global interval.
    assert group_intervals(run) == ({"containers": expected} if evaluation_interval != "2m" else {})


def test_a_shorter_for_override_shortens_its_groups_interval_to_keep_five_evaluations():
    """ContainerHighMemory for 2m: its group then runs every 24s, not every minute."""
    run = dev_with_alerts({"overrides": {"ContainerHighMemory": {"for": "2m"}}})
    assert group_intervals(run) == {"containers": "24s"}
    run = dev_with_alerts({"overrides": {"ContainerHighMemory": {"for": "30s"}}})
    assert group_intervals(run) == {}


def test_a_catalog_name_used_twice_is_reported(tmp_path, monkeypatch):
    from components.alerting import alert_rules

    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queues", "alerts": [VALID, VALID]}]}))
    monkeypatch.setattr(alert_rules, "CATALOG", path)
    with pytest.raises(ValueError, match="QueueBacklog: the name is used twice"):
        alert_rules.catalog()


def test_a_dollar_of_promql_survives_rendering(tmp_path, monkeypatch):
    from components.alerting import alert_rules
    from components.settings import parse

    entry = {**VALID, "expr": 'queue_depth{queue=~"^jobs$"} > ${threshold}'}
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queues", "alerts": [entry]}]}))
    monkeypatch.setattr(alert_rules, "CATALOG", path)
    rendered = yaml.safe_load(alert_rules.render(parse("dev", {"platform": "docker"}), []))
    assert rendered["groups"][0]["rules"][0]["expr"] == 'queue_depth{queue=~"^jobs$"} > 100'


def test_overriding_the_threshold_of_an_alert_without_one_is_an_error():
    run = Run("dev")
    with pytest.raises(ConfigError, match=r"key 'alerts.overrides.Watchdog.threshold': Watchdog compares against no threshold"):
        run_program("dev", merge(stack_config("dev"), {"alerts": {"overrides": {"Watchdog": {"threshold": 1}}}}), run=run)
    assert run.resources == []


def test_a_for_override_on_the_watchdog_is_an_error():
    run = Run("dev")
    with pytest.raises(ConfigError, match=r"key 'alerts.overrides.Watchdog.for': Watchdog fires at once"):
        run_program("dev", merge(stack_config("dev"), {"alerts": {"overrides": {"Watchdog": {"for": "5m"}}}}), run=run)
    assert run.resources == []


def test_requires_application_is_a_catalog_mistake(tmp_path, monkeypatch):
    """Alerts on the application instrumentation have no `requires` (docs/alerting.md, "The alert catalog"):
    no stack deploys "application", so such an alert would never be rendered, silently."""
    from components.alerting import alert_rules

    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queues", "alerts": [{**VALID, "requires": ["application"]}]}]}))
    monkeypatch.setattr(alert_rules, "CATALOG", path)
    with pytest.raises(ValueError) as error:
        alert_rules.catalog()
    assert str(error.value) == ("configs/alerts/catalog.yml: QueueBacklog: requires 'application', which "
                                "configs/metrics/catalog.yml does not name")


def test_the_watchdogs_severity_can_be_overridden(stack_runs):
    """Only a threshold or a for is refused for the Watchdog (docs/configuration.md, "Validation"); its severity is
    the stack's to choose ("It never pages, whatever its severity")."""
    tuned = dev_with_alerts({"overrides": {"Watchdog": {"severity": "warning"}}})
    [before] = rules_of(stack_runs["dev"], "Watchdog")
    [after] = rules_of(tuned, "Watchdog")
    assert before["labels"] == {"severity": "info"}
    assert after == {**before, "labels": {"severity": "warning"}}


def test_an_80s_scrape_interval_gives_320s_windows():
    """Four scrapes of 80s: 320s, not rounded to whole minutes (docs/alerting.md, "The alert catalog")."""
    run = slow_dev_with({"prometheus": {"scrape_interval": "80s"}})
    assert set(range_windows(run)) == {timedelta(seconds=320)}
    assert "[320s]" in rendered_text(run)


def test_a_fractional_threshold_is_rendered_exactly():
    """"A threshold ... is written into the expression exactly as given" (docs/alerting.md, "Tuning alerts per stack")."""
    tuned = dev_with_alerts({"overrides": {"HostHighCpu": {"threshold": 97.5}}})
    [rule] = rules_of(tuned, "HostHighCpu")
    assert rule["expr"].rstrip().endswith("> 97.5")


def test_an_alert_is_rendered_where_exactly_what_it_requires_is_deployed(tmp_path, monkeypatch):
    """`requires`: what must be deployed for the alert to be rendered (docs/alerting.md, "The alert catalog");
    a stack that deploys just that renders it."""
    from components.alerting import alert_rules
    from components.settings import parse

    entry = {**VALID, "requires": ["node-exporter"]}
    path = tmp_path / "catalog.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queues", "alerts": [entry]}]}))
    monkeypatch.setattr(alert_rules, "CATALOG", path)
    rendered = yaml.safe_load(alert_rules.render(parse("dev", {"platform": "docker"}), ["node-exporter"]))
    assert [r["alert"] for g in rendered["groups"] for r in g["rules"]] == ["QueueBacklog"]


def test_each_rule_keeps_its_field_order(stack_runs):
    """The rule file is read by people as much as by Prometheus: in `pulumi preview --diff` and the
    render diff. Each alerting rule starts with its name and expression, as Prometheus's
    documentation writes rules, then labels, `for` (where the alert has one) and annotations;
    the annotations read summary, description, runbook link. The text also feeds the config hash
    that restarts Prometheus, so a reordering would restart every Prometheus with no change in
    meaning: the order is part of what an upgrade must not change."""
    text = rendered_text(stack_runs["prod"])
    rules = rendered_rules(stack_runs["prod"])
    assert rules
    for rule in rules:
        expected = ["alert", "expr", "labels", "annotations"] if "for" not in rule else ["alert", "expr", "labels", "for", "annotations"]
        assert list(rule) == expected, rule["alert"]
        assert list(rule["annotations"]) == ["summary", "description", "runbook_url"], rule["alert"]
    assert text.index("alert: Watchdog") < text.index("expr: vector(1)")


# --- the stack's own storage ----------------------------------------------------------------------


def own_claims(run: Run) -> list[tuple[str, str]]:
    """(namespace, claim) of every volume claim the stack's StatefulSets make: data-<set>-<replica>."""
    claims = []
    for r in run.of_type("kubernetes:apps/v1:StatefulSet"):
        spec = r.inputs["spec"]
        for template in spec.get("volumeClaimTemplates", []):
            claims += [(r.inputs["metadata"]["namespace"], f"{template['metadata']['name']}-{r.name}-{i}")
                       for i in range(spec["replicas"])]
    return sorted(claims)


@pytest.mark.parametrize("stack, owners", [
    # Prometheus's, Alertmanager's, Loki's, Jaeger's (badger) and Grafana's (SQLite).
    ("staging", {"prometheus", "alertmanager", "loki", "jaeger", "grafana"}),
    # Prod keeps traces in Elasticsearch and Grafana's data in PostgreSQL: no claim of theirs.
    ("prod", {"prometheus", "alertmanager", "loki"}),
])
def test_every_claim_the_stack_owns_is_watched_filling_up(stack_runs, stack, owners, tmp_path):
    """Each of the stack's own claims, nearly full, is in the critical filling-up alert's result."""
    promtool = require_tool("promtool")
    run = stack_runs[stack]
    claims = own_claims(run)
    assert {c.split("-")[1] for _, c in claims} == owners
    (critical,) = [r for r in rendered_rules(run)
                   if r["alert"] == "KubePersistentVolumeFillingUp" and r["labels"]["severity"] == "critical"]
    series, samples = [], []
    for namespace, claim in claims:
        labels = f'job="kubelet", instance="node-a", namespace="{namespace}", persistentvolumeclaim="{claim}"'
        series += [{"series": f"kubelet_volume_stats_available_bytes{{{labels}}}", "values": "2x10"},
                   {"series": f"kubelet_volume_stats_capacity_bytes{{{labels}}}", "values": "100x10"},
                   {"series": f'kube_persistentvolumeclaim_access_mode{{job="kube-state-metrics", '
                              f'namespace="{namespace}", persistentvolumeclaim="{claim}", access_mode="ReadWriteOnce"}}',
                    "values": "1x10"}]
        samples.append({"labels": f"{{{labels}}}", "value": 2})
    test = {"rule_files": ["catalog.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{"expr": critical["expr"], "eval_time": "5m", "exp_samples": samples}],
    }]}
    result = promtool_test(promtool, tmp_path, rendered_text(run), "own_claims_test.yml", yaml.safe_dump(test))
    assert result.returncode == 0, result.stdout + result.stderr


def test_on_docker_the_volumes_filesystem_is_watched_by_the_host_disk_alerts(stack_runs):
    """Named volumes are directories of the filesystem that holds /var/lib/docker: node-exporter
    keeps that filesystem (it leaves out only the mounts below it), and HostDiskSpaceLow reads
    every filesystem it keeps."""
    run = stack_runs["dev"]
    (exclude,) = [a.split("=", 1)[1] for a in container_args(run, "node-exporter")
                  if a.startswith("--collector.filesystem.mount-points-exclude=")]
    assert not re.match(exclude, "/var/lib/docker") and not re.match(exclude, "/")
    assert re.match(exclude, "/var/lib/docker/overlay2/abc/merged")
    (low,) = [r for r in rendered_rules(run) if r["alert"] == "HostDiskSpaceLow" and r["labels"]["severity"] == "warning"]
    assert "mountpoint" not in low["expr"]
    assert {v.inputs["name"] for v in run.of_type("docker:index/volume:Volume")}
