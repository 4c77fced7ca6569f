"""Service level objectives (the stack file's `slos`): what their rules do on synthetic series, in
promtool; that each scenario can fail; the error a bad objective gets; and the objectives every
shipped stack sets.

The scenarios are tests/rules/slos/*_test.yml, each run against the slos.yml the program renders
for OBJECTIVES below. Their expected times and values are worked out in their comments from the
workbook's table, not read back from the rules.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from components.alerting import slos
from components.settings import ConfigError
from conftest import ROOT, STACKS, Run, container_files, merge, require_tool, run_program, stack_config

SLO_RULES = "/etc/prometheus/rules/slos.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
SCENARIOS = sorted((ROOT / "tests" / "rules" / "slos").glob("*_test.yml"))
DASHBOARD = "grafana:oss/dashboard:Dashboard"

# What the scenarios are written for: every way of stating an objective.
OBJECTIVES = {
    "api": {"objectives": {
        "availability": {"sli": "availability", "target": 99.9, "window": "30d"},
        "latency": {"sli": "latency", "target": 99, "threshold": 0.5, "window": "30d"},
    }},
    "rag": {"objectives": {
        "answers": {"sli": "availability", "target": 99.5,
                    "good": 'llm_requests_total{job="rag", status!="error"}', "total": 'llm_requests_total{job="rag"}'},
        "fast-answers": {"sli": "latency", "target": 95, "threshold": 1,
                         "histogram": 'llm_request_duration_seconds{job="rag"}', "buckets": [0.5, 1, 2.5, 5]},
    }},
}


def dev_with(objectives: dict, **more) -> dict:
    """dev's stack file with these objectives, and 30 days of samples (dev keeps 7)."""
    return merge(stack_config("dev"), {"prometheus": {"retention": {"time": "30d"}}, "slos": objectives, **more})


def rules_of(run: Run) -> str:
    return container_files(run, "prometheus")[SLO_RULES]


@pytest.fixture(scope="module")
def scenario_rules() -> str:
    return rules_of(run_program("dev", dev_with(OBJECTIVES)))


def promtool_test(directory: Path, rules: str, test: str) -> subprocess.CompletedProcess:
    promtool = require_tool("promtool")
    (directory / "slos.yml").write_text(rules)
    (directory / "scenario_test.yml").write_text(test)
    return subprocess.run([promtool, "test", "rules", "scenario_test.yml"], cwd=directory,
                          capture_output=True, text=True)


def only_case(path: Path, name: str) -> str:
    """The scenario file with its case `name` alone."""
    document = yaml.safe_load(path.read_text())
    document["tests"] = [case for case in document["tests"] if case["name"] == name]
    assert len(document["tests"]) == 1, name
    return yaml.safe_dump(document, sort_keys=False)


# --- the scenarios -------------------------------------------------------------------------------


def test_the_scenarios_cover_what_objectives_must_do():
    names = {case["name"] for path in SCENARIOS for case in yaml.safe_load(path.read_text())["tests"]}
    assert {
        "fast burn pages within its detection time",
        "slow burn opens a ticket and never pages",
        "a burn rate below 1 never alerts",
        "a blip shorter than the short window does not page",
        "the alert resets once the burn stops",
    } <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_the_rendered_rules_pass_each_scenario(scenario_rules, tmp_path, path):
    result = promtool_test(tmp_path, scenario_rules, path.read_text())
    assert result.returncode == 0, result.stdout + result.stderr


AVAILABILITY = 'service="api", slo="availability"'
SCENARIO = SCENARIOS[0].parent / "availability_test.yml"


@pytest.mark.parametrize("case, mistake, old, new", [
    # The blip raises the 5m window alone: a page on it, without its long window, fires.
    ("a blip shorter than the short window does not page", "the page reads its short window alone",
     f"(slo:sli_error:ratio_rate1h{{{AVAILABILITY}}} / 0.001 > 14.4 and ", "("),
    ("the alert resets once the burn stops", "the page reads its long window alone",
     f" and slo:sli_error:ratio_rate5m{{{AVAILABILITY}}} / 0.001 > 14.4", ""),
    ("a burn rate below 1 never alerts", "the slowest ticket fires below a burn rate of 1",
     f"slo:sli_error:ratio_rate3d{{{AVAILABILITY}}} / 0.001 > 1 and slo:sli_error:ratio_rate6h{{{AVAILABILITY}}} / 0.001 > 1",
     f"slo:sli_error:ratio_rate3d{{{AVAILABILITY}}} / 0.001 > 0.8 and slo:sli_error:ratio_rate6h{{{AVAILABILITY}}} / 0.001 > 0.8"),
    ("fast burn pages within its detection time", "the fastest page waits for a burn rate of 16",
     f"ratio_rate1h{{{AVAILABILITY}}} / 0.001 > 14.4", f"ratio_rate1h{{{AVAILABILITY}}} / 0.001 > 16"),
    ("slow burn opens a ticket and never pages", "the slower page fires at a burn rate of 1.5",
     f"ratio_rate6h{{{AVAILABILITY}}} / 0.001 > 6 and slo:sli_error:ratio_rate30m{{{AVAILABILITY}}} / 0.001 > 6",
     f"ratio_rate6h{{{AVAILABILITY}}} / 0.001 > 1.5 and slo:sli_error:ratio_rate30m{{{AVAILABILITY}}} / 0.001 > 1.5"),
])
def test_a_scenario_fails_when_the_rules_get_it_wrong(scenario_rules, tmp_path, case, mistake, old, new):
    """Each scenario tells right rules from a plausible mistake: the mistaken rules fail it."""
    assert scenario_rules.count(old) == 1, mistake
    result = promtool_test(tmp_path, scenario_rules.replace(old, new), only_case(SCENARIO, case))
    assert result.returncode != 0, mistake
    # A wrong alert, not a broken file (the rules as rendered pass every case, above).
    assert "alertname: ErrorBudgetBurn" in result.stdout + result.stderr, result.stdout + result.stderr


def test_the_budget_rules_count_the_window_from_the_5m_rates(scenario_rules, tmp_path):
    """0.05% of requests bad over 2 hours: half the 0.1% budget spent, half remaining; the service
    level is 99.95% and the objective 99.9%."""
    test = f"""
rule_files: [slos.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'http_requests_total{{job="api", instance="api:8000", status="200"}}'
        values: '0+1999x120'
      - series: 'http_requests_total{{job="api", instance="api:8000", status="503"}}'
        values: '0+1x120'
    promql_expr_test:
      - expr: round(slo:error_budget:remaining_ratio{{{AVAILABILITY}}} * 1000)
        eval_time: 2h
        exp_samples: [{{labels: '{{{AVAILABILITY}}}', value: 500}}]
      - expr: round((1 - slo:sli_error:ratio_window{{{AVAILABILITY}}}) * 100000)
        eval_time: 2h
        exp_samples: [{{labels: '{{{AVAILABILITY}}}', value: 99950}}]
      - expr: slo:objective:ratio{{{AVAILABILITY}}}
        eval_time: 2h
        exp_samples: [{{labels: 'slo:objective:ratio{{{AVAILABILITY}}}', value: 0.999}}]
"""
    result = promtool_test(tmp_path, scenario_rules, test)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules_and_counts_every_one(scenario_rules, tmp_path):
    promtool = require_tool("promtool")
    (tmp_path / "slos.yml").write_text(scenario_rules)
    result = subprocess.run([promtool, "check", "rules", "slos.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # Per objective: 2 rates, 7 window ratios, the window's ratio, objective, budget, 2 alerts.
    assert "SUCCESS: 56 rules found" in result.stdout


# --- the rules' shape ----------------------------------------------------------------------------


def groups(text: str) -> list[dict]:
    return yaml.safe_load(text)["groups"]


def test_each_objective_is_one_group_whose_records_are_named_level_metric_operations(scenario_rules):
    found = groups(scenario_rules)
    assert [g["name"] for g in found] == ["slo-api-availability", "slo-api-latency", "slo-rag-answers",
                                          "slo-rag-fast-answers"]
    for group in found:
        for rule in group["rules"]:
            if "record" in rule:
                assert re.fullmatch(r"slo:[a-z_]+:[a-z0-9_]+", rule["record"]), rule["record"]
                assert rule["record"] in slos.RECORDED
            service, slo = group["name"].removeprefix("slo-").split("-", 1)
            assert {"service": service, "slo": slo}.items() <= rule["labels"].items()


def test_the_alerts_page_on_a_fast_burn_and_open_a_ticket_on_a_slow_one(scenario_rules):
    alerts = [r for g in groups(scenario_rules) for r in g["rules"] if "alert" in r]
    assert {r["alert"] for r in alerts} == {"ErrorBudgetBurn"}
    [page, ticket] = alerts[:2]
    assert page["labels"]["severity"] == "critical" and ticket["labels"]["severity"] == "warning"
    # The workbook's table, long and short windows: 1/12 of each other.
    assert re.findall(r"ratio_rate(\w+)\{[^}]*\} / 0.001 > ([\d.]+)", page["expr"]) == [
        ("1h", "14.4"), ("5m", "14.4"), ("6h", "6"), ("30m", "6")]
    assert re.findall(r"ratio_rate(\w+)\{[^}]*\} / 0.001 > ([\d.]+)", ticket["expr"]) == [
        ("1d", "3"), ("2h", "3"), ("3d", "1"), ("6h", "1")]
    assert "for" not in page and "for" not in ticket  # the short window confirms; a `for` would only delay


def test_the_alerts_link_to_their_runbook_section(scenario_rules):
    headings = {line[3:].strip() for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}
    assert slos.ALERTNAME in headings
    for group in groups(scenario_rules):
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["annotations"]["runbook_url"] == "docs/runbook.md#errorbudgetburn"


def test_a_whole_second_threshold_matches_both_ways_of_writing_the_bucket(scenario_rules):
    assert 'llm_request_duration_seconds_bucket{job="rag", le=~"1|1\\\\.0"}' in scenario_rules
    assert 'http_request_duration_seconds_bucket{job="api", le="0.5"}' in scenario_rules


def test_a_stack_without_objectives_ships_no_slo_rules_and_no_dashboard(stack_runs):
    config = stack_config("dev")
    del config["slos"]
    run = run_program("dev", config)
    assert SLO_RULES not in container_files(run, "prometheus")
    assert "dashboard-slos" not in run.names(DASHBOARD)
    assert "dashboard-slos" in stack_runs["dev"].names(DASHBOARD)


# --- bad objectives ------------------------------------------------------------------------------


def rejected(objectives: dict, **more) -> str:
    run = Run("dev")
    with pytest.raises(ConfigError) as error:
        run_program("dev", dev_with(objectives, **more), run=run)
    assert run.resources == [], "resources were registered before the objective was refused"
    return str(error.value)


def one(**objective) -> dict:
    return {"api": {"objectives": {"checkout": objective}}}


KEY = "slos.api.objectives.checkout"


@pytest.mark.parametrize("objective, key, phrase", [
    ({"sli": "availability", "target": 100}, "target", "leaves no error budget"),
    ({"sli": "availability", "target": 100.5}, "target", "leaves no error budget"),
    ({"sli": "availability", "target": 0}, "target", "is not a share of good events"),
    ({"sli": "availability", "target": 80}, "target", "too slowly to page"),
    ({"sli": "latency", "target": 99, "threshold": 0.3}, "threshold",
     "0.3 is not a bucket boundary of http_request_duration_seconds (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, "
     "2.5, 5, 10)"),
    ({"sli": "latency", "target": 99, "threshold": 0.75, "histogram": 'rag_retrieval_duration_seconds{job="rag"}',
      "buckets": [0.5, 1]}, "threshold", "0.75 is not a bucket boundary of rag_retrieval_duration_seconds (0.5, 1)"),
    ({"sli": "availability", "target": 99.9, "good": 'grpc_server_handled_total{grpc_code="OK"}',
      "total": "grpc_server_handled_total"}, "good", "nothing the stack scrapes produces grpc_server_handled_total"),
    ({"sli": "latency", "target": 99, "threshold": 0.5, "histogram": "grpc_server_handling_seconds",
      "buckets": [0.5]}, "histogram", "nothing the stack scrapes produces grpc_server_handling_seconds_bucket"),
    ({"sli": "availability", "target": 99.9, "window": "1d"}, "window",
     "1d is shorter than the longest alert window (3d)"),
    ({"sli": "availability", "target": 99.9, "window": "60d"}, "window",
     "60d is longer than prometheus.retention.time (30d)"),
    ({"sli": "availability", "target": 99.9, "good": 'llm_requests_total{status="ok"}'}, "total",
     "required because slos.api.objectives.checkout.good is set"),
    ({"sli": "availability", "target": 99.9, "threshold": 0.5}, "threshold", "applies only to sli: latency"),
    ({"sli": "latency", "target": 99}, "threshold", "required because sli is latency"),
    ({"sli": "latency", "target": 99, "threshold": 0.5, "good": "llm_requests_total", "total": "llm_requests_total"},
     "good", "applies only to sli: availability"),
    ({"sli": "latency", "target": 99, "threshold": 1, "histogram": 'llm_request_duration_seconds{job="rag"}'},
     "buckets", "required because llm_request_duration_seconds is not the application contract's histogram"),
    ({"sli": "latency", "target": 99, "threshold": 1, "histogram": 'http_request_duration_seconds{le="1"}'},
     "histogram", "must not match le"),
    ({"sli": "availability", "target": 99.9, "good": 'rate(llm_requests_total[5m])', "total": "llm_requests_total"},
     "good", "must be one series selector that names its metric"),
    ({"sli": "availability", "target": 99.9, "good": "llm_requests_total offset 1h", "total": "llm_requests_total"},
     "good", "must not use offset or @"),
    ({"sli": "availability", "target": 99.9, "good": "llm_requests_total{", "total": "llm_requests_total"},
     "good", "is not a PromQL selector"),
    ({"sli": "availability", "target": 99.9, "good": '{"llm_requests_total", status="ok"}', "total": "llm_requests_total"},
     "good", "must be one series selector that names its metric"),
    ({"sli": "availability", "target": 99.9, "good": '{__name__="llm_requests_total"}', "total": "llm_requests_total"},
     "good", "must be one series selector that names its metric"),
    ({"sli": "throughput", "target": 99.9}, "sli", "Input should be 'availability' or 'latency'"),
])
def test_a_bad_objective_is_refused_before_any_resource(objective, key, phrase):
    message = rejected(one(**objective))
    assert message.startswith("stack 'dev': invalid configuration")
    line = next((line for line in message.splitlines() if f"key '{KEY}.{key}'" in line), None)
    assert line is not None, message
    assert phrase in line, message


def test_every_bad_objective_is_named_at_once():
    message = rejected({"api": {"objectives": {
        "availability": {"sli": "availability", "target": 99.9, "window": "1d"},
        "latency": {"sli": "latency", "target": 99, "threshold": 0.3},
    }}})
    assert "2 problems" in message
    assert "slos.api.objectives.availability.window" in message and "slos.api.objectives.latency.threshold" in message


def test_objectives_need_rate_windows_of_5m():
    """A 2m scrape interval makes every rate window 8m: the 5m short window would miss scrapes."""
    message = rejected(one(sli="availability", target=99.9), prometheus={"scrape_interval": "2m",
                                                                         "retention": {"time": "30d"}})
    assert f"key '{KEY}': the shortest alert window is 5m" in message


def test_a_job_no_series_carries_is_refused_without_discovery():
    message = rejected({"web": {"objectives": {"availability": {"sli": "availability", "target": 99.9}}}},
                       prometheus={"discovery": False, "retention": {"time": "30d"}})
    assert "key 'slos.web.job': 'web' is no job of prometheus.scrape_targets" in message
    # The api job is a static target of dev's: the same objective on it is taken.
    run_program("dev", dev_with({"api": {"objectives": {"availability": {"sli": "availability", "target": 99.9}}}},
                                prometheus={"discovery": False, "retention": {"time": "30d"}}))


def test_a_job_is_quoted_as_a_promql_string(tmp_path):
    """A job named by discovery may hold any text: a quote in it must not end the string."""
    job = 'api "v2"\\edge'
    run = run_program("dev", dev_with({"api": {"job": job, "objectives": {"availability": {
        "sli": "availability", "target": 99.9}}}}))
    rules = rules_of(run)
    assert 'http_requests_total{job="api \\"v2\\"\\\\edge", status=~"5.."}' in yaml.safe_load(rules)["groups"][0]["rules"][0]["expr"]
    promtool = require_tool("promtool")
    (tmp_path / "slos.yml").write_text(rules)
    result = subprocess.run([promtool, "check", "rules", "slos.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_target_too_low_for_the_fastest_page_is_warned_about(monkeypatch):
    warned = []
    monkeypatch.setattr(slos.pulumi.log, "warn", lambda message, *a, **k: warned.append(message))
    run_program("dev", dev_with(one(sli="latency", target=90, threshold=0.5)))
    assert [w for w in warned if KEY in w] == [
        f"key '{KEY}.target': 90% lets 10% of events be bad; even a total outage never reaches the burn rate "
        "of 1h/5m at 14.4x, so those alerts never fire"]


def test_a_user_rule_file_cannot_take_the_objectives_file_name(monkeypatch, tmp_path):
    from components.alerting import user_rules

    monkeypatch.setattr(user_rules, "SOURCE", tmp_path)
    (tmp_path / "slos.yml").write_text("groups: []\n")
    problems = user_rules.load()[1]
    assert problems == ["configs/prometheus/rules/slos.yml: the name is taken by the rules of the stack's slos; "
                        "rename the file (for example team-rules.yml)"]


# --- the shipped stacks --------------------------------------------------------------------------


def shipped_objectives(stack: str) -> list[tuple[str, str, dict]]:
    return [(service, name, spec) for service, spec_of in stack_config(stack).get("slos", {}).items()
            for name, spec in spec_of["objectives"].items()]


def outage_series(job: str, spec: dict) -> list[dict]:
    """Every event of the objective bad, 1000 a minute: for availability every request a 5xx, for
    latency every request slower than the threshold."""
    if spec["sli"] == "availability":
        return [{"series": f'http_requests_total{{job="{job}", instance="{job}:8000", status="500"}}',
                 "values": "0+1000x15"}]
    return [
        {"series": f'http_request_duration_seconds_bucket{{job="{job}", instance="{job}:8000", le="{spec["threshold"]}"}}',
         "values": "0x15"},
        {"series": f'http_request_duration_seconds_count{{job="{job}", instance="{job}:8000"}}', "values": "0+1000x15"},
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_stack_sets_objectives_on_the_application_contract(stack):
    found = shipped_objectives(stack)
    assert {(service, name) for service, name, _ in found} == {("api", "availability"), ("api", "latency")}
    assert all("good" not in spec and "histogram" not in spec for _, _, spec in found)


@pytest.mark.parametrize("stack", STACKS)
def test_a_total_outage_pages_every_objective_of_every_shipped_stack(stack_runs, stack, tmp_path):
    rules = rules_of(stack_runs[stack])
    tests = []
    for service, name, spec in shipped_objectives(stack):
        job = stack_config(stack)["slos"][service].get("job", service)
        firing = (f'ALERTS{{alertname="ErrorBudgetBurn", alertstate="firing", service="{service}", '
                  f'slo="{name}", severity="critical"}}')
        tests.append({"name": f"{service}/{name}", "interval": "1m", "input_series": outage_series(job, spec),
                      "promql_expr_test": [{"expr": firing, "eval_time": "10m",
                                            "exp_samples": [{"labels": firing, "value": 1}]}]})
    test = yaml.safe_dump({"rule_files": ["slos.yml"], "evaluation_interval": "1m", "tests": tests})
    result = promtool_test(tmp_path, rules, test)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_stack_has_the_slo_dashboard(stack_runs, stack):
    dashboard = stack_runs[stack].one(DASHBOARD, "dashboard-slos")
    assert json.loads(dashboard.inputs["configJson"])["uid"] == "slos"
    assert dashboard.inputs["folder"] == "applications"
