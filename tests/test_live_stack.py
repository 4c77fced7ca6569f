"""End to end on 127.0.0.1 (issue 7): Debian's Prometheus, Alertmanager and node-exporter run with
the configuration the program renders for dev, pointed at each other on loopback, and a stand-in
receiver (tests/live.py) takes the place of Slack, PagerDuty and the dead man's switch. In order:

1. every target is up;
2. every rule group loads, and every rule evaluates with health ok;
3. the Watchdog reaches the dead man's switch;
4. node-exporter, stopped for real, fires ServiceDown, which is paged and posted to the critical
   Slack channel: rule, Prometheus, Alertmanager, receivers;
5. the warning that the same stop causes is inhibited by that critical alert and reaches no one.

The module has one deadline (DEADLINE_S) that every wait takes its time from; the waits poll the
APIs. Every process is stopped and reaped at the end, whatever happens, and failure messages end
with the tail of each one's output.
"""

import fnmatch
import json
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest
import yaml

from conftest import SECRETS, container_args, container_files, merge, relocate, require_tool, run_program, stack_config, write_files
from live import (
    POLL_S, Deadline, Process, Receiver, am_alerts, answers, api, free_port, local_args, receiver_secrets, receiving,
    running, running_alertmanager, wait_for,
)

DEADLINE_S = 55
# How long "reaches no one" is watched once the warning sits inhibited in Alertmanager: three of
# its 1s group intervals, each one a flush that would have sent it.
QUIET_S = 3

CRITICAL, WARNING = "ServiceDown", "PrometheusTargetScrapeFailing"
CONTROL = "HostMemoryPressure"

# dev as shipped, with faster time scales and the receivers on, through the stack's own settings.
FAST = {
    "prometheus": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
    "alertmanager": {
        "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h",
        "receivers": {"slack": {"enabled": True}, "pagerduty": {"enabled": True}, "watchdog": {"enabled": True}},
    },
    # The inhibited warning is PrometheusTargetScrapeFailing (a target that failed some of its
    # recent scrapes): stopping node-exporter makes it true for node-exporter, on live data, in
    # the same job and at the same moment as ServiceDown. Threshold 100: one failed scrape in
    # the window is enough. ServiceDown fires after 1s, the warning after 6s: by then the
    # critical alert has long reached Alertmanager, as it does in production (2m against 15m),
    # so the warning meets the inhibition (ServiceDown mutes every other alert of its job)
    # instead of racing it. Neither can fire before the stop.
    # The control is HostMemoryPressure with threshold 100 (always true): a warning of the same
    # job that nothing inhibits while node-exporter runs, so the warning channel is seen to
    # deliver this job's warnings before the stop.
    "alerts": {"overrides": {
        CRITICAL: {"for": "1s"},
        WARNING: {"threshold": 100, "for": "6s"},
        CONTROL: {"threshold": 100, "for": "1s"},
    }},
}

# The services with a binary here, by the address the rendered config gives them.
RENDERED = {"prometheus": "prometheus:9090", "alertmanager": "alertmanager:9093", "node-exporter": "node-exporter:9100"}
# The scrape jobs kept in the loopback copy of prometheus.yml: exactly those of the services above.
# Dropped from the copy (and only from it), for want of a process to scrape: loki, promtail,
# otel-collector, jaeger, cadvisor and grafana (no binary on this machine), api (the user's
# application on the Docker host) and docker-containers (docker_sd_configs: no Docker engine).
KEPT_JOBS = {"prometheus", "alertmanager", "node-exporter"}

# Rendered Prometheus flags that Debian's 2.42 does not know, dropped with their reason.
PROMETHEUS_2_42_LACKS = {
    # Prometheus 3's OTLP receiver (2.42 has none); here nothing sends OTLP.
    "--web.enable-otlp-receiver": None,
}
# Not rendered, added for the test: a time scale of Prometheus itself, which no stack setting
# holds. Prometheus sends an alert's first firing at once, and then again only after this delay
# (default 1m). The Watchdog fires at the first evaluation, before Prometheus has handed the
# Alertmanager address from its config to its notifier (that takes up to 5s), so that first send
# is dropped and, with the default, the Watchdog would arrive only a minute after the start.
PROMETHEUS_TEST_FLAGS = ["--rules.alert.resend-delay=1s"]
NODE_EXPORTER_ON_HOST = {
    # In its container node-exporter sees the host's root at /host; here it runs on the host.
    "--path.rootfs": "/",
}
# Not rendered: Debian's build turns on the systemd collector, which upstream's (the image's)
# leaves off; without systemd here it fails every scrape (not the target) and floods the log.
NODE_EXPORTER_AS_UPSTREAM = ["--no-collector.systemd"]


def on_loopback(config: dict, loopback: dict[str, str]) -> tuple[dict, list[str]]:
    """The rendered prometheus.yml with each address in `loopback` (rendered address ->
    127.0.0.1:<port>) replaced, in the scrape jobs and in the alerting targets. A job that
    discovers its targets, or has one that is not in `loopback`, has nothing to scrape here: it is
    left out and named in the second result. An alerting target not in `loopback` fails."""
    kept, dropped = [], []
    for job in config["scrape_configs"]:
        targets = [t for group in job.get("static_configs", []) for t in group["targets"]]
        discovers = any(key.endswith("_sd_configs") for key in job)
        if discovers or not targets or any(t not in loopback for t in targets):
            dropped.append(job["job_name"])
            continue
        for group in job["static_configs"]:
            group["targets"] = [loopback[t] for t in group["targets"]]
        kept.append(job)
    for alertmanagers in config["alerting"]["alertmanagers"]:
        for group in alertmanagers["static_configs"]:
            missing = [t for t in group["targets"] if t not in loopback]
            assert not missing, f"alerting targets {missing} have no process here ({sorted(loopback)})"
            group["targets"] = [loopback[t] for t in group["targets"]]
    # Prometheus 2.42 has no storage.tsdb.retention (3.8 added it); retention plays no part here.
    config = {key: value for key, value in config.items() if key != "storage"}
    return {**config, "scrape_configs": kept}, dropped


def rendered_rule_groups(config: dict, files: dict[str, str]) -> dict[tuple[str, str], int]:
    """(file name, group name) -> number of rules, of every rendered rule file prometheus.yml loads."""
    groups = {}
    for path, content in files.items():
        if any(fnmatch.fnmatch(path, pattern) for pattern in config["rule_files"]):
            for group in yaml.safe_load(content)["groups"]:
                groups[(Path(path).name, group["name"])] = len(group["rules"])
    return groups


@dataclass
class Live:
    prometheus: str
    alertmanager: str
    receiver: Receiver
    processes: dict[str, Process]
    node_exporter: str  # node-exporter's instance label: its 127.0.0.1 address
    rule_groups: dict[tuple[str, str], int]
    channels: dict[str, str]  # Slack receiver name -> its channel
    deadline: Deadline

    def logs(self) -> str:
        return "\n".join(process.tail() for process in self.processes.values())

    def wait(self, condition: Callable, what: str, state: Optional[Callable[[], object]] = None):
        """Poll until `condition` holds, within what is left of the module's deadline; on timeout
        show `state()` (what the API says now) and the processes' output."""
        def details():
            now = f"now: {json.dumps(state(), indent=1)[:3000]}\n" if state else ""
            return now + self.logs()

        return wait_for(condition, what, self.deadline.remaining(), details)

    def prometheus_alerts(self, alertname: str, state: Optional[str] = "firing") -> list[dict]:
        """Prometheus's alerts of one name, in `state` (None: pending or firing)."""
        alerts = api(self.prometheus, "/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == alertname and state in (None, a["state"])]

    def notified(self, alertname: str, instance: str, path: Optional[str] = None) -> list[dict]:
        """Notifications (to `path`, or anywhere) that name the alert and the instance."""
        return [body for p, body in list(self.receiver.received)
                if path in (None, p) and alertname in json.dumps(body) and instance in json.dumps(body)]

    def slack(self, receiver: str, alertname: str, instance: str) -> list[dict]:
        """Slack posts to `receiver`'s channel about the alert firing on the instance."""
        return [body for body in self.notified(alertname, instance, "/slack")
                if body.get("channel") == self.channels[receiver] and "[FIRING" in json.dumps(body)]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    binaries = {name: require_tool(name) for name in ("prometheus", "prometheus-node-exporter", "prometheus-alertmanager")}
    deadline = Deadline(DEADLINE_S)
    root = tmp_path_factory.mktemp("live-stack")
    logs = root / "logs"
    with ExitStack() as stack:
        receiver = stack.enter_context(receiving())
        secrets = {"pagerduty_routing_key": SECRETS["pagerduty_routing_key"], **receiver_secrets(receiver)}
        run = run_program("dev", merge(stack_config("dev"), FAST), secrets)
        loopback = {address: f"127.0.0.1:{free_port()}" for address in RENDERED.values()}
        local = {service: loopback[address] for service, address in RENDERED.items()}

        rendered = container_files(run, "prometheus")
        files = write_files(rendered, root)
        config, dropped = on_loopback(
            yaml.safe_load(relocate(files["/etc/prometheus/prometheus.yml"].read_text(), root, ("/etc/prometheus",))), loopback)
        kept = {job["job_name"] for job in config["scrape_configs"]}
        assert kept == KEPT_JOBS, f"scrape jobs kept: {sorted(kept)}, dropped: {dropped}; expected to keep {sorted(KEPT_JOBS)}"
        config_path = root / "prometheus-live.yml"
        config_path.write_text(yaml.safe_dump(config))

        am_config = yaml.safe_load(container_files(run, "alertmanager")["/etc/alertmanager/alertmanager.yml"])
        channels = {r["name"]: r["slack_configs"][0]["channel"] for r in am_config["receivers"] if "slack_configs" in r}

        processes = {"alertmanager": stack.enter_context(
            running_alertmanager(run, root, receiver, local["alertmanager"], deadline.remaining()))}
        node_args = local_args(container_args(run, "node-exporter"), NODE_EXPORTER_ON_HOST)
        processes["node-exporter"] = stack.enter_context(running(
            "node-exporter",
            [binaries["prometheus-node-exporter"], *node_args, *NODE_EXPORTER_AS_UPSTREAM,
             f"--web.listen-address={local['node-exporter']}"],
            logs, lambda: answers(f"http://{local['node-exporter']}/metrics"), deadline.remaining(),
        ))
        prometheus_args = local_args(container_args(run, "prometheus"), {
            "--config.file": str(config_path),
            "--storage.tsdb.path": str(root / "prometheus-data"),
            **PROMETHEUS_2_42_LACKS,
        })
        processes["prometheus"] = stack.enter_context(running(
            "prometheus",
            [binaries["prometheus"], *prometheus_args, *PROMETHEUS_TEST_FLAGS, f"--web.listen-address={local['prometheus']}"],
            logs, lambda: answers(f"http://{local['prometheus']}/-/ready"), deadline.remaining(),
        ))
        yield Live(
            prometheus=f"http://{local['prometheus']}",
            alertmanager=f"http://{local['alertmanager']}",
            receiver=receiver,
            processes=processes,
            node_exporter=local["node-exporter"],
            rule_groups=rendered_rule_groups(yaml.safe_load(rendered["/etc/prometheus/prometheus.yml"]), rendered),
            channels=channels,
            deadline=deadline,
        )


def test_every_target_is_up(live):
    expected = {
        f"prometheus {live.prometheus.removeprefix('http://')}",
        f"alertmanager {live.alertmanager.removeprefix('http://')}",
        f"node-exporter {live.node_exporter}",
    }

    def targets():
        return {f"{t['labels']['job']} {t['labels']['instance']}": t["health"]
                for t in api(live.prometheus, "/api/v1/targets")["data"]["activeTargets"]}

    def all_up():
        now = targets()
        return set(now) == expected and set(now.values()) == {"up"}

    live.wait(all_up, "every kept target to be up", targets)


def test_every_rule_group_loads_and_every_rule_is_healthy(live):
    def groups():
        return api(live.prometheus, "/api/v1/rules")["data"]["groups"]

    def evaluated():
        # Until its group's first evaluation a rule's health is "unknown".
        now = groups()
        return now if now and all(r["health"] != "unknown" for g in now for r in g["rules"]) else None

    loaded = live.wait(evaluated, "every rule to be evaluated once", groups)
    assert {(Path(g["file"]).name, g["name"]): len(g["rules"]) for g in loaded} == live.rule_groups, live.logs()
    unhealthy = [(g["name"], r["name"], r["health"], r.get("lastError")) for g in loaded for r in g["rules"] if r["health"] != "ok"]
    assert not unhealthy, f"rules not ok: {unhealthy}\n{live.logs()}"


def test_the_watchdog_reaches_the_dead_mans_switch(live):
    def arrived():
        return [a for body in live.receiver.bodies("/watchdog") for a in body["alerts"]]

    alerts = live.wait(arrived, "the Watchdog at the dead man's switch", lambda: live.receiver.received)
    assert {a["labels"]["alertname"] for a in alerts} == {"Watchdog"}, alerts
    # From the rule, through Prometheus: it carries the stack's external labels.
    assert alerts[0]["status"] == "firing" and alerts[0]["labels"]["environment"] == "dev", alerts


@pytest.fixture(scope="module")
def stopped(live) -> str:
    """node-exporter, stopped for good; its instance label. First the control: while it runs, a
    warning of its job that nothing inhibits reaches the warning channel."""
    live.wait(lambda: live.slack("slack-warning", CONTROL, live.node_exporter),
              f"{CONTROL} of {live.node_exporter} on the warning channel (the control)", lambda: live.receiver.received)
    # The warning must be the stop's doing: node-exporter has not failed a scrape before it.
    early = [a for a in live.prometheus_alerts(WARNING, state=None) if a["labels"]["instance"] == live.node_exporter]
    assert not early, f"node-exporter failed a scrape before the stop: {early}\n{live.logs()}"
    live.processes["node-exporter"].stop()
    return live.node_exporter


def test_a_stopped_target_is_paged_and_posted_to_the_critical_channel(live, stopped):
    firing = live.wait(lambda: live.prometheus_alerts(CRITICAL), f"{CRITICAL} to fire in Prometheus",
                       lambda: api(live.prometheus, "/api/v1/alerts"))
    assert [(a["labels"]["job"], a["labels"]["instance"], a["labels"]["severity"]) for a in firing] == [
        ("node-exporter", stopped, "critical")], firing

    pages = live.wait(lambda: live.notified(CRITICAL, stopped, "/pagerduty"), f"{CRITICAL} at PagerDuty",
                      lambda: live.receiver.received)
    assert pages[0]["routing_key"] == SECRETS["pagerduty_routing_key"] and pages[0]["event_action"] == "trigger", pages
    live.wait(lambda: live.slack("slack-critical", CRITICAL, stopped), f"{CRITICAL} on the critical Slack channel",
              lambda: live.receiver.received)


def test_the_warning_the_stop_causes_is_inhibited_and_reaches_no_one(live, stopped):
    firing = live.wait(lambda: [a for a in live.prometheus_alerts(WARNING) if a["labels"]["instance"] == stopped],
                       f"{WARNING} of {stopped} to fire in Prometheus", lambda: api(live.prometheus, "/api/v1/alerts"))
    assert [(a["labels"]["job"], a["labels"]["severity"]) for a in firing] == [("node-exporter", "warning")], firing

    def critical():
        return {a["fingerprint"] for a in am_alerts(live.alertmanager, CRITICAL) if a["labels"]["instance"] == stopped}

    def delivered():
        return live.notified(WARNING, stopped)

    def inhibited():
        assert not delivered(), f"the inhibited {WARNING} was delivered: {delivered()}"
        alerts = [a for a in am_alerts(live.alertmanager, WARNING) if a["labels"]["instance"] == stopped]
        by = critical()
        return alerts and alerts[0]["status"]["state"] == "suppressed" and by and set(alerts[0]["status"]["inhibitedBy"]) == by

    live.wait(inhibited, f"{WARNING} of {stopped} to be inhibited by its {CRITICAL} in Alertmanager",
              lambda: am_alerts(live.alertmanager, WARNING))

    # Reaches no one, then or in the next flushes of its group (watched, not slept through).
    quiet = Deadline(QUIET_S)
    while quiet.remaining() and not delivered():
        time.sleep(POLL_S)
    assert not delivered(), f"the inhibited {WARNING} was delivered: {delivered()}"
    # The control: the same route delivered this job's uninhibited warning before the stop.
    assert live.slack("slack-warning", CONTROL, stopped)
