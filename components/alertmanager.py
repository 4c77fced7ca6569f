"""Alertmanager: the routing tree by severity, receivers from settings, secrets as files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from components import images, yaml_text
from components.platform import Platform
from components.settings import Settings
from components.workload import (
    PROMETHEUS, ConfigFile, DataVolume, HealthCheck, Port, SecretFile, Workload, grafana_clients,
)

CONFIG_SOURCE = Path(__file__).parent.parent / "configs" / "alertmanager"
CONFIG_DIR = "/etc/alertmanager"
DATA_DIR = "/alertmanager"
PORT = 9093
CLUSTER_PORT = 9094

# The receiver that notifies nobody: such alerts still show in Alertmanager's UI.
NULL = "null"


def _slack(channel: str, secret_path: str) -> dict:
    return {
        "api_url_file": secret_path,
        "channel": channel,
        "send_resolved": True,
        "title": '{{ template "obs.title" . }}',
        "text": '{{ template "obs.text" . }}',
    }


def receivers_and_routes(settings: Settings, secret_path) -> tuple[list[dict], list[dict]]:
    """The receivers the stack enables and the routes that reach them, most specific first."""
    r = settings.alertmanager.receivers
    receivers: list[dict] = [{"name": NULL}]
    # The Watchdog always fires; it proves the pipeline works and must never page anyone. With a
    # dead man's switch it is sent there on a short repeat, and silence from it raises the alarm.
    watchdog = {"matchers": ['alertname="Watchdog"'], "receiver": NULL, "repeat_interval": "1h"}
    if r.watchdog.enabled:
        receivers.append({
            "name": "watchdog",
            # url_file (Alertmanager 0.26+): the URL usually carries the check's token.
            "webhook_configs": [{"url_file": secret_path("watchdog_url"), "send_resolved": False}],
        })
        watchdog.update(receiver="watchdog", group_wait="0s", group_interval=r.watchdog.repeat_interval,
                        repeat_interval=r.watchdog.repeat_interval)
    routes: list[dict] = [watchdog]
    if r.pagerduty.enabled:
        receivers.append(
            {
                "name": "pagerduty",
                "pagerduty_configs": [
                    {
                        "routing_key_file": secret_path("pagerduty_routing_key"),
                        "send_resolved": True,
                        "description": '{{ template "obs.title" . }}',
                    }
                ],
            }
        )
        routes.append({"matchers": ['severity="critical"'], "receiver": "pagerduty", "continue": r.slack.enabled})
    if r.slack.enabled:
        url = secret_path("slack_webhook_url")
        receivers.append({"name": "slack-critical", "slack_configs": [_slack(r.slack.critical_channel, url)]})
        receivers.append({"name": "slack-warning", "slack_configs": [_slack(r.slack.warning_channel, url)]})
        routes.append({"matchers": ['severity="critical"'], "receiver": "slack-critical"})
        routes.append({"matchers": ['severity="warning"'], "receiver": "slack-warning"})
    routes.append({"matchers": ['severity="info"'], "receiver": NULL})
    return receivers, routes


def render_config(settings: Settings, secret_path) -> str:
    """alertmanager.yml. `secret_path(name)` is where the secret file `name` is mounted."""
    am = settings.alertmanager
    receivers, routes = receivers_and_routes(settings, secret_path)
    config = {
        "global": {"resolve_timeout": "5m"},
        "templates": [f"{CONFIG_DIR}/*.tmpl"],
        "route": {
            # Whatever no route claims goes to the warning channel if there is one.
            "receiver": "slack-warning" if am.receivers.slack.enabled else NULL,
            "group_by": list(am.group_by),
            "group_wait": am.group_wait,
            "group_interval": am.group_interval,
            "repeat_interval": am.repeat_interval,
            "routes": routes,
        },
        "receivers": receivers,
        "inhibit_rules": [
            # A critical alert silences the warning of the same name on the same instance.
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname", "instance"],
            },
            # A target that is down explains everything else its job says.
            {
                "source_matchers": ['alertname="ServiceDown"'],
                "target_matchers": ['alertname!="ServiceDown"', 'alertname!="Watchdog"'],
                "equal": ["job"],
            },
        ],
    }
    return yaml_text.dump(config)


def templates() -> list[ConfigFile]:
    return [
        ConfigFile(f"{CONFIG_DIR}/{path.name}", path.read_text())
        for path in sorted(CONFIG_SOURCE.glob("*.tmpl"))
    ]


def workload(settings: Settings, platform: Platform) -> Workload:
    am = settings.alertmanager
    receivers = am.receivers
    secrets = []
    if receivers.slack.enabled:
        secrets.append(SecretFile("slack_webhook_url", settings.secret("slack_webhook_url")))
    if receivers.pagerduty.enabled:
        secrets.append(SecretFile("pagerduty_routing_key", settings.secret("pagerduty_routing_key")))
    if receivers.watchdog.enabled:
        secrets.append(SecretFile("watchdog_url", settings.secret("watchdog_url")))
    paths = {s.name: s.path for s in secrets}
    # Prometheus sends alerts; Grafana reads them and sends its own (contact point).
    ports = [Port("web", PORT, host_port=am.port, clients=(PROMETHEUS, *grafana_clients(settings)))]
    if am.replicas > 1:
        ports.append(Port("cluster", CLUSTER_PORT, clients=("alertmanager",), udp=True))
    base = Workload(
        name="alertmanager",
        image=images.ALERTMANAGER,
        ports=tuple(ports),
        resources=am.resources,
        config_files=(
            ConfigFile(f"{CONFIG_DIR}/alertmanager.yml", render_config(settings, paths.__getitem__)),
            *templates(),
        ),
        secret_files=tuple(secrets),
        data=DataVolume(DATA_DIR, am.storage_size),
        health=HealthCheck("web", "/-/ready"),
        replicas=am.replicas,
        run_as_user=65534,
        metrics_port="web",
    )
    args = [
        f"--config.file={CONFIG_DIR}/alertmanager.yml",
        f"--storage.path={DATA_DIR}",
        f"--web.listen-address=:{PORT}",
    ]
    if am.replicas > 1:
        args.append(f"--cluster.listen-address=0.0.0.0:{CLUSTER_PORT}")
        args += [f"--cluster.peer={peer}" for peer in platform.addresses(base, "cluster")]
    else:
        # An empty listen address turns clustering off: a lone replica has no peers.
        args.append("--cluster.listen-address=")
    return dataclasses.replace(base, args=tuple(args))
