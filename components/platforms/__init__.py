"""Platforms turn a Workload into provider resources: docker (one engine) or kubernetes (a cluster).

A platform knows how to run and address containers; it never knows what Prometheus is.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi

from components.settings import Settings
from components.workload import ScrapeJob, Workload


# On docker containers whose ports listen on every interface because the stack said so.
PUBLIC_PORTS_LABEL = "observability.dev/public-ports"


def data_options(protect: bool) -> pulumi.ResourceOptions:
    """Options for resources that hold data: protected and kept on destroy where the stack asks."""
    return pulumi.ResourceOptions(protect=protect, retain_on_delete=protect)


class Platform:
    """What every platform offers the services.

    A program makes one, calls provision() once, then hands it to each service's component. It
    registers nothing until provision(): the stack renders every service first.
    """

    kind: str

    def provision(self, parent: Optional[pulumi.Resource] = None) -> None:
        """Register the provider and shared resources (a network, or a namespace), as children of
        `parent` (the program's stack when None)."""
        raise NotImplementedError

    def addresses(self, workload: Workload, port: str) -> list[str]:
        """host:port of each replica of a workload, as other services in the stack reach it."""
        raise NotImplementedError

    def deploy(self, workload: Workload, parent: pulumi.Resource) -> None:
        """Register the resources that run the workload, as children of `parent`."""
        raise NotImplementedError

    def urls(self, workload: Workload) -> dict[str, str]:
        """Where a person or an application reaches each published port, by port name."""
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

    def scrape_jobs(self, workloads: Sequence[Workload]) -> list[ScrapeJob]:
        """One job per service, in the order the services first appear: a workload's own, or
        one over every role of a service that runs as several (Workload.part_of)."""
        by_service: dict[str, list[Workload]] = {}
        for w in workloads:
            if w.metrics_port is not None:
                by_service.setdefault(w.service, []).append(w)
        return [self.scrape_job(roles[0]) if len(roles) == 1 and roles[0].part_of is None
                else self.service_scrape_job(service, roles) for service, roles in by_service.items()]

    def service_scrape_job(self, service: str, roles: Sequence[Workload]) -> ScrapeJob:
        """One job over every role of a service."""
        raise ValueError(f"{service}: {self.kind} runs no service as several roles")


def create(settings: Settings) -> Platform:
    """The platform the stack's settings name. It registers nothing until provision()."""
    if settings.platform == "docker":
        from components.platforms.docker import DockerPlatform

        return DockerPlatform(settings.docker, protect_data=settings.protect_data)
    from components.platforms.kubernetes import KubernetesPlatform

    return KubernetesPlatform(
        settings.kubernetes, environment=settings.environment, protect_data=settings.protect_data
    )
