"""A real Alertmanager (Debian's binary) with prod's rendered configuration, on 127.0.0.1: alerts
posted to it are routed and inhibited as the stack intends, and reach stand-in receivers."""

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import SECRETS, merge, run_program, stack_config
from live import am_alerts, api, free_port, receiver_secrets, receiving, running_alertmanager, wait_for

DEADLINE_S = 60


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    root = tmp_path_factory.mktemp("alertmanager")
    with receiving() as receiver:
        # Prod's configuration; only the waits are shortened, through the stack's own settings,
        # and the receiver's port is one Alertmanager may reach.
        fast = {"alertmanager": {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h",
                                 "receiver_ports": [443, urlsplit(receiver.url).port]}}
        run = run_program("prod", merge(stack_config("prod"), fast), {**SECRETS, **receiver_secrets(receiver)})
        address = f"127.0.0.1:{free_port()}"
        with running_alertmanager(run, root, receiver, address):
            yield f"http://{address}", receiver


def alert(name, severity, **labels):
    return {"labels": {"alertname": name, "severity": severity, **labels},
            "annotations": {"summary": f"{name} test", "description": "posted by the test"}}


def state_of(base, name, severity):
    alerts = am_alerts(base, name)
    return {a["labels"]["severity"]: a["status"] for a in alerts}.get(severity)


def test_routing_and_inhibition_with_a_real_alertmanager(alertmanager):
    base, receiver = alertmanager
    started = time.monotonic()
    api(base, "/api/v2/alerts", [
        alert("HostDiskSpaceLow", "critical", instance="n1", job="node-exporter"),
        alert("HostDiskSpaceLow", "warning", instance="n1", job="node-exporter"),
        # Another instance: its warning is not silenced by n1's critical.
        alert("HostDiskSpaceLow", "warning", instance="n2", job="node-exporter"),
        # A target down silences everything else its job says.
        alert("ServiceDown", "critical", instance="api:8000", job="api"),
        alert("HttpLatencyP95High", "warning", instance="api:8000", job="api"),
        # An objective's page silences its own ticket, not another objective's.
        alert("ErrorBudgetBurn", "critical", service="api", slo="availability"),
        alert("ErrorBudgetBurn", "warning", service="api", slo="availability"),
        alert("ErrorBudgetBurn", "warning", service="api", slo="latency"),
        alert("Watchdog", "info"),
    ])

    def delivered():
        return {path for path, _ in receiver.received} >= {"/slack", "/pagerduty", "/watchdog"} and receiver.received

    wait_for(delivered, "notifications")
    time.sleep(3)  # later groups (warnings) have had their 1s group_wait several times over

    warning_n1 = [a for a in am_alerts(base, "HostDiskSpaceLow")
                  if a["labels"]["severity"] == "warning" and a["labels"]["instance"] == "n1"][0]
    assert warning_n1["status"]["state"] == "suppressed" and warning_n1["status"]["inhibitedBy"]
    assert state_of(base, "HttpLatencyP95High", "warning")["state"] == "suppressed"
    assert state_of(base, "HostDiskSpaceLow", "critical")["state"] == "active"
    tickets = {a["labels"]["slo"]: a["status"]["state"] for a in am_alerts(base, "ErrorBudgetBurn")
               if a["labels"]["severity"] == "warning"}
    assert tickets == {"availability": "suppressed", "latency": "active"}

    slack = [body for path, body in receiver.received if path == "/slack"]
    pagerduty = [body for path, body in receiver.received if path == "/pagerduty"]
    text = json.dumps(slack)
    # Critical alerts: paged, and posted to the critical channel.
    assert any(body.get("channel") == "#prod-alerts-critical" for body in slack)
    assert any(body.get("routing_key") == SECRETS["pagerduty_routing_key"] for body in pagerduty)
    # The uninhibited warning reaches the warning channel; the inhibited ones and the Watchdog do not.
    assert any(body.get("channel") == "#prod-alerts" for body in slack)
    assert "HttpLatencyP95High" not in text
    assert "Watchdog" not in text and "Watchdog" not in json.dumps(pagerduty)
    # The Watchdog reaches the dead man's switch, and nothing else does.
    watchdog = [body for path, body in receiver.received if path == "/watchdog"]
    assert {a["labels"]["alertname"] for body in watchdog for a in body["alerts"]} == {"Watchdog"}
    warnings = [body for body in slack if body.get("channel") == "#prod-alerts"]
    assert all("n1" not in json.dumps(body) for body in warnings), "n1's warning was delivered despite its critical"
    assert time.monotonic() - started < DEADLINE_S


def test_notifications_carry_title_text_and_runbook_and_say_when_the_alert_resolves(alertmanager):
    """What an on-call engineer reads: Slack's title names the status, the count, the alert and the
    environment; its text holds the summary, the description and the runbook link; the title links
    to the alerts of that receiver. When the alert ends, Slack and PagerDuty are told: one resolved
    post on the same channel, and PagerDuty's resolve event for the incident it opened."""
    base, receiver = alertmanager
    runbook = "https://runbooks.example/host-out-of-inodes"
    firing = alert("HostOutOfInodes", "critical", instance="n9", job="node-exporter", environment="prod")
    firing["annotations"]["runbook_url"] = runbook
    api(base, "/api/v2/alerts", [firing])

    def posts(status):
        return [body for body in receiver.bodies("/slack")
                if body.get("channel") == "#prod-alerts-critical"
                and any(a.get("title", "").startswith(f"[{status}") and "HostOutOfInodes" in a["title"]
                        for a in body.get("attachments", []))]

    def events(action):
        return [body for body in receiver.bodies("/pagerduty")
                if body.get("event_action") == action and "HostOutOfInodes" in json.dumps(body)]

    wait_for(lambda: posts("FIRING") and events("trigger"), "HostOutOfInodes on Slack and at PagerDuty")
    attachment = posts("FIRING")[0]["attachments"][0]
    assert attachment["title"] == "[FIRING:1] HostOutOfInodes (prod)"
    # One block per alert, each ending in a line break.
    assert attachment["text"] == f"*HostOutOfInodes test*\nposted by the test\nRunbook: {runbook}\n"
    assert attachment["title_link"].endswith("/#/alerts?receiver=slack-critical")
    trigger = events("trigger")[0]
    assert trigger["payload"]["summary"] == "[FIRING:1] HostOutOfInodes (prod)"

    # The alert ends: Prometheus would send it once more with endsAt set.
    firing["endsAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    api(base, "/api/v2/alerts", [firing])
    wait_for(lambda: posts("RESOLVED") and events("resolve"), "the resolved notices on Slack and at PagerDuty")
    assert [post["attachments"][0]["title"] for post in posts("RESOLVED")] == ["[RESOLVED] HostOutOfInodes (prod)"]
    assert events("resolve")[0]["dedup_key"] == trigger["dedup_key"]


def test_ports_for_local_servers_are_outside_the_kernel_s_ephemeral_range():
    # A client connection of another test takes its local port from that range; a port chosen
    # there can be gone by the time the server here binds it.
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = {free_port() for _ in range(50)}
    assert not [port for port in ports if low <= port <= high]
    assert len(ports) > 1, "drawn at random: parallel test processes rarely meet"
