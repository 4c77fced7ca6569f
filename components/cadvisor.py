"""cAdvisor: CPU, memory, filesystem and network use of every container, one per node."""

from __future__ import annotations

from typing import Optional

from components import images
from components.settings import Settings
from components.workload import HealthCheck, HostMount, Port, Workload

PORT = 8080


def workload(settings: Settings) -> Optional[Workload]:
    cadvisor = settings.exporters.cadvisor
    if not cadvisor.enabled:
        return None
    return Workload(
        name="cadvisor",
        image=images.CADVISOR,
        ports=(Port("metrics", PORT),),
        resources=cadvisor.resources,
        args=(
            "--housekeeping_interval=15s",
            "--store_container_labels=false",
            # Metric families with high cardinality and little use on dashboards or alerts.
            "--disable_metrics=advtcp,cpu_topology,hugetlb,memory_numa,percpu,referenced_memory,resctrl,sched,tcp,udp",
        ),
        # cAdvisor reads cgroups and the runtime's state of every container: it needs
        # privileged mode and these host paths, read-only.
        host_mounts=(
            HostMount("/", "/rootfs"),
            HostMount("/var/run", "/var/run"),
            HostMount("/sys", "/sys"),
            HostMount("/var/lib/docker", "/var/lib/docker"),
            HostMount("/dev/disk", "/dev/disk"),
        ),
        privileged=True,
        unrestricted_because="cAdvisor reads every container's cgroups and runtime state",
        per_node=True,
        health=HealthCheck("metrics", "/healthz"),
        metrics_port="metrics",
    )
