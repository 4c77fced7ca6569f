"""The recording rules the dashboards read (configs/prometheus/records.yml), as each stack renders
them in records.yml: what each stack renders, that the panels and the records agree on every
name, and promtool scenarios (tests/rules/records/*_test.yml) on the values they record.

Each panel that reads a record is also checked for what it promises, with the records evaluated
first, in tests/grafana/test_dashboard_semantics.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from components.alerting import recording_rules
from components.settings import parse
from conftest import ROOT, STACKS, Run, container_files, merge, require_tool, run_program, stack_config

RECORDS_PATH = "/etc/prometheus/rules/records.yml"
SCENARIOS = sorted((ROOT / "tests" / "rules" / "records").glob("*_test.yml"))
DASHBOARD = "grafana:oss/dashboard:Dashboard"
RECORDED = re.compile(r"\b[a-z][a-z0-9_]*:[A-Za-z]\w*:\w+")


def records_text(run: Run) -> str:
    return container_files(run, "prometheus")[RECORDS_PATH]


def groups(run: Run) -> dict[str, list[str]]:
    return {g["name"]: [r["record"] for r in g["rules"]] for g in yaml.safe_load(records_text(run))["groups"]}


def read_by_dashboards(run: Run) -> set[str]:
    """The recorded series the stack's built-in dashboards query, but the objectives' (slo:...)."""
    found = set()
    for resource in run.of_type(DASHBOARD):
        for panel in json.loads(resource.inputs["configJson"])["panels"]:
            for target in panel.get("targets", []):
                found |= {m for m in RECORDED.findall(target.get("expr", "")) if not m.startswith("slo:")}
    return found


KUBERNETES_GROUPS = ["kubernetes-namespaces", "kubernetes-restarts"]


@pytest.mark.parametrize("stack, expected", [
    ("dev", ["http-requests", "http-latency", "hosts", "containers-top"]),
    ("staging", ["http-requests", "http-latency", "hosts", "containers-top", *KUBERNETES_GROUPS]),
    ("prod", ["http-requests", "http-latency", "hosts", "containers-top", *KUBERNETES_GROUPS]),
])
def test_each_stack_renders_the_records_of_what_it_deploys(stack_runs, stack, expected):
    assert list(groups(stack_runs[stack])) == expected


@pytest.mark.parametrize("stack", STACKS)
def test_every_record_is_read_by_a_panel_and_every_panel_reads_a_rendered_record(stack_runs, stack):
    run = stack_runs[stack]
    rendered = {name for names in groups(run).values() for name in names}
    assert read_by_dashboards(run) == rendered


def test_a_dashboard_only_record_is_taken_once_a_minute(stack_runs):
    """The records over every container's and every pod's series, every fourth evaluation of the
    shipped 15s; the others at the global interval."""
    document = yaml.safe_load(records_text(stack_runs["prod"]))
    intervals = {g["name"]: g.get("interval") for g in document["groups"]}
    assert intervals == {"http-requests": None, "http-latency": None, "hosts": None,
                         "containers-top": "1m", "kubernetes-namespaces": "1m", "kubernetes-restarts": "1m"}


def test_a_dashboard_only_record_follows_the_stacks_evaluation_interval():
    config = stack_config("dev")
    run = run_program("dev", merge(config, {"prometheus": {"evaluation_interval": "30s"}}))
    document = yaml.safe_load(records_text(run))
    assert {g["name"]: g.get("interval") for g in document["groups"]}["containers-top"] == "2m"


def test_a_2m_scrape_interval_gives_rate8m_records_and_panels_that_read_them():
    config = stack_config("dev")
    del config["slos"]  # their 5m windows need faster scrapes (tests/alerting/test_slos.py)
    run = run_program("dev", merge(config, {"prometheus": {"scrape_interval": "2m"}}))
    rendered = {name for names in groups(run).values() for name in names}
    assert "job_status:http_requests:rate8m" in rendered
    assert "[8m]" in records_text(run) and "[5m]" not in records_text(run)
    assert read_by_dashboards(run) == rendered


def scenario_records(path: Path) -> set[str]:
    tests = yaml.safe_load(path.read_text())["tests"]
    return {m for t in tests for check in t["promql_expr_test"] for m in RECORDED.findall(check["expr"])}


def promtool_test(promtool: str, directory: Path, records: str, scenario: Path, mistake: tuple[str, str] = ("", "")):
    (directory / "records.yml").write_text(records.replace(*mistake, 1) if mistake[0] else records)
    (directory / scenario.name).write_text(scenario.read_text())
    return subprocess.run([promtool, "test", "rules", scenario.name], cwd=directory, capture_output=True, text=True)


@pytest.mark.parametrize("stack", STACKS)
def test_the_records_scenarios_pass_against_each_stacks_records(stack_runs, stack, tmp_path):
    """Each scenario where the stack renders every record it checks: the containers' everywhere,
    the Kubernetes ones in staging and prod."""
    promtool = require_tool("promtool")
    run = stack_runs[stack]
    rendered = {name for names in groups(run).values() for name in names}
    ran = []
    for scenario in SCENARIOS:
        if scenario_records(scenario) <= rendered:
            result = promtool_test(promtool, tmp_path, records_text(run), scenario)
            assert result.returncode == 0, f"{stack} {scenario.name}:\n{result.stdout}{result.stderr}"
            ran.append(scenario.stem)
    assert ran == (["containers_test"] if stack == "dev" else ["containers_test", "kubernetes_test"])


@pytest.mark.parametrize("scenario, mistake", [
    ("containers_test", ('topk(10, sum by (name) (container_memory', 'bottomk(10, sum by (name) (container_memory')),
    ("containers_test", ('{name!=""}', "")),
    ("kubernetes_test", (', container!="POD"', "")),
    ("kubernetes_test", ('{job="cadvisor", ', "{")),
    ("kubernetes_test", ("[5m]) > 0)", "[5m]))")),
], ids=["the smallest containers", "cgroups outside containers", "pause containers counted",
        "another job's cAdvisor counted", "pods that never restarted listed"])
def test_a_plausible_mistake_in_a_record_fails_its_scenario(stack_runs, tmp_path, scenario, mistake):
    promtool = require_tool("promtool")
    records = records_text(stack_runs["prod"])
    assert mistake[0] in records
    result = promtool_test(promtool, tmp_path, records, ROOT / "tests" / "rules" / "records" / f"{scenario}.yml", mistake)
    assert result.returncode != 0 and "exp:" in result.stderr + result.stdout, result.stdout + result.stderr


# --- the source file, checked ----------------------------------------------------------------------


def with_records(monkeypatch, tmp_path, text: str):
    path = tmp_path / "records.yml"
    path.write_text(text)
    monkeypatch.setattr(recording_rules, "SOURCE", path)


@pytest.mark.parametrize("entry, message", [
    ("record: http_requests:rate${window}\n        expr: sum(rate(http_requests_total[${window}]))",
     "the name is not level:metric:operations"),
    ("record: job:http_requests:rate5m\n        expr: sum by (job) (rate(http_requests_total[${window}]))",
     "a rate over ${window} and rate${window} in the name go together"),
    ("record: job:http_requests:rate${window}\n        requires: [kafka-exporter]\n"
     "        expr: sum by (job) (rate(http_requests_total[${window}]))",
     "requires 'kafka-exporter', which configs/metrics/catalog.yml does not name"),
])
def test_a_mistake_in_the_records_file_is_named(monkeypatch, tmp_path, entry, message):
    with_records(monkeypatch, tmp_path, f"groups:\n  - name: g\n    records:\n      - {entry}\n")
    with pytest.raises(ValueError) as error:
        recording_rules.catalog()
    assert message in str(error.value) and "configs/prometheus/records.yml" in str(error.value)


def test_a_group_every_that_is_not_a_whole_number_above_one_is_refused(monkeypatch, tmp_path):
    entry = "      - record: job:up:sum\n        expr: sum by (job) (up)\n"
    with_records(monkeypatch, tmp_path, f"groups:\n  - name: g\n    every: 1\n    records:\n{entry}")
    with pytest.raises(ValueError, match="job:up:sum: its group's `every` is 1, not a whole number"):
        recording_rules.catalog()


def test_a_record_named_twice_is_refused(monkeypatch, tmp_path):
    entry = "      - record: job:up:sum\n        expr: sum by (job) (up)\n"
    with_records(monkeypatch, tmp_path, f"groups:\n  - name: g\n    records:\n{entry}{entry}")
    with pytest.raises(ValueError, match="job:up:sum: the name is used twice"):
        recording_rules.catalog()


def test_a_group_left_without_records_is_not_rendered():
    settings = parse("dev", {"platform": "docker", "exporters": {"node": {"enabled": False}}})
    rendered = yaml.safe_load(recording_rules.render(settings, {"platform/docker"}))
    assert [g["name"] for g in rendered["groups"]] == ["http-requests", "http-latency"]
