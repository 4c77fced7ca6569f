"""Platforms turn a Workload into provider resources: docker (one engine) or kubernetes (a cluster).

A platform knows how to run and address containers; it never knows what Prometheus is.
"""

from __future__ import annotations

import pulumi

from components.settings import Settings
from components.workload import ScrapeJob, Workload


# On docker containers whose ports listen on every interface because the stack said so.
PUBLIC_PORTS_LABEL = "observability.dev/public-ports"


def data_options(settings: Settings) -> pulumi.ResourceOptions:
    """Options for resources that hold data: protected and kept on destroy where the stack asks."""
    protect = settings.protect_data
    return pulumi.ResourceOptions(protect=protect, retain_on_delete=protect)


class Platform:
    """What every platform offers the services."""

    kind: str

    def provision(self, parent: pulumi.Resource) -> None:
        """Register the provider and shared resources; called once everything is rendered."""
        raise NotImplementedError

    def addresses(self, workload: Workload, port: str) -> list[str]:
        """host:port of each replica of a workload, as other services in the stack reach it."""
        raise NotImplementedError

    def deploy(self, workload: Workload, parent: pulumi.Resource) -> None:
        """Register the resources that run the workload, as children of `parent`."""
        raise NotImplementedError

    def scrape_job(self, workload: Workload) -> ScrapeJob:
        """How Prometheus reaches the workload's metrics port."""
        port = workload.metrics_port
        if port is None:
            raise ValueError(f"{workload.name} has no metrics port")
        return ScrapeJob(
            name=workload.name,
            targets=tuple(self.addresses(workload, port)),
            metrics_path=workload.metrics_path,
        )


def create(settings: Settings) -> Platform:
    """The platform the stack's settings name. It registers nothing until provision()."""
    if settings.platform == "docker":
        from components.platform.docker import DockerPlatform

        return DockerPlatform(settings)
    from components.platform.kubernetes import KubernetesPlatform

    return KubernetesPlatform(settings)
