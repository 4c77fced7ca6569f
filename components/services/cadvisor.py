"""cAdvisor: CPU, memory, filesystem and network use of every container, one per node."""

from __future__ import annotations

from typing import Optional

import pulumi

from components import images
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import CadvisorArgs
from components.workload import HealthCheck, HostMount, Port, Workload

NAME = "cadvisor"
PORT = 8080


def workload(args: CadvisorArgs, name: str = NAME) -> Workload:
    return Workload(
        name=name,
        image=images.CADVISOR,
        ports=(Port("metrics", PORT),),
        resources=args.resources,
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
        host_access_because="every container's cgroups and runtime state are the host's files",
        per_node=True,
        health=HealthCheck("metrics", "/healthz"),
        metrics_port="metrics",
    )


class Cadvisor(ServiceComponent):
    """cAdvisor on a docker host: each container's resource use. On kubernetes the kubelets serve
    the same metrics (Prometheus's cluster_targets), and this component refuses to run.

    args: CadvisorArgs (the stacks' defaults when left out). platform: where it runs, provisioned.
    See ServiceComponent for the output properties.
    """

    kind = "Cadvisor"

    def __init__(self, name: str, args: Optional[CadvisorArgs] = None, *, platform: Platform,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, platform, opts, args=args or CadvisorArgs())

    @classmethod
    def render(cls, name: str, platform: Platform, *, args: CadvisorArgs) -> Workload:
        if platform.kind == "kubernetes":
            raise ValueError(f"{name}: on kubernetes every kubelet serves cAdvisor's metrics, and no pod needs to "
                             "be privileged for them: give Prometheus cluster_targets instead")
        return workload(args, name)
