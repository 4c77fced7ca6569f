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

from typing import Any, ClassVar, Optional

import pulumi

from components.platforms import Platform
from components.workload import ScrapeJob, Workload


class ServiceComponent(pulumi.ComponentResource):
    """One service, as a component named after it, holding its platform resources.

    Output properties:
      workload: what was deployed (image, ports, files), as the platform received it;
      addresses: host:port of each replica, by port name, as the platform's other services reach it;
      urls: where a person or an application reaches each published port, by port name;
      scrape_job: how a Prometheus reaches its metrics (None when it has none).
    """

    # The component's type is observability:services:<kind>.
    kind: ClassVar[str]

    @classmethod
    def render(cls, name: str, platform: Platform, **inputs: Any) -> Workload:
        """The service's workload, from the component's inputs. Registers nothing."""
        raise NotImplementedError

    def __init__(self, name: str, platform: Platform, opts: Optional[pulumi.ResourceOptions], **inputs: Any):
        # Rendered before the component registers: a bad input stops here, with nothing registered.
        self._deploy(self.render(name, platform, **inputs), platform, opts)

    @classmethod
    def from_rendered(cls, workload: Workload, platform: Platform,
                      opts: Optional[pulumi.ResourceOptions] = None) -> "ServiceComponent":
        """The component of a workload this class's `render` already made, deployed as it is.

        ObservabilityStack renders every service first, to check them together before anything
        is registered; this registers each of them without rendering it a second time. The
        classes' constructors only hand their inputs to `render`, so skipping them skips nothing.
        """
        component = cls.__new__(cls)
        ServiceComponent._deploy(component, workload, platform, opts)
        return component

    def _deploy(self, workload: Workload, platform: Platform, opts: Optional[pulumi.ResourceOptions]) -> None:
        super().__init__(f"observability:services:{self.kind}", workload.name, None, opts)
        platform.deploy(workload, parent=self)
        self.workload = workload
        self.addresses = {p.name: platform.addresses(workload, p.name) for p in workload.ports}
        self.urls = platform.urls(workload)
        self.scrape_job: Optional[ScrapeJob] = platform.scrape_job(workload) if workload.metrics_port else None
        self.register_outputs({"addresses": self.addresses, "urls": self.urls})
