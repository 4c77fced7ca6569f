"""node-exporter: the host's CPU, memory, filesystems and network, one per node."""

from __future__ import annotations

from typing import Optional

from components import images
from components.settings import Settings
from components.workload import HealthCheck, HostMount, Port, Workload

PORT = 9100


def workload(settings: Settings) -> Optional[Workload]:
    node = settings.exporters.node
    if not node.enabled:
        return None
    return Workload(
        name="node-exporter",
        image=images.NODE_EXPORTER,
        ports=(Port("metrics", PORT),),
        resources=node.resources,
        args=(
            "--path.rootfs=/host",
            # Container and kubelet mounts are the containers' business, not the host's.
            "--collector.filesystem.mount-points-exclude="
            "^/(dev|proc|run|sys|var/lib/docker/.+|var/lib/kubelet/.+|var/lib/containers/.+)($|/)",
        ),
        # Host access is the point of this exporter: it reads the host's /proc, /sys and mounts.
        host_mounts=(HostMount("/", "/host"),),
        host_pid=True,
        host_network=True,
        per_node=True,
        # Host namespaces and a read-only view of the host, but as nobody with no capabilities.
        run_as_user=65534,
        health=HealthCheck("metrics", "/"),
        metrics_port="metrics",
    )
