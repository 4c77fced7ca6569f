"""kube-state-metrics: the state of the cluster's objects (restarts, rollouts, jobs, nodes, claims)."""

from __future__ import annotations

from typing import Optional

import pulumi

from components import images
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import KubeStateMetricsArgs
from components.workload import ApiRead, HealthCheck, Port, Workload

NAME = "kube-state-metrics"
# The image's entrypoint sets both ports (--port=8080 --telemetry-port=8081).
PORT = 8080
TELEMETRY_PORT = 8081

# The objects the alert catalog and the Kubernetes dashboard read, by API group. Each is one
# value of --resources and exactly what the workload may list and watch: kube-state-metrics
# fails to start on a resource it may not list, and exposes nothing it was not asked for.
RESOURCES = {
    "": ("nodes", "persistentvolumeclaims", "persistentvolumes", "pods"),
    "apps": ("daemonsets", "deployments", "replicasets", "statefulsets"),
    "batch": ("cronjobs", "jobs"),
}


def workload(args: KubeStateMetricsArgs, platform: Platform, name: str = NAME) -> Workload:
    if platform.kind != "kubernetes":
        raise ValueError(f"{name}: kube-state-metrics reports on a Kubernetes cluster; the {platform.kind} "
                         "platform has none")
    resources = sorted(r for group in RESOURCES.values() for r in group)
    return Workload(
        name=name,
        image=images.KUBE_STATE_METRICS,
        ports=(Port("metrics", PORT), Port("telemetry", TELEMETRY_PORT)),
        resources=args.resources,
        args=(f"--resources={','.join(resources)}",),
        discovery=tuple(ApiRead(names, group, verbs=("list", "watch")) for group, names in RESOURCES.items()),
        # The image's user: nobody. Its /readyz (telemetry port) answers once metrics are gathered;
        # the image is distroless (no shell or HTTP client), and only kubernetes runs it.
        run_as_user=65534,
        health=HealthCheck("telemetry", "/readyz", docker_tool=None),
        metrics_port="metrics",
    )


class KubeStateMetrics(ServiceComponent):
    """kube-state-metrics (a Deployment, kubernetes only): the cluster's objects as metrics.

    args: KubeStateMetricsArgs (the stacks' defaults when left out). platform: a kubernetes
    platform, provisioned. See ServiceComponent for the output properties.
    """

    kind = "KubeStateMetrics"

    def __init__(self, name: str, args: Optional[KubeStateMetricsArgs] = None, *, platform: Platform,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, platform, opts, args=args or KubeStateMetricsArgs())

    @classmethod
    def render(cls, name: str, platform: Platform, *, args: KubeStateMetricsArgs) -> Workload:
        return workload(args, platform, name)
