"""NVIDIA GPU exporter, one per GPU node: DCGM exporter or the nvidia-smi exporter.

Their metrics differ in names and units (DCGM: percent and MiB; nvidia-smi: 0-1 ratio and bytes);
dashboards and alerts pick the set that matches `exporters.gpu.exporter`.
"""

from __future__ import annotations

from typing import Optional

import pulumi

from components import CONFIGS, images
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import GpuExporterArgs
from components.workload import ConfigFile, Gpu, HealthCheck, HostMount, Port, Workload

NAME = "gpu-exporter"
PORTS = {"dcgm": 9400, "nvidia_smi": 9835}


# DCGM: the fields collected (profiling ones included), and where kubelet says which pod holds
# which GPU.
DCGM_COUNTERS = "/etc/dcgm-exporter/observability/counters.csv"
COUNTERS_SOURCE = CONFIGS / "gpu" / "dcgm-counters.csv"
POD_RESOURCES = "/var/lib/kubelet/pod-resources"


def _dcgm(platform: str) -> dict:
    """What the DCGM exporter needs beyond the common part: its counters, and on kubernetes the
    mapping of each GPU to the pod using it (pod, namespace and container labels)."""
    kubernetes = platform == "kubernetes"
    env = {"DCGM_EXPORTER_COLLECTORS": DCGM_COUNTERS}
    if kubernetes:
        env["DCGM_EXPORTER_KUBERNETES"] = "true"
    return {
        "env": env,
        "config_files": (ConfigFile(DCGM_COUNTERS, COUNTERS_SOURCE.read_text()),),
        # The kubelet's pod-resources socket: which pod was given which GPU.
        "host_mounts": (HostMount(POD_RESOURCES, POD_RESOURCES),) if kubernetes else (),
        "host_access_because": "the kubelet's pod-resources socket says which pod holds which GPU" if kubernetes else None,
        # Profiling counters (SM and tensor-core activity) need SYS_ADMIN in the container.
        "capabilities": ("SYS_ADMIN",),
        "field_env": {"NODE_NAME": "spec.nodeName"} if kubernetes else {},
    }


def workload(args: GpuExporterArgs, platform: str, name: str = NAME) -> Workload:
    """platform: the kind of platform it runs on ("docker" or "kubernetes")."""
    dcgm = args.exporter == "dcgm"
    return Workload(
        **(_dcgm(platform) if dcgm else {}),
        name=name,
        image=images.DCGM_EXPORTER if dcgm else images.NVIDIA_SMI_EXPORTER,
        ports=(Port("metrics", PORTS[args.exporter]),),
        resources=args.resources,
        gpu=Gpu(
            node_selector=dict(args.node_selector),
            tolerations=tuple(args.tolerations),
            runtime_class=args.runtime_class,
        ),
        per_node=True,
        unrestricted_because="NVML and DCGM need root to read the GPUs' counters",
        # The DCGM image is Ubuntu, with bash but neither wget nor curl. The nvidia-smi exporter's
        # is distroless from 1.14 on: nothing in it can make a request, so docker cannot check it.
        health=HealthCheck("metrics", "/health", docker_tool="bash") if dcgm else HealthCheck("metrics", "/", docker_tool=None),
        metrics_port="metrics",
    )


class GpuExporter(ServiceComponent):
    """An NVIDIA GPU exporter on every GPU node: DCGM's, or the nvidia-smi exporter.

    args: which exporter, the GPU nodes' selector, taints and runtime class (kubernetes), and
    resources (the stacks' defaults when left out). platform: where it runs, provisioned.
    See ServiceComponent for the output properties.
    """

    kind = "GpuExporter"

    def __init__(self, name: str, args: Optional[GpuExporterArgs] = None, *, platform: Platform,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, platform, opts, args=args or GpuExporterArgs())

    @classmethod
    def render(cls, name: str, platform: Platform, *, args: GpuExporterArgs) -> Workload:
        return workload(args, platform.kind, name)
