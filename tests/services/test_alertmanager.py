"""Alertmanager: amtool accepts the config, each severity reaches the intended receivers, and the
inhibition rules mute what they are meant to."""

import re
import subprocess

import pytest
import yaml

from conftest import (
    SECRETS,
    STACKS,
    amtool_config,
    container_args,
    container_files,
    merge,
    require_tool,
    run_program,
    stack_config,
)

def config_of(run):
    return yaml.safe_load(container_files(run, "alertmanager")["/etc/alertmanager/alertmanager.yml"])


@pytest.mark.parametrize("stack", STACKS)
def test_amtool_accepts_the_rendered_config(stack_runs, stack, tmp_path):
    amtool = require_tool("amtool")
    path = amtool_config(stack_runs[stack], tmp_path)
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 templates" in result.stdout


# Where each kind of alert must go, per stack: receivers in the order Alertmanager notifies them.
ROUTES = {
    "dev": {
        ("severity=critical", "alertname=ServiceDown"): "null",
        ("severity=warning", "alertname=HostDiskSpaceLow"): "null",
        ("severity=info", "alertname=Something"): "null",
        ("severity=info", "alertname=Watchdog"): "null",
    },
    "staging": {
        ("severity=critical", "alertname=ServiceDown"): "slack-critical",
        ("severity=warning", "alertname=HostDiskSpaceLow"): "slack-warning",
        ("severity=info", "alertname=Something"): "null",
        ("severity=info", "alertname=Watchdog"): "null",
        ("alertname=NoSeverity",): "slack-warning",
    },
    "prod": {
        ("severity=critical", "alertname=ServiceDown"): "pagerduty,slack-critical",
        ("severity=warning", "alertname=HostDiskSpaceLow"): "slack-warning",
        ("severity=info", "alertname=Something"): "null",
        # The Watchdog goes to the dead man's switch alone, and never pages, whatever its severity.
        ("severity=info", "alertname=Watchdog"): "watchdog",
        ("severity=critical", "alertname=Watchdog"): "watchdog",
    },
}


@pytest.mark.parametrize("stack", STACKS)
def test_each_severity_reaches_the_intended_receivers(stack_runs, stack, tmp_path):
    amtool = require_tool("amtool")
    path = amtool_config(stack_runs[stack], tmp_path)
    for labels, receivers in ROUTES[stack].items():
        result = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={path}", f"--verify.receivers={receivers}", *labels],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"{stack} {labels}: {result.stdout}{result.stderr}"


def test_amtool_route_test_catches_a_wrong_receiver(stack_runs, tmp_path):
    """The route check above has teeth: a wrong expectation fails."""
    amtool = require_tool("amtool")
    path = amtool_config(stack_runs["prod"], tmp_path)
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={path}", "--verify.receivers=slack-warning", "severity=critical"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0


def test_inhibition_rules(stack_runs):
    rules = config_of(stack_runs["prod"])["inhibit_rules"]
    assert {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["alertname", "instance", "namespace", "persistentvolumeclaim", "service", "slo"],
    } in rules
    assert {
        "source_matchers": ['alertname="ServiceDown"'],
        "target_matchers": ['alertname!="ServiceDown"', 'alertname!="Watchdog"'],
        "equal": ["job", "instance"],
    } in rules
    assert {
        "source_matchers": ['alertname="ServiceDown"'],
        "target_matchers": ['alertname!="ServiceDown"', 'alertname!="Watchdog"', 'instance=""'],
        "equal": ["job"],
    } in rules
    assert {
        "source_matchers": ['alertname="KubeNodeNotReady"'],
        "target_matchers": ['alertname="KubePodNotReady"'],
        "equal": ["node"],
    } in rules
    assert len(rules) == 4
    # The same rules on every stack.
    assert all(config_of(stack_runs[stack])["inhibit_rules"] == rules for stack in STACKS)


# --- inhibition, as Alertmanager applies the rendered rules --------------------------------------
# amtool checks the rules' syntax but cannot say what they mute. This applies them the way
# Alertmanager's inhibitor does (inhibit/inhibit.go): a firing alert that matches a rule's source
# matchers mutes every other alert that matches its target matchers and has the same value for
# each `equal` label, a label an alert lacks counting as the empty string.

MATCHER = re.compile(r'^(?P<name>\w+)(?P<op>=~|!~|!=|=)"(?P<value>.*)"$')


def matches(matcher: str, labels: dict) -> bool:
    m = MATCHER.match(matcher)
    assert m, matcher
    value = labels.get(m["name"], "")
    return {
        "=": value == m["value"],
        "!=": value != m["value"],
        "=~": re.fullmatch(m["value"], value) is not None,
        "!~": re.fullmatch(m["value"], value) is None,
    }[m["op"]]


def muted(rules: list[dict], firing: list[dict]) -> list[dict]:
    """The alerts among `firing` that the rules inhibit."""
    def inhibits(rule, source, target):
        return (source is not target
                and all(matches(m, source) for m in rule.get("source_matchers", []))
                and all(matches(m, target) for m in rule.get("target_matchers", []))
                and all(source.get(label, "") == target.get(label, "") for label in rule.get("equal", [])))

    return [t for t in firing if any(inhibits(r, s, t) for r in rules for s in firing)]


def test_the_inhibition_model_reads_matchers_as_alertmanager_does():
    assert matches('instance=""', {"job": "api"}) and not matches('instance=""', {"instance": "a"})
    assert matches('alertname!="Watchdog"', {"alertname": "ServiceDown"})
    assert matches('alertname=~"Kube.*"', {"alertname": "KubePodNotReady"})
    assert not matches('alertname!~"Kube.*"', {"alertname": "KubePodNotReady"})


def alert(alertname, severity, **labels):
    return {"alertname": alertname, "severity": severity, **labels}


@pytest.mark.parametrize("stack", STACKS)
def test_a_critical_level_mutes_its_warning_about_the_same_thing_only(stack_runs, stack):
    rules = config_of(stack_runs[stack])["inhibit_rules"]
    disk = dict(job="node-exporter", instance="n1", mountpoint="/")
    claim = dict(job="kubelet", instance="node-a", namespace="data", persistentvolumeclaim="data-db-0")
    warnings = [
        warning_n1 := alert("HostDiskSpaceLow", "warning", **disk),
        alert("HostDiskSpaceLow", "warning", **{**disk, "instance": "n2"}),
        warning_claim := alert("KubePersistentVolumeFillingUp", "warning", **claim),
        # Another claim mounted on the same node keeps its warning.
        alert("KubePersistentVolumeFillingUp", "warning", **{**claim, "persistentvolumeclaim": "data-db-1"}),
        alert("KubePersistentVolumeFillingUp", "warning", **{**claim, "namespace": "logging"}),
        # Another alertname on the same claim is not muted either.
        alert("KubePersistentVolumeInodesFillingUp", "warning", **claim),
    ]
    criticals = [alert("HostDiskSpaceLow", "critical", **disk), alert("KubePersistentVolumeFillingUp", "critical", **claim)]
    assert muted(rules, warnings + criticals) == [warning_n1, warning_claim]


@pytest.mark.parametrize("stack", STACKS)
def test_a_target_down_mutes_what_it_and_its_whole_job_say_not_its_siblings(stack_runs, stack):
    rules = config_of(stack_runs[stack])["inhibit_rules"]
    down = alert("ServiceDown", "critical", job="kubelet", instance="node-a")
    same_target = alert("KubeletPlegDurationHigh", "warning", job="kubelet", instance="node-a")
    other_target = alert("KubeletPlegDurationHigh", "warning", job="kubelet", instance="node-b")
    other_claim = alert("KubePersistentVolumeFillingUp", "critical", job="kubelet", instance="node-b",
                        namespace="data", persistentvolumeclaim="data-db-0")
    whole_job = alert("KubeletDown", "critical", job="kubelet")
    other_job = alert("HttpErrorRateHigh", "critical", job="api")
    sibling_down = alert("ServiceDown", "critical", job="kubelet", instance="node-b")
    watchdog = alert("Watchdog", "info")
    firing = [down, same_target, other_target, other_claim, whole_job, other_job, sibling_down, watchdog]
    assert muted(rules, firing) == [same_target, other_target, other_claim, whole_job]
    assert muted(rules, [down, same_target, other_target, other_claim, whole_job, other_job, watchdog]) == [
        same_target, whole_job]
    # An application's job-wide alert, as before: muted by its target down.
    api_down = alert("ServiceDown", "critical", job="api", instance="api:8000")
    assert muted(rules, [api_down, other_job, alert("HttpLatencyP95High", "warning", job="api", endpoint="/x")]) == [
        other_job, alert("HttpLatencyP95High", "warning", job="api", endpoint="/x")]


@pytest.mark.parametrize("stack", STACKS)
def test_a_node_not_ready_mutes_its_pods_not_ready(stack_runs, stack):
    rules = config_of(stack_runs[stack])["inhibit_rules"]
    node = alert("KubeNodeNotReady", "warning", job="kube-state-metrics", node="node-a")
    on_node = alert("KubePodNotReady", "warning", job="kube-state-metrics", namespace="app", pod="web-1", node="node-a")
    elsewhere = alert("KubePodNotReady", "warning", job="kube-state-metrics", namespace="app", pod="web-2", node="node-b")
    crash = alert("KubePodCrashLooping", "warning", job="kube-state-metrics", namespace="app", pod="web-1", container="web")
    assert muted(rules, [node, on_node, elsewhere, crash]) == [on_node]
    assert muted(rules, [on_node, elsewhere]) == []


def test_grouping_and_intervals_come_from_settings():
    override = {"alertmanager": {"group_by": ["alertname", "cluster"], "group_wait": "10s", "repeat_interval": "12h"}}
    route = config_of(run_program("dev", merge(stack_config("dev"), override)))["route"]
    assert route["group_by"] == ["alertname", "cluster"]
    assert route["group_wait"] == "10s"
    assert route["group_interval"] == "5m"
    assert route["repeat_interval"] == "12h"


def test_channels_are_per_stack(stack_runs):
    def channels(stack):
        return {
            r["name"]: r["slack_configs"][0]["channel"]
            for r in config_of(stack_runs[stack])["receivers"]
            if "slack_configs" in r
        }

    assert channels("staging") == {"slack-critical": "#staging-alerts", "slack-warning": "#staging-alerts"}
    assert channels("prod") == {"slack-critical": "#prod-alerts-critical", "slack-warning": "#prod-alerts"}
    assert channels("dev") == {}


def test_receiver_secrets_reach_alertmanager_only_as_files(stack_runs):
    run = stack_runs["prod"]
    files = container_files(run, "alertmanager")
    config = config_of(run)
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["slack-critical"]["slack_configs"][0]["api_url_file"] == "/run/secrets/slack_webhook_url"
    assert receivers["pagerduty"]["pagerduty_configs"][0]["routing_key_file"] == "/run/secrets/pagerduty_routing_key"
    assert files["/run/secrets/slack_webhook_url"] == SECRETS["slack_webhook_url"]
    assert files["/run/secrets/pagerduty_routing_key"] == SECRETS["pagerduty_routing_key"]
    assert receivers["watchdog"]["webhook_configs"][0]["url_file"] == "/run/secrets/watchdog_url"
    assert files["/run/secrets/watchdog_url"] == SECRETS["watchdog_url"]
    text = files["/etc/alertmanager/alertmanager.yml"]
    for name in ("slack_webhook_url", "pagerduty_routing_key", "watchdog_url"):
        assert SECRETS[name] not in text, name


def test_the_watchdog_repeats_to_the_dead_mans_switch_on_its_own_interval():
    override = {"alertmanager": {"receivers": {"watchdog": {"enabled": True, "repeat_interval": "2m"}}}}
    config = yaml.safe_load(container_files(
        run_program("dev", merge(stack_config("dev"), override), {"watchdog_url": SECRETS["watchdog_url"]}),
        "alertmanager")["/etc/alertmanager/alertmanager.yml"])
    route = config["route"]["routes"][0]
    assert route["matchers"] == ['alertname="Watchdog"'] and route["receiver"] == "watchdog"
    # Sent at once and then every 2m, whatever the stack's grouping intervals are.
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("0s", "2m", "2m")
    # A resolved Watchdog means nothing: only its absence is the alarm.
    assert config["receivers"][-1]["webhook_configs"][0]["send_resolved"] is False


def test_without_a_dead_mans_switch_the_watchdog_notifies_nobody(stack_runs):
    route = config_of(stack_runs["staging"])["route"]["routes"][0]
    assert route["matchers"] == ['alertname="Watchdog"'] and route["receiver"] == "null"


def test_a_clustered_alertmanager_lists_every_peer(stack_runs):
    args = container_args(stack_runs["prod"], "alertmanager")
    assert "--cluster.listen-address=0.0.0.0:9094" in args
    assert [a for a in args if a.startswith("--cluster.peer=")] == [
        f"--cluster.peer=alertmanager-{i}.alertmanager:9094" for i in range(3)
    ]


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_a_single_alertmanager_does_not_cluster(stack_runs, stack):
    args = container_args(stack_runs[stack], "alertmanager")
    assert "--cluster.listen-address=" in args
    assert not [a for a in args if a.startswith("--cluster.peer")]
