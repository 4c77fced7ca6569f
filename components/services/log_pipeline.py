"""What every log shipper does to a line, said once: Promtail and Alloy render this alike.

Labels that come out of either shipper: service_name, level and container; on kubernetes also
namespace, pod and node. trace_id is kept as structured metadata, so Grafana can link a line to its
trace without a high-cardinality label. Secrets are redacted on the node, before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import pulumi

from components import CONFIGS, yaml_text
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import LogShipperArgs
from components.workload import ApiRead, ConfigFile, DataVolume, HealthCheck, HostMount, Port, Workload

REDACTION_FILE = CONFIGS / "logs" / "redaction.yml"
REDACTED = "[REDACTED]"
POD_LOGS = "/var/log/pods"

# Fields read from JSON log lines; `level` becomes a label, `trace_id` structured metadata.
JSON_FIELDS = {"level": "level", "trace_id": "trace_id"}
LEVEL_LABEL = "level"
TRACE_ID = "trace_id"


@dataclass(frozen=True)
class Relabel:
    """One relabelling rule, in the terms Prometheus, Promtail and Alloy share."""

    source_labels: tuple[str, ...]
    target_label: Optional[str] = None
    regex: str = "(.*)"
    replacement: str = "$1"
    separator: str = ";"
    action: str = "replace"


@dataclass(frozen=True)
class Redaction:
    name: str
    expression: str


def redactions() -> list[Redaction]:
    return [Redaction(r["name"], r["expression"]) for r in yaml_text.load(REDACTION_FILE.read_text())]


def docker_relabel() -> list[Relabel]:
    container = "__meta_docker_container_name"
    return [
        Relabel((container,), "container", regex="/?(.*)"),
        # The compose service when there is one, else the container's name.
        Relabel((container,), "service_name", regex="/?(.*)"),
        Relabel(("__meta_docker_container_label_com_docker_compose_service",), "service_name", regex="(.+)"),
    ]


def kubernetes_relabel() -> list[Relabel]:
    pod = "__meta_kubernetes_pod"
    return [
        Relabel((f"{pod}_phase",), regex="Pending|Succeeded|Failed", action="drop"),
        Relabel(("__meta_kubernetes_namespace",), "namespace"),
        Relabel((f"{pod}_name",), "pod"),
        Relabel((f"{pod}_container_name",), "container"),
        Relabel((f"{pod}_node_name",), "node"),
        # The app.kubernetes.io/name label, else the app label, else the container's name.
        Relabel((f"{pod}_container_name",), "service_name"),
        Relabel((f"{pod}_label_app",), "service_name", regex="(.+)"),
        Relabel((f"{pod}_label_app_kubernetes_io_name",), "service_name", regex="(.+)"),
        # The kubelet writes each container's log under /var/log/pods/<ns>_<pod>_<uid>/<container>/.
        Relabel((f"{pod}_uid", f"{pod}_container_name"), "__path__", regex="(.+)",
                replacement=f"{POD_LOGS}/*$1/*.log", separator="/"),
    ]


@dataclass(frozen=True)
class Pipeline:
    """Everything a shipper needs to know, for one platform."""

    platform: str
    loki_push_url: str
    external_labels: dict[str, str]
    relabel: list[Relabel] = field(default_factory=list)
    redactions: list[Redaction] = field(default_factory=list)

    @property
    def kubernetes(self) -> bool:
        return self.platform == "kubernetes"


def pipeline(platform: str, loki_address: str, environment: str, cluster: str) -> Pipeline:
    return Pipeline(
        platform=platform,
        loki_push_url=f"http://{loki_address}/loki/api/v1/push",
        external_labels={"environment": environment, "cluster": cluster},
        relabel=kubernetes_relabel() if platform == "kubernetes" else docker_relabel(),
        redactions=redactions(),
    )


def shipper(args: LogShipperArgs, p: Pipeline, *, name: str, image: str, port: int, command: tuple[str, ...],
            config: ConfigFile, data_dir: str, node_env: str, ready_path: str) -> Workload:
    """What running either shipper takes, on every node: the parts that differ are the arguments.
    command: the shipper's command line."""
    return Workload(
        name=name,
        image=image,
        ports=(Port("http", port),),
        resources=args.resources,
        args=command,
        config_files=(config,),
        # Read positions: where each log file was read up to, kept across restarts.
        data=DataVolume(data_dir, "1Gi"),
        # Reads the node's pod logs (kubernetes); docker logs come through the engine's API.
        host_mounts=(HostMount(POD_LOGS, POD_LOGS),) if p.kubernetes else (),
        per_node=True,
        unrestricted_because="the node's pod logs are readable by root only",
        host_access_because="it reads the node's pod logs, and keeps its read positions on the node they describe",
        # Both find the node's pods with Prometheus's pod role, which lists and watches pods only.
        discovery=(ApiRead(("pods",)),),
        field_env={node_env: "spec.nodeName"},
        # Both images are Ubuntu with bash but neither wget nor curl.
        health=HealthCheck("http", ready_path, docker_tool="bash"),
        metrics_port="http",
    )


class Shipper(ServiceComponent):
    """A log shipper on every node (Alloy, Promtail): each container's lines to Loki.

    args: its resources (LogShipperArgs; the stacks' defaults when left out). loki: host:port of
    Loki's HTTP port (a Loki component's addresses["http"][0]). environment and cluster: labels
    on every line it ships. See ServiceComponent for the output properties.
    """

    # The shipper's workload(args, pipeline, name), set by each subclass.
    build: Callable[[LogShipperArgs, Pipeline, str], Workload]

    def __init__(self, name: str, args: Optional[LogShipperArgs] = None, *, loki: str, environment: str,
                 cluster: str, platform: Platform, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, platform, opts, args=args or LogShipperArgs(), loki=loki, environment=environment,
                         cluster=cluster)

    @classmethod
    def render(cls, name: str, platform: Platform, *, args: LogShipperArgs, loki: str, environment: str,
               cluster: str) -> Workload:
        return cls.build(args, pipeline(platform.kind, loki, environment, cluster), name)
