"""The base of every service's component: one Workload, deployed on a platform.

Each service module offers a component class (NodeExporter, PostgresExporter, ...) that a Pulumi
program can use on its own, with typed args and the defaults the stacks use:

    platform = DockerPlatform()
    platform.provision()
    hosts = NodeExporter("node-exporter", NodeExporterArgs(), platform=platform)
    hosts.scrape_job  # how a Prometheus reaches it

The class says what the service needs (`render`, pure: it registers nothing); the platform alone
makes provider resources. ObservabilityStack renders every service of a stack first, checks them
together, and only then registers the components, from what it rendered (`from_rendered`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional, Union

import pulumi

from components.platforms import Platform
from components.workload import ScrapeJob, Workload


# What a service's `render` makes: one workload, or one per role of a service that runs as
# several (Loki's distributor, ingester, querier, ...: Workload.part_of names the service).
Rendered = Union[Workload, tuple[Workload, ...]]


def roles(rendered: Rendered) -> tuple[Workload, ...]:
    """The workloads of a rendered service: the one, or each role's."""
    return rendered if isinstance(rendered, tuple) else (rendered,)


class ServiceComponent(pulumi.ComponentResource):
    """One service, as a component named after it, holding its platform resources.

    Output properties:
      workloads: what was deployed (image, ports, files), as the platform received it: the
        service's one workload, or one per role of a service that runs as several;
      workload: the one workload of a service of one (None for a service of several roles);
      addresses: host:port of each replica, by port name ("<workload>/<port>" for a service of
        several roles), as the platform's other services reach it;
      urls: where a person or an application reaches each published port, keyed likewise;
      scrape_job: how a Prometheus reaches its metrics (None when it has none): one job over
        every role of a service of several.
    """

    # The component's type is observability:services:<kind>.
    kind: ClassVar[str]

    @classmethod
    def render(cls, name: str, platform: Platform, **inputs: Any) -> Rendered:
        """The service's workload (or its roles' workloads), from the component's inputs.
        Registers nothing."""
        raise NotImplementedError

    def __init__(self, name: str, platform: Platform, opts: Optional[pulumi.ResourceOptions], **inputs: Any):
        # Rendered before the component registers: a bad input stops here, with nothing registered.
        self._deploy(self.render(name, platform, **inputs), platform, opts)

    @classmethod
    def from_rendered(cls, workload: Rendered, platform: Platform,
                      opts: Optional[pulumi.ResourceOptions] = None) -> "ServiceComponent":
        """The component of a workload this class's `render` already made, deployed as it is.

        ObservabilityStack renders every service first, to check them together before anything
        is registered; this registers each of them without rendering it a second time. The
        classes' constructors only hand their inputs to `render`, so skipping them skips nothing.
        """
        component = cls.__new__(cls)
        ServiceComponent._deploy(component, workload, platform, opts)
        return component

    def _deploy(self, rendered: Rendered, platform: Platform, opts: Optional[pulumi.ResourceOptions]) -> None:
        self.workloads = roles(rendered)
        super().__init__(f"observability:services:{self.kind}", self.workloads[0].service, None, opts)
        for workload in self.workloads:
            platform.deploy(workload, parent=self)
        several = len(self.workloads) > 1
        self.workload: Optional[Workload] = None if several else self.workloads[0]
        self.addresses, self.urls = {}, {}
        for w in self.workloads:
            prefix = f"{w.name}/" if several else ""
            self.addresses |= {f"{prefix}{p.name}": platform.addresses(w, p.name) for p in w.ports}
            self.urls |= {f"{prefix}{port}": url for port, url in platform.urls(w).items()}
        jobs = platform.scrape_jobs(self.workloads)
        self.scrape_job: Optional[ScrapeJob] = jobs[0] if jobs else None
        self.register_outputs({"addresses": self.addresses, "urls": self.urls})
