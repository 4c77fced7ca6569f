"""What the stack manages inside Grafana, whether it runs that Grafana or another: the provider
bound to it, folders, datasources, dashboards, the contact point and the Loki rules."""

import json

import pytest

from components.settings import ConfigError
from conftest import (
    ROOT,
    SECRETS,
    STACKS,
    Run,
    is_secret,
    merge,
    run_program,
    scrape_jobs,
    stack_config,
    stack_secrets,
)

PROVIDER = "pulumi:providers:grafana"
CONTENT = "observability:grafana:Content"
FOLDER = "grafana:oss/folder:Folder"
DATASOURCE = "grafana:oss/dataSource:DataSource"
DASHBOARD = "grafana:oss/dashboard:Dashboard"
CONTACT_POINT = "grafana:alerting/contactPoint:ContactPoint"
RULE_GROUP = "grafana:alerting/ruleGroup:RuleGroup"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
GENERATED = "generated-grafana-password-7c1d"  # what the mocks give RandomPassword
# dev and staging set no password and get a generated one; prod's secrets include one.
PASSWORDS = {"dev": GENERATED, "staging": GENERATED, "prod": SECRETS["grafana_admin_password"]}
# An external Grafana has no Ingress of the stack's (staging and prod ship one for their own).
EXTERNAL = {"grafana": {"mode": "external", "url": "https://grafana.corp.example", "ingress": {"enabled": False}}}
DEFAULT_FOLDERS = ["Platform", "Applications", "Databases", "GPU & ML", "LLM & RAG"]


def without_grafana_url(stack):
    config = stack_config(stack)
    config["grafana"] = {k: v for k, v in config["grafana"].items() if k != "url"}
    return config


def datasources(run):
    return {r.inputs["uid"]: r.inputs for r in run.of_type(DATASOURCE)}


def json_data(run, uid):
    return json.loads(datasources(run)[uid]["jsonDataEncoded"])


def rules(run):
    return {rule["name"]: rule for rule in run.one(RULE_GROUP, "rules-logs").inputs["rules"]}


def rule_data(rule):
    return {d["refId"]: {**d, "model": json.loads(d["model"])} for d in rule["datas"]}


@pytest.fixture(scope="module")
def external_runs():
    """An existing Grafana, on docker and on kubernetes."""
    return {
        stack: run_program(stack, merge(stack_config(stack), EXTERNAL),
                          {**stack_secrets(stack), "grafana_api_token": SECRETS["grafana_api_token"]})
        for stack in ("dev", "staging")
    }


# --- the provider ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack, url", [
    ("dev", "http://127.0.0.1:3000"),
    ("staging", "https://grafana.staging.example.internal"),
    ("prod", "https://grafana.example.internal"),
])
def test_the_provider_reaches_grafana_where_the_stack_says(stack_runs, stack, url):
    assert stack_runs[stack].one(PROVIDER, "grafana").inputs["url"] == url


@pytest.mark.parametrize("stack", STACKS)
def test_the_provider_signs_in_as_admin_with_a_secret(stack_runs, stack):
    provider = stack_runs[stack].one(PROVIDER, "grafana")
    assert provider.inputs["auth"] == f"admin:{PASSWORDS[stack]}"
    assert is_secret(provider.raw_inputs["auth"])


@pytest.mark.parametrize("stack", STACKS)
def test_the_provider_belongs_to_the_grafana_content_component(stack_runs, stack):
    run = stack_runs[stack]
    content = run.one(CONTENT, "grafana")
    stack_component = run.one("observability:index:Stack", "observability")
    assert run.one(PROVIDER, "grafana").parent == content.urn
    assert content.parent == stack_component.urn


@pytest.mark.parametrize("stack", STACKS)
def test_every_grafana_object_goes_through_the_provider(stack_runs, stack):
    run = stack_runs[stack]
    provider = run.one(PROVIDER, "grafana")
    content = run.one(CONTENT, "grafana")
    objects = [r for r in run.resources if r.type.startswith("grafana:")]
    assert {r.type for r in objects} == {FOLDER, DATASOURCE, DASHBOARD, CONTACT_POINT, RULE_GROUP}
    for resource in objects:
        reference = resource.provider
        assert reference.startswith(provider.urn + "::"), (resource.type, resource.name, reference)
        assert resource.parent == content.urn, (resource.type, resource.name)


@pytest.mark.parametrize("stack, server", [
    ("dev", ("docker:index/container:Container", "grafana")),
    ("staging", ("kubernetes:apps/v1:StatefulSet", "grafana")),
])
def test_the_provider_waits_for_the_grafana_server(stack_runs, stack, server):
    server_urn = stack_runs[stack].one(*server).urn
    assert server_urn in stack_runs[stack].one(PROVIDER, "grafana").dependencies


# --- an existing Grafana ---------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_external_grafana_deploys_no_server_and_generates_no_password(external_runs, stack):
    run = external_runs[stack]
    assert "grafana" not in run.outputs["services"]
    assert not [r for r in run.resources if r.name == "grafana" and r.type.startswith(("docker:", "kubernetes:"))]
    assert run.of_type(RANDOM_PASSWORD) == []
    assert "grafana_admin_password" not in run.outputs
    assert "grafana" not in scrape_jobs(run)


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_external_grafana_is_reached_at_its_url_with_the_api_token(external_runs, stack):
    provider = external_runs[stack].one(PROVIDER, "grafana")
    assert provider.inputs["url"] == "https://grafana.corp.example"
    assert provider.inputs["auth"] == "glsa_grafana-token-secret-b9c0"
    assert is_secret(provider.raw_inputs["auth"])
    assert external_runs[stack].outputs["endpoints"]["grafana"] == "https://grafana.corp.example"


def test_external_grafana_without_a_token_is_refused_before_any_resource():
    run = Run("dev")
    with pytest.raises(ConfigError) as error:
        run_program("dev", merge(stack_config("dev"), EXTERNAL), run=run)
    assert "key 'secrets.grafana_api_token': required because grafana.mode is external" in str(error.value)
    assert run.resources == []


@pytest.mark.parametrize("stack, config, secrets, because", [
    ("staging", without_grafana_url("staging"), stack_secrets("staging"), "platform is kubernetes"),
    ("dev", merge(stack_config("dev"), {"grafana": {"mode": "external"}}),
     {"grafana_api_token": SECRETS["grafana_api_token"]}, "grafana.mode is external"),
], ids=["kubernetes", "external"])
def test_grafana_url_is_required_where_it_cannot_be_guessed(stack, config, secrets, because):
    run = Run(stack)
    with pytest.raises(ConfigError) as error:
        run_program(stack, config, secrets, run=run)
    assert f"key 'grafana.url': required because {because}" in str(error.value)
    assert run.resources == []


# --- folders ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_one_folder_per_configured_folder_with_its_slug_as_uid(stack_runs, stack):
    folders = {r.inputs["uid"]: r.inputs["title"] for r in stack_runs[stack].of_type(FOLDER)}
    assert folders == {
        "platform": "Platform",
        "applications": "Applications",
        "databases": "Databases",
        "gpu-ml": "GPU & ML",
        "llm-rag": "LLM & RAG",
    }


def test_a_folder_listed_twice_in_another_case_is_refused():
    run = Run("dev")
    config = merge(stack_config("dev"), {"grafana": {"folders": [*DEFAULT_FOLDERS, "platform"]}})
    with pytest.raises(ConfigError) as error:
        run_program("dev", config, run=run)
    assert "key 'grafana.folders': folders 'Platform' and 'platform' would share the uid 'platform'" in str(error.value)
    assert run.resources == []


def test_two_folders_that_would_share_a_uid_are_refused():
    # "GPU & ML" and "GPU/ML" both become the folder uid gpu-ml: two Grafana folders (and two
    # Pulumi resources named folder-gpu-ml) cannot share it.
    run = Run("dev")
    config = merge(stack_config("dev"), {"grafana": {"folders": [*DEFAULT_FOLDERS, "GPU/ML"]}})
    with pytest.raises(ConfigError) as error:
        run_program("dev", config, run=run)
    assert "key 'grafana.folders'" in str(error.value)
    assert run.resources == []


# --- datasources -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack, alertmanager, loki", [
    ("dev", "http://alertmanager:9093", "http://loki:3100"),
    ("staging", "http://alertmanager-0.alertmanager:9093", "http://loki:3100"),
    # prod runs Loki's roles apart: its query frontends answer queries.
    ("prod", "http://alertmanager-0.alertmanager:9093", "http://loki-query-frontend:3100"),
])
def test_datasources_have_fixed_uids_and_reach_the_stacks_services(stack_runs, stack, alertmanager, loki):
    # Prod's long-term store is not one of the stack's services (tests/grafana/test_long_term_metrics.py).
    found = {uid: (d["type"], d["url"], d["isDefault"]) for uid, d in datasources(stack_runs[stack]).items()
             if uid != "long-term-metrics"}
    assert found == {
        "prometheus": ("prometheus", "http://prometheus:9090", True),
        "loki": ("loki", loki, False),
        "jaeger": ("jaeger", "http://jaeger:16686", False),
        "alertmanager": ("alertmanager", alertmanager, False),
    }


@pytest.mark.parametrize("stack", STACKS)
def test_metrics_logs_and_traces_link_to_each_other(stack_runs, stack):
    run = stack_runs[stack]
    assert json_data(run, "prometheus")["exemplarTraceIdDestinations"] == [{"name": "trace_id", "datasourceUid": "jaeger"}]
    (trace_id,) = json_data(run, "loki")["derivedFields"]
    assert (trace_id["matcherType"], trace_id["matcherRegex"], trace_id["datasourceUid"]) == ("label", "trace_id", "jaeger")
    traces_to_logs = json_data(run, "jaeger")["tracesToLogsV2"]
    assert traces_to_logs["datasourceUid"] == "loki"
    # A span opens only the lines of its own trace. Grafana reads this exact spelling (capital ID;
    # the key set is checked against Grafana's source in tests/test_upstream_logs_grafana.py).
    assert traces_to_logs["filterByTraceID"] is True
    assert "filterByTraceId" not in traces_to_logs


def linked_uids(value):
    if isinstance(value, dict):
        found = [value["datasourceUid"]] if "datasourceUid" in value else []
        return found + [uid for v in value.values() for uid in linked_uids(v)]
    if isinstance(value, list):
        return [uid for v in value for uid in linked_uids(v)]
    return []


@pytest.mark.parametrize("stack", STACKS)
def test_every_datasource_link_names_a_datasource_of_the_stack(stack_runs, stack):
    run = stack_runs[stack]
    links = [uid for source in datasources(run).values() for uid in linked_uids(json.loads(source["jsonDataEncoded"]))]
    assert len(links) == 3
    assert set(links) <= {"prometheus", "loki", "jaeger", "alertmanager"}


def test_a_datasource_url_override_replaces_exactly_that_url():
    config = merge(stack_config("prod"), {"grafana": {"datasource_urls": {"prometheus": "https://mimir.corp/prometheus"}}})
    found = {uid: d["url"] for uid, d in datasources(run_program("prod", config, stack_secrets("prod"))).items()}
    assert found == {
        "prometheus": "https://mimir.corp/prometheus",
        "loki": "http://loki-query-frontend:3100",
        "jaeger": "http://jaeger:16686",
        "alertmanager": "http://alertmanager-0.alertmanager:9093",
        "long-term-metrics": "https://mimir.example.internal/prometheus",
    }


def test_an_alertmanager_override_is_where_grafana_reads_and_sends_alerts():
    config = merge(stack_config("dev"), {"grafana": {"datasource_urls": {"alertmanager": "https://am.corp:9093"}}})
    run = run_program("dev", config)
    assert datasources(run)["alertmanager"]["url"] == "https://am.corp:9093"
    assert run.one(CONTACT_POINT, "contact-point").inputs["alertmanagers"] == [{"url": "https://am.corp:9093"}]


# --- dashboards ------------------------------------------------------------------------------------

DEV_DASHBOARDS = {
    "system-overview": "platform",
    "containers-hosts": "platform",
    "observability-stack": "platform",
    "api-performance": "applications",
    "logs": "applications",
    "llm-rag": "llm-rag",
    "gpu-ml": "gpu-ml",
    "slos": "applications",  # every shipped stack sets objectives
}
# staging and prod run database exporters and kube-state-metrics (on by default on kubernetes).
KUBERNETES_DASHBOARDS = {**DEV_DASHBOARDS, "databases": "databases", "kubernetes": "platform"}


@pytest.mark.parametrize("stack, expected", [
    ("dev", DEV_DASHBOARDS), ("staging", KUBERNETES_DASHBOARDS), ("prod", KUBERNETES_DASHBOARDS),
])
def test_one_dashboard_per_built_in_dashboard_in_its_folder(stack_runs, stack, expected):
    found = {r.name: r.inputs for r in stack_runs[stack].of_type(DASHBOARD)}
    assert {name: d["folder"] for name, d in found.items()} == {f"dashboard-{uid}": f for uid, f in expected.items()}
    for uid in expected:
        dashboard = found[f"dashboard-{uid}"]
        assert dashboard["overwrite"] is True
        assert json.loads(dashboard["configJson"])["uid"] == uid


# --- alerting --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack, url", [
    ("dev", "http://alertmanager:9093"),
    ("staging", "http://alertmanager-0.alertmanager:9093"),
    ("prod", "http://alertmanager-0.alertmanager:9093,http://alertmanager-1.alertmanager:9093,"
             "http://alertmanager-2.alertmanager:9093"),
])
def test_the_contact_point_hands_alerts_to_every_alertmanager_replica(stack_runs, stack, url):
    contact = stack_runs[stack].one(CONTACT_POINT, "contact-point").inputs
    assert contact["name"] == "alertmanager"
    assert contact["alertmanagers"] == [{"url": url}]


@pytest.mark.parametrize("stack", STACKS)
def test_the_logs_rule_group_holds_the_loki_rules(stack_runs, stack):
    group = stack_runs[stack].one(RULE_GROUP, "rules-logs").inputs
    assert group["name"] == "logs"
    assert group["folderUid"] == "platform"
    assert group["intervalSeconds"] == 60
    assert [r["name"] for r in group["rules"]] == ["ErrorLogBurst", "LogVolumeSpike"]


@pytest.mark.parametrize("stack", STACKS)
def test_each_rule_is_a_warning_with_a_runbook_sent_to_alertmanager(stack_runs, stack):
    runbook = (ROOT / "docs" / "runbook.md").read_text().splitlines()
    for name, rule in rules(stack_runs[stack]).items():
        assert rule["labels"] == {"severity": "warning"}
        assert rule["annotations"]["summary"]
        assert "{{ $labels.service_name }}" in rule["annotations"]["description"]
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{name.lower()}"
        assert f"## {name}" in runbook
        assert rule["notificationSettings"] == {"contactPoint": "alertmanager"}
        assert rule["condition"] == "B"


@pytest.mark.parametrize("stack, burst, factor", [("dev", 10, 3), ("staging", 10, 3), ("prod", 20, 3)])
def test_rules_query_loki_and_compare_with_the_stacks_thresholds(stack_runs, stack, burst, factor):
    found = rules(stack_runs[stack])
    for name, above, window in (("ErrorLogBurst", burst, "5m"), ("LogVolumeSpike", factor, "10m")):
        rule = found[name]
        assert rule["for"] == window
        data = rule_data(rule)
        assert data["A"]["datasourceUid"] == "loki"
        assert data["A"]["model"]["datasource"] == {"type": "loki", "uid": "loki"}
        assert data["B"]["datasourceUid"] == "__expr__"
        assert data["B"]["model"]["type"] == "threshold"
        assert data["B"]["model"]["expression"] == "A"
        assert data["B"]["model"]["conditions"] == [{"evaluator": {"params": [above], "type": "gt"}}]
    assert f"more than {burst} error lines" in found["ErrorLogBurst"]["annotations"]["description"]


@pytest.mark.parametrize("stack", STACKS)
def test_rule_expressions_count_lines_per_service(stack_runs, stack):
    found = rules(stack_runs[stack])
    errors = rule_data(found["ErrorLogBurst"])["A"]["model"]["expr"]
    volume = rule_data(found["LogVolumeSpike"])["A"]["model"]["expr"]
    # Five minutes of error lines per service; errors as Loki detects them on every line (the
    # shippers' level label covers shipped lines only, not lines that arrive over OTLP).
    assert errors == 'sum by (service_name) (count_over_time({service_name=~".+"} | detected_level="error"[5m]))'
    assert volume.count("sum by (service_name)") == 3 and "[10m]" in volume and "[1d]" in volume
    assert "level" not in volume
    # Only services that logged a day ago have a normal volume to compare with.
    assert volume.endswith('and on (service_name) (sum by (service_name) (count_over_time({service_name=~".+"}[10m] offset 1d)) > 0)')


def test_rule_runbook_links_follow_the_stacks_runbook_url():
    config = merge(stack_config("dev"), {"alerts": {"runbook_url": "https://runbooks.example/obs.md"}})
    found = rules(run_program("dev", config))
    assert found["ErrorLogBurst"]["annotations"]["runbook_url"] == "https://runbooks.example/obs.md#errorlogburst"


def test_alert_thresholds_follow_the_settings():
    config = merge(stack_config("dev"), {"grafana": {"alerts": {"error_log_burst": 50, "log_volume_factor": 4.5}}})
    found = rules(run_program("dev", config))
    assert rule_data(found["ErrorLogBurst"])["B"]["model"]["conditions"][0]["evaluator"]["params"] == [50]
    assert rule_data(found["LogVolumeSpike"])["B"]["model"]["conditions"][0]["evaluator"]["params"] == [4.5]
    assert "over 4.5 times its usual volume" in found["LogVolumeSpike"]["annotations"]["description"]
