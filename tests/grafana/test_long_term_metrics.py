"""The long-term metrics datasource: a second Prometheus-type datasource over the store Prometheus
remote-writes to (prod: Mimir), with its credentials kept secret, Grafana's network policy letting
it reach that store, and the labels that store deduplicates the Prometheus pair by."""

import json
import re

import pytest

from components.services.prometheus import REPLICA_LABEL
from components.settings import ConfigError
from conftest import ROOT, SECRETS, Run, is_secret, merge, prometheus_config, run_program, stack_config, stack_secrets
from test_upstream_logs_grafana import datasource_problems

DATASOURCE = "grafana:oss/dataSource:DataSource"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
THANOS = {"url": "http://thanos-query.monitoring.svc:10902", "type": "thanos"}


def long_term(run):
    return run.one(DATASOURCE, "datasource-long-term-metrics")


def with_long_term(stack: str, given: dict, secrets: dict = None) -> Run:
    config = merge(stack_config(stack), {"grafana": {"long_term_metrics": given}})
    config["grafana"]["long_term_metrics"] = given  # replaced, not merged with the stack file's
    return run_program(stack, config, {**stack_secrets(stack), **(secrets or {})})


def test_prod_reads_mimir_as_a_second_prometheus_datasource(stack_runs):
    source = long_term(stack_runs["prod"]).inputs
    assert (source["uid"], source["name"], source["type"]) == ("long-term-metrics", "Long-term metrics", "prometheus")
    # Mimir's Prometheus API, where Prometheus remote-writes to .../api/v1/push.
    assert source["url"] == "https://mimir.example.internal/prometheus"
    (remote_write,) = prometheus_config(stack_runs["prod"])["remote_write"]
    assert remote_write["url"] == "https://mimir.example.internal/api/v1/push"
    assert source["isDefault"] is False and source["accessMode"] == "proxy"
    assert json.loads(source["jsonDataEncoded"]) == {"httpMethod": "POST", "prometheusType": "Mimir"}
    assert datasource_problems("prometheus", json.loads(source["jsonDataEncoded"])) == []


def test_prod_signs_in_with_basic_auth_and_a_secret_password(stack_runs):
    resource = long_term(stack_runs["prod"])
    assert resource.inputs["basicAuthEnabled"] is True
    assert resource.inputs["basicAuthUsername"] == "prod-grafana"
    password = SECRETS["long_term_metrics_password"]
    assert json.loads(resource.inputs["secureJsonDataEncoded"]) == {"basicAuthPassword": password}
    assert is_secret(resource.raw_inputs["secureJsonDataEncoded"])
    # Never in the json data, which is not secret.
    assert password not in resource.inputs["jsonDataEncoded"]
    # Prod names no tenant: no header is sent.
    assert "httpHeaders" not in resource.inputs


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_stacks_without_a_long_term_store_have_no_such_datasource(stack_runs, stack):
    assert not [r for r in stack_runs[stack].of_type(DATASOURCE) if r.name == "datasource-long-term-metrics"]


@pytest.mark.parametrize("store, prometheus_type", [
    ("mimir", "Mimir"), ("thanos", "Thanos"), ("prometheus", "Prometheus"),
])
def test_the_store_type_is_grafanas_prometheus_type(store, prometheus_type):
    source = long_term(with_long_term("dev", {**THANOS, "type": store})).inputs
    assert json.loads(source["jsonDataEncoded"])["prometheusType"] == prometheus_type
    # Without a username, no credentials at all.
    assert not {"basicAuthEnabled", "basicAuthUsername", "secureJsonDataEncoded", "httpHeaders"} & set(source)


def test_the_prometheus_type_check_knows_grafanas_values():
    assert datasource_problems("prometheus", {"prometheusType": "Thanos"}) == []
    assert datasource_problems("prometheus", {"prometheusType": "thanos"}) == ["prometheusType='thanos'"]


def test_a_mimir_tenant_is_sent_as_the_x_scope_orgid_header():
    source = long_term(with_long_term("dev", {"url": "https://mimir.example.internal/prometheus", "type": "mimir",
                                              "tenant": "team-a"})).inputs
    # The provider writes it as httpHeaderName1 / httpHeaderValue1, the only way it accepts.
    assert source["httpHeaders"] == {"X-Scope-OrgID": "team-a"}
    assert "httpHeaderName1" not in source["jsonDataEncoded"]


def test_grafanas_network_policy_lets_it_reach_the_store():
    run = with_long_term("staging", THANOS)
    policy = run.one(POLICY, "grafana-network-policy").inputs["spec"]
    outside = [rule["ports"] for rule in policy["egress"] if {"ipBlock": {"cidr": "0.0.0.0/0"}} in rule["to"]]
    assert outside == [[{"protocol": "TCP", "port": 10902}]]


def refused(stack: str, given: dict, secrets: dict = None) -> str:
    config = merge(stack_config(stack), {"grafana": {"long_term_metrics": given}})
    config["grafana"]["long_term_metrics"] = given
    run = Run(stack)
    with pytest.raises(ConfigError) as error:
        run_program(stack, config, {**stack_secrets(stack), **(secrets or {})}, run=run)
    assert run.resources == []
    return str(error.value)


def test_a_username_needs_the_password():
    message = refused("dev", {**THANOS, "username": "grafana"})
    assert ("key 'secrets.long_term_metrics_password': required because grafana.long_term_metrics.username is set"
            in message)


def test_a_tenant_is_refused_for_a_store_that_does_not_read_it():
    message = refused("dev", {**THANOS, "tenant": "team-a"})
    assert "key 'grafana.long_term_metrics.tenant': is Mimir's X-Scope-OrgID header" in message


def test_credentials_in_the_url_are_refused_and_not_shown():
    message = refused("dev", {"url": "https://grafana:hunter2@mimir.example.internal/prometheus", "type": "mimir"})
    assert "secrets.long_term_metrics_password" in message and "hunter2" not in message


# --- deduplicating the Prometheus pair in the store ------------------------------------------------


def test_the_dedup_guide_names_the_labels_the_prometheus_pair_sets(stack_runs):
    """docs/metrics.md tells Mimir and Thanos which labels tell the pair apart; they must be the
    external labels prod's Prometheus really sets."""
    labels = prometheus_config(stack_runs["prod"])["global"]["external_labels"]
    assert labels[REPLICA_LABEL] == "${POD_NAME}" and labels["cluster"] == "prod-eu1"
    guide = (ROOT / "docs" / "metrics.md").read_text()
    assert f"ha_replica_label: {REPLICA_LABEL}" in guide
    assert "ha_cluster_label: cluster" in guide
    assert f"--query.replica-label={REPLICA_LABEL}" in guide
    assert re.search(r"-distributor\.ha-tracker\.replica=" + REPLICA_LABEL, guide)
