"""Alertmanager: the routing tree by severity, receivers from settings, secrets as files."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import pulumi

from components import CONFIGS, images, yaml_text
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import AlertmanagerArgs
from components.workload import PROMETHEUS, ConfigFile, DataVolume, Egress, HealthCheck, Port, SecretFile, Workload

CONFIG_SOURCE = CONFIGS / "alertmanager"
CONFIG_DIR = "/etc/alertmanager"
DATA_DIR = "/alertmanager"
PORT = 9093
CLUSTER_PORT = 9094
NAME = "alertmanager"

# The receiver that notifies nobody: such alerts still show in Alertmanager's UI.
NULL = "null"

# Alertmanager compares a label an alert lacks as the empty string: `equal` on a label neither
# alert has holds, and the matcher instance="" selects the alerts without one.
INHIBIT_RULES = [
    # A critical alert silences the warning of the same name about the same thing: the same
    # instance, for the volume alerts of Kubernetes the same claim (a node mounts many), and for
    # the burn-rate alerts of service level objectives the same objective of the same service.
    {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["alertname", "instance", "namespace", "persistentvolumeclaim", "service", "slo"],
    },
    # A target that is down explains everything else it says...
    {
        "source_matchers": ['alertname="ServiceDown"'],
        "target_matchers": ['alertname!="ServiceDown"', 'alertname!="Watchdog"'],
        "equal": ["job", "instance"],
    },
    # ...and what is said about its whole job (alerts aggregated over the job, without an
    # instance), but not what the job's other targets say: one kubelet or CoreDNS pod down does
    # not silence the others.
    {
        "source_matchers": ['alertname="ServiceDown"'],
        "target_matchers": ['alertname!="ServiceDown"', 'alertname!="Watchdog"', 'instance=""'],
        "equal": ["job"],
    },
    # A node that is not ready explains why its pods are not (KubePodNotReady carries the node).
    {
        "source_matchers": ['alertname="KubeNodeNotReady"'],
        "target_matchers": ['alertname="KubePodNotReady"'],
        "equal": ["node"],
    },
]


def _slack(channel: str, secret_path: str) -> dict:
    return {
        "api_url_file": secret_path,
        "channel": channel,
        "send_resolved": True,
        "title": '{{ template "obs.title" . }}',
        "text": '{{ template "obs.text" . }}',
    }


def receivers_and_routes(args: AlertmanagerArgs, secret_path) -> tuple[list[dict], list[dict]]:
    """The receivers the args enable and the routes that reach them, most specific first."""
    r = args.receivers
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


def render_config(args: AlertmanagerArgs, secret_path) -> str:
    """alertmanager.yml. `secret_path(name)` is where the secret file `name` is mounted."""
    receivers, routes = receivers_and_routes(args, secret_path)
    config = {
        "global": {"resolve_timeout": "5m"},
        "templates": [f"{CONFIG_DIR}/*.tmpl"],
        "route": {
            # Whatever no route claims goes to the warning channel if there is one.
            "receiver": "slack-warning" if args.receivers.slack.enabled else NULL,
            "group_by": list(args.group_by),
            "group_wait": args.group_wait,
            "group_interval": args.group_interval,
            "repeat_interval": args.repeat_interval,
            "routes": routes,
        },
        "receivers": receivers,
        "inhibit_rules": INHIBIT_RULES,
    }
    return yaml_text.dump(config)


def templates() -> list[ConfigFile]:
    return [
        ConfigFile(f"{CONFIG_DIR}/{path.name}", path.read_text())
        for path in sorted(CONFIG_SOURCE.glob("*.tmpl"))
    ]


def workload(
    args: AlertmanagerArgs,
    platform: Platform,
    *,
    slack_webhook_url: Optional[pulumi.Input[str]] = None,
    pagerduty_routing_key: Optional[pulumi.Input[str]] = None,
    watchdog_url: Optional[pulumi.Input[str]] = None,
    readers: Sequence[str] = ("grafana",),
    name: str = NAME,
) -> Workload:
    """Each enabled receiver needs its secret: a ValueError says which is missing.
    readers: the workloads that read its alerts and send their own (or workload.ANYONE), beside
    Prometheus."""
    receivers = args.receivers
    given = {"slack_webhook_url": slack_webhook_url, "pagerduty_routing_key": pagerduty_routing_key,
             "watchdog_url": watchdog_url}
    enabled = {"slack_webhook_url": receivers.slack.enabled, "pagerduty_routing_key": receivers.pagerduty.enabled,
               "watchdog_url": receivers.watchdog.enabled}
    missing = [secret for secret, on in enabled.items() if on and given[secret] is None]
    if missing:
        raise ValueError(f"{name}: an enabled receiver needs {', '.join(missing)}")
    # A secret in the state and the preview, whatever the caller passed.
    secrets = [SecretFile(secret, pulumi.Output.secret(given[secret])) for secret, on in enabled.items() if on]
    paths = {s.name: s.path for s in secrets}
    # Prometheus sends alerts; Grafana reads them and sends its own (contact point).
    ports = [Port("web", PORT, host_port=args.port, clients=(PROMETHEUS, *readers))]
    if args.replicas > 1:
        ports.append(Port("cluster", CLUSTER_PORT, clients=(name,), udp=True))
    base = Workload(
        name=name,
        image=images.ALERTMANAGER,
        ports=tuple(ports),
        resources=args.resources,
        config_files=(
            ConfigFile(f"{CONFIG_DIR}/alertmanager.yml", render_config(args, paths.__getitem__)),
            *templates(),
        ),
        secret_files=tuple(secrets),
        # The settings hold each receiver's URL to these ports on kubernetes.
        egress=(Egress("the receivers: Slack, PagerDuty, the dead man's switch", tuple(args.receiver_ports)),)
        if secrets else (),
        data=DataVolume(DATA_DIR, args.storage_size),
        health=HealthCheck("web", "/-/ready"),
        replicas=args.replicas,
        run_as_user=65534,
        metrics_port="web",
    )
    flags = [
        f"--config.file={CONFIG_DIR}/alertmanager.yml",
        f"--storage.path={DATA_DIR}",
        f"--web.listen-address=:{PORT}",
    ]
    if args.replicas > 1:
        flags.append(f"--cluster.listen-address=0.0.0.0:{CLUSTER_PORT}")
        flags += [f"--cluster.peer={peer}" for peer in platform.addresses(base, "cluster")]
    else:
        # An empty listen address turns clustering off: a lone replica has no peers.
        flags.append("--cluster.listen-address=")
    return dataclasses.replace(base, args=tuple(flags))


class Alertmanager(ServiceComponent):
    """Alertmanager: routes alerts by severity to Slack and PagerDuty, and the Watchdog to a
    dead man's switch; a gossip cluster when it has several replicas.

    args: the stack file's `alertmanager:` keys (AlertmanagerArgs; the stacks' defaults, which
    notify nobody, when left out). slack_webhook_url, pagerduty_routing_key, watchdog_url: the
    secret of each enabled receiver, kept secret and mounted as files. readers: the workloads
    that read its alerts, or workload.ANYONE. See ServiceComponent for the output properties;
    addresses["web"] is what a Prometheus component's alertmanagers takes.
    """

    kind = "Alertmanager"

    def __init__(self, name: str, args: Optional[AlertmanagerArgs] = None, *, platform: Platform,
                 slack_webhook_url: Optional[pulumi.Input[str]] = None,
                 pagerduty_routing_key: Optional[pulumi.Input[str]] = None,
                 watchdog_url: Optional[pulumi.Input[str]] = None, readers: Sequence[str] = ("grafana",),
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(
            name, platform, opts, args=args or AlertmanagerArgs(), slack_webhook_url=slack_webhook_url,
            pagerduty_routing_key=pagerduty_routing_key, watchdog_url=watchdog_url, readers=readers,
        )

    @classmethod
    def render(cls, name: str, platform: Platform, **inputs) -> Workload:
        return workload(platform=platform, name=name, **inputs)
