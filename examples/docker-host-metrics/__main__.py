"""Prometheus, node-exporter, cAdvisor and Alertmanager on one Docker host.

The components of the observability stack, used without it: the host's and its containers'
metrics in Prometheus (http://127.0.0.1:9090), alerts on them in Alertmanager
(http://127.0.0.1:9093), and in Slack when a webhook is set.
"""

import sys
from pathlib import Path

import pulumi

# The components are this repository's; Pulumi runs the program from this folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from components.services.alertmanager import Alertmanager  # noqa: E402
from components.services.cadvisor import Cadvisor  # noqa: E402
from components.services.node_exporter import NodeExporter  # noqa: E402
from components.platforms.docker import DockerPlatform  # noqa: E402
from components.services.prometheus import Prometheus  # noqa: E402
from components.settings import AlertmanagerArgs, DockerSettings, PrometheusArgs  # noqa: E402
from components.workload import ANYONE  # noqa: E402

# Alerts on what the two exporters measure. Prometheus loads this as rules/host.yml.
HOST_RULES = """\
groups:
  - name: host
    rules:
      - alert: TargetDown
        expr: up == 0
        for: 2m
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.job }} on {{ $labels.instance }} does not answer its scrapes"
      - alert: HostDiskFilling
        expr: node_filesystem_avail_bytes{fstype!~"tmpfs|overlay"} / node_filesystem_size_bytes < 0.1
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.mountpoint }} has less than 10% free"
"""

# Optional: pulumi config set --secret slack_webhook_url https://hooks.slack.com/services/...
slack_webhook_url = pulumi.Config().get_secret("slack_webhook_url")
slack = slack_webhook_url is not None

# A network of its own, so it can run beside an observability stack on the same engine.
platform = DockerPlatform(DockerSettings(network="host-metrics"))
platform.provision()

hosts = NodeExporter("node-exporter", platform=platform)
containers = Cadvisor("cadvisor", platform=platform)
alerts = Alertmanager(
    "alertmanager",
    AlertmanagerArgs(receivers={"slack": {"enabled": slack}}),
    slack_webhook_url=slack_webhook_url,
    readers=(ANYONE,),
    platform=platform,
)
metrics = Prometheus(
    "prometheus",
    # Only what is named here is scraped: no discovery of other containers on the engine.
    PrometheusArgs(discovery=False, retention={"time": "7d", "size": "5GB"}),
    environment=pulumi.get_stack(),
    cluster="docker-host",
    scrape_jobs=[hosts.scrape_job, containers.scrape_job, alerts.scrape_job],
    alertmanagers=alerts.addresses["web"],
    rule_files={"host.yml": HOST_RULES},
    readers=(ANYONE,),
    platform=platform,
)

pulumi.export("prometheus", metrics.urls["web"])
pulumi.export("alertmanager", alerts.urls["web"])
