"""NVIDIA GPU exporter, one per GPU node: DCGM exporter or the nvidia-smi exporter.

Their metrics differ in names and units (DCGM: percent and MiB; nvidia-smi: 0-1 ratio and bytes);
dashboards and alerts pick the set that matches `exporters.gpu.exporter`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from components import images
from components.settings import Settings
from components.workload import ConfigFile, Gpu, HealthCheck, HostMount, Port, Workload

PORTS = {"dcgm": 9400, "nvidia_smi": 9835}


# DCGM: the fields collected (profiling ones included), and where kubelet says which pod holds
# which GPU.
DCGM_COUNTERS = "/etc/dcgm-exporter/observability/counters.csv"
COUNTERS_SOURCE = Path(__file__).parent.parent / "configs" / "gpu" / "dcgm-counters.csv"
POD_RESOURCES = "/var/lib/kubelet/pod-resources"


def _dcgm(settings: Settings) -> dict:
    """What the DCGM exporter needs beyond the common part: its counters, and on kubernetes the
    mapping of each GPU to the pod using it (pod, namespace and container labels)."""
    kubernetes = settings.platform == "kubernetes"
    env = {"DCGM_EXPORTER_COLLECTORS": DCGM_COUNTERS}
    if kubernetes:
        env["DCGM_EXPORTER_KUBERNETES"] = "true"
    return {
        "env": env,
        "config_files": (ConfigFile(DCGM_COUNTERS, COUNTERS_SOURCE.read_text()),),
        # The kubelet's pod-resources socket: which pod was given which GPU.
        "host_mounts": (HostMount(POD_RESOURCES, POD_RESOURCES),) if kubernetes else (),
        # Profiling counters (SM and tensor-core activity) need SYS_ADMIN in the container.
        "capabilities": ("SYS_ADMIN",),
        "field_env": {"NODE_NAME": "spec.nodeName"} if kubernetes else {},
    }


def workload(settings: Settings) -> Optional[Workload]:
    gpu = settings.exporters.gpu
    if not gpu.enabled:
        return None
    dcgm = gpu.exporter == "dcgm"
    return Workload(
        **(_dcgm(settings) if dcgm else {}),
        name="gpu-exporter",
        image=images.DCGM_EXPORTER if dcgm else images.NVIDIA_SMI_EXPORTER,
        ports=(Port("metrics", PORTS[gpu.exporter]),),
        resources=gpu.resources,
        gpu=Gpu(
            node_selector=dict(gpu.node_selector),
            tolerations=tuple(gpu.tolerations),
            runtime_class=gpu.runtime_class,
        ),
        per_node=True,
        unrestricted_because="NVML and DCGM need root to read the GPUs' counters",
        # The DCGM image is Ubuntu, with bash but neither wget nor curl. The nvidia-smi exporter's
        # is distroless from 1.14 on: nothing in it can make a request, so docker cannot check it.
        health=HealthCheck("metrics", "/health", docker_tool="bash") if dcgm else HealthCheck("metrics", "/", docker_tool=None),
        metrics_port="metrics",
    )
