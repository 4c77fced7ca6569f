"""The whole observability stack for one environment."""

from __future__ import annotations

from typing import Optional

import pulumi

from components import (
    alertmanager,
    cadvisor,
    gpu_exporter,
    node_exporter,
    platform as platforms,
    postgres_exporter,
    prometheus,
    redis_exporter,
)
from components.platform import Platform
from components.settings import ConfigError, Settings
from components.workload import Workload

# Each exporter module offers workload(settings) -> Workload | None (None when disabled).
# Adding an exporter is one module, its test file and one line here.
EXPORTERS = [node_exporter, cadvisor, postgres_exporter, redis_exporter, gpu_exporter]


class Service(pulumi.ComponentResource):
    """One service of the stack: a component named after it, holding its platform resources."""

    def __init__(self, workload: Workload, platform: Platform, opts: Optional[pulumi.ResourceOptions] = None):
        kind = "".join(part.capitalize() for part in workload.name.split("-"))
        super().__init__(f"observability:services:{kind}", workload.name, None, opts)
        platform.deploy(workload, parent=self)
        self.register_outputs({})


class ObservabilityStack(pulumi.ComponentResource):
    def __init__(self, name: str, settings: Settings, opts: Optional[pulumi.ResourceOptions] = None):
        # Render every workload first: a problem found while rendering stops the program
        # before the stack registers anything, like a settings error does.
        platform = platforms.create(settings)
        try:
            self.workloads = render_workloads(settings, platform)
        except ValueError as error:
            raise ConfigError(f"stack {pulumi.get_stack()!r}: cannot render the stack: {error}") from None
        super().__init__("observability:index:Stack", name, None, opts)
        platform.provision(parent=self)
        for workload in self.workloads:
            Service(workload, platform, opts=pulumi.ResourceOptions(parent=self))

        self.endpoints = endpoints(settings, self.workloads[:2])
        self.register_outputs({"endpoints": self.endpoints})


def render_workloads(settings: Settings, platform: Platform) -> list[Workload]:
    """Prometheus, Alertmanager, then the enabled exporters, with every config file rendered."""
    exporters = [w for w in (module.workload(settings) for module in EXPORTERS) if w is not None]
    alerts = alertmanager.workload(settings, platform)
    metrics = prometheus.workload(
        settings,
        platform,
        scrape_jobs=[platform.scrape_job(w) for w in (alerts, *exporters)],
        alertmanagers=platform.addresses(alerts, "web"),
    )
    return [metrics, alerts, *exporters]


def endpoints(settings: Settings, workloads: list[Workload]) -> dict[str, str]:
    """Where a person opens each UI: the published host port on docker, the Service in-cluster."""
    urls = {}
    for w in workloads:
        port = w.port("web")
        if settings.platform == "docker":
            host = settings.docker.bind_address
            host = "127.0.0.1" if host == "0.0.0.0" else host
            urls[w.name] = f"http://{host}:{port.host_port}"
        else:
            urls[w.name] = f"http://{w.name}.{settings.kubernetes.namespace}.svc:{port.container_port}"
    return urls
