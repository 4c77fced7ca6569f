"""Loki and Grafana Alloy on an existing Kubernetes cluster, into an existing Grafana.

Alloy runs on every node and ships each pod's log lines to Loki (labelled with namespace, pod,
container and service, secrets redacted); Loki keeps them in an S3 bucket; the team's Grafana
gets a Loki datasource for them. Nothing else of the observability stack is deployed.

Configuration (pulumi config set ...):
  cluster          the cluster's name, a label on every line (required)
  kube_context     the kubeconfig context of the cluster (default: the current one)
  namespace        where Loki and Alloy run (default: logs)
  bucket, region   the S3 bucket for the logs (required), and its region
  grafana_url      the existing Grafana (required), e.g. https://grafana.example.com
  grafana_token    a service account token of that Grafana with the Editor role (--secret, required)
The bucket's credentials come from the nodes' or pods' IAM role: no key is stored.
"""

import sys
from pathlib import Path

import pulumi
import pulumiverse_grafana as grafana

# The components are this repository's; Pulumi runs the program from this folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from components.services.alloy import Alloy  # noqa: E402
from components.services.loki import Loki  # noqa: E402
from components.platforms.kubernetes import KubernetesPlatform  # noqa: E402
from components.settings import KubernetesSettings, LokiArgs  # noqa: E402
from components.workload import ANYONE  # noqa: E402

config = pulumi.Config()
environment = pulumi.get_stack()

platform = KubernetesPlatform(
    KubernetesSettings(context=config.get("kube_context"), namespace=config.get("namespace") or "logs"),
    environment=environment,
)
platform.provision()

logs = Loki(
    "loki",
    LokiArgs(
        retention="30d",
        storage={"type": "s3", "bucket": config.require("bucket"), "region": config.get("region")},
    ),
    # The existing Grafana runs outside this namespace: its requests may come from anywhere.
    readers=(ANYONE,),
    writers=("alloy",),
    platform=platform,
)
Alloy(
    "alloy",
    loki=logs.addresses["http"][0],
    environment=environment,
    cluster=config.require("cluster"),
    platform=platform,
)

# The team's Grafana, through its API: a datasource for the logs, at Loki's Service.
existing_grafana = grafana.Provider(
    "grafana", url=config.require("grafana_url"), auth=config.require_secret("grafana_token")
)
grafana.oss.DataSource(
    "loki-datasource",
    uid=f"loki-{environment}",
    name=f"Loki ({environment})",
    type="loki",
    url=logs.urls["http"],
    access_mode="proxy",
    opts=pulumi.ResourceOptions(provider=existing_grafana),
)

pulumi.export("loki", logs.urls["http"])
