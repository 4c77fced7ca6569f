"""Blast radius: one change of content changes only the resources that carry that content.

Each test runs a shipped stack twice under the mocks, the second time with one change, and lists
every resource added, removed or given other inputs (components/tools/benchmark.py reports the same
figure). The expected resources are found by their role in the first run (the pod that mounts
the rule files, the ConfigMap behind that mount), not by a count, so a stack may gain resources
elsewhere without touching these tests.
"""

import json

import pytest

from components.grafana import dashboards
from components.tools.benchmark import ALERT, THRESHOLD, changed, first_folder
from conftest import (
    MOCK_NAME_SUFFIX,
    container_files,
    controller,
    merge,
    run_program,
    stack_config,
    stack_secrets,
)

RULES_DIR = "/etc/prometheus/rules"


def run(stack: str, config: dict):
    return run_program(stack, config, stack_secrets(stack))


def with_threshold(stack: str) -> dict:
    """The stack with ALERT's threshold set to THRESHOLD: an alert every stack renders, a value no stack sets."""
    return merge(stack_config(stack), {"alerts": {"overrides": {ALERT: {"threshold": THRESHOLD}}}})


def rules_config_map(run_, service: str) -> str:
    """The ConfigMap mounted at RULES_DIR in the service's pods, as 'type name'."""
    pod = controller(run_, service).inputs["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == RULES_DIR)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    # The pod names the ConfigMap by its generated name; the mocks add a fixed suffix to it.
    name = volume["configMap"]["name"].removesuffix(MOCK_NAME_SUFFIX)
    return f"kubernetes:core/v1:ConfigMap {name}"


def test_a_threshold_changes_the_rules_and_the_pods_that_mount_them_on_kubernetes():
    before, after = run("prod", stack_config("prod")), run("prod", with_threshold("prod"))
    prometheus = controller(before, "prometheus")
    # The rule file lives in a ConfigMap of its own; its content changes (a real engine replaces
    # it: a generated name, so a new ConfigMap). The Prometheus StatefulSet mounts it: the pod
    # template carries the config hash (and, on a real engine, the new ConfigMap's name), so its
    # pods roll and load the new rules. Nothing else reads the alert catalog.
    assert set(changed(before, after)) == {
        rules_config_map(before, "prometheus"),
        f"{prometheus.type} {prometheus.name}",
    }
    rules = [c for path, c in container_files(after, "prometheus").items() if path.startswith(RULES_DIR)]
    assert any(f"> {THRESHOLD:g}" in content for content in rules)


def test_a_threshold_changes_only_the_prometheus_container_on_docker():
    before, after = run("dev", stack_config("dev")), run("dev", with_threshold("dev"))
    # On docker the rule files are uploads of the Prometheus container (and its config-hash
    # label changes with them): that container is replaced, nothing else changes.
    assert changed(before, after) == ["docker:index/container:Container prometheus"]
    rules = [c for path, c in container_files(after, "prometheus").items() if path.startswith(RULES_DIR)]
    assert any(f"> {THRESHOLD:g}" in content for content in rules)


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_a_dashboard_changes_only_its_dashboard(stack, tmp_path, monkeypatch):
    # Dashboards reach Grafana through its API, not through a file Grafana mounts: a changed
    # dashboard changes its own Dashboard resource and no pod or container.
    monkeypatch.setattr(dashboards, "USER_DASHBOARDS", tmp_path)
    path = tmp_path / first_folder(stack_config(stack)) / "blast-radius.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"uid": "blast-radius", "title": "Blast radius"}))
    before = run(stack, stack_config(stack))
    path.write_text(json.dumps({"uid": "blast-radius", "title": "Blast radius, changed"}))
    after = run(stack, stack_config(stack))
    assert before.one("grafana:oss/dashboard:Dashboard", "dashboard-blast-radius")
    assert changed(before, after) == ["grafana:oss/dashboard:Dashboard dashboard-blast-radius"]
