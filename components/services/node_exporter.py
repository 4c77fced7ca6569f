"""node-exporter: the host's CPU, memory, filesystems and network, one per node."""

from __future__ import annotations

from typing import Optional

import pulumi

from components import images
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import NodeExporterArgs
from components.workload import HealthCheck, HostMount, Port, Workload

NAME = "node-exporter"
PORT = 9100


def workload(args: NodeExporterArgs, name: str = NAME) -> Workload:
    return Workload(
        name=name,
        image=images.NODE_EXPORTER,
        ports=(Port("metrics", PORT),),
        resources=args.resources,
        args=(
            "--path.rootfs=/host",
            # Container and kubelet mounts are the containers' business, not the host's.
            "--collector.filesystem.mount-points-exclude="
            "^/(dev|proc|run|sys|var/lib/docker/.+|var/lib/kubelet/.+|var/lib/containers/.+)($|/)",
        ),
        # Host access is the point of this exporter: it reads the host's /proc, /sys and mounts.
        host_mounts=(HostMount("/", "/host"),),
        host_access_because="a host's metrics are read from its /proc, /sys and mounts, and its processes and network",
        host_pid=True,
        host_network=True,
        per_node=True,
        # Host namespaces and a read-only view of the host, but as nobody with no capabilities.
        run_as_user=65534,
        health=HealthCheck("metrics", "/"),
        metrics_port="metrics",
    )


class NodeExporter(ServiceComponent):
    """node-exporter on every node (a DaemonSet on kubernetes): the hosts' own metrics.

    args: NodeExporterArgs (the stacks' defaults when left out). platform: where it runs, provisioned.
    See ServiceComponent for the output properties.
    """

    kind = "NodeExporter"

    def __init__(self, name: str, args: Optional[NodeExporterArgs] = None, *, platform: Platform,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, platform, opts, args=args or NodeExporterArgs())

    @classmethod
    def render(cls, name: str, platform: Platform, *, args: NodeExporterArgs) -> Workload:
        return workload(args, name)
