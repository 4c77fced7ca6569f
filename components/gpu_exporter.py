"""NVIDIA GPU exporter, one per GPU node: DCGM exporter or the nvidia-smi exporter.

Their metrics differ in names and units (DCGM: percent and MiB; nvidia-smi: 0-1 ratio and bytes);
dashboards and alerts pick the set that matches `exporters.gpu.exporter`.
"""

from __future__ import annotations

from typing import Optional

from components import images
from components.settings import Settings
from components.workload import Gpu, HealthCheck, Port, Workload

PORTS = {"dcgm": 9400, "nvidia_smi": 9835}


def workload(settings: Settings) -> Optional[Workload]:
    gpu = settings.exporters.gpu
    if not gpu.enabled:
        return None
    dcgm = gpu.exporter == "dcgm"
    return Workload(
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
        # Both images are Ubuntu with bash but neither wget nor curl.
        health=HealthCheck("metrics", "/health" if dcgm else "/", docker_tool="bash"),
        metrics_port="metrics",
    )
