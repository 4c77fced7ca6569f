"""The whole observability stack for one environment."""

from __future__ import annotations

from typing import Optional

import pulumi

import pulumi_random as random

from components import (
    alert_rules,
    alertmanager,
    alloy,
    cadvisor,
    config_checks,
    dashboards as dashboard_models,
    grafana,
    gpu_exporter,
    images,
    jaeger,
    log_pipeline,
    loki,
    node_exporter,
    otel_collector,
    platform as platforms,
    postgres_exporter,
    prometheus,
    promtail,
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
            dashboards = dashboard_models.render(settings)
        except ValueError as error:
            raise ConfigError(f"stack {pulumi.get_stack()!r}: cannot render the stack: {error}") from None
        # The safety net: files Prometheus or Alertmanager would refuse are never shipped.
        problems = config_checks.check(settings, self.workloads)
        if problems:
            raise ConfigError(config_checks.message(pulumi.get_stack(), problems))
        super().__init__("observability:index:Stack", name, None, opts)
        platform.provision(parent=self)
        services = {w.name: Service(w, platform, opts=pulumi.ResourceOptions(parent=self)) for w in self.workloads}

        self.grafana_admin_password: Optional[pulumi.Output] = None
        if settings.grafana.mode == "deploy":
            self.grafana_admin_password = admin_password(settings, parent=self)
            server = grafana.workload(settings, self.grafana_admin_password)
            self.workloads.append(server)
            services[server.name] = Service(server, platform, opts=pulumi.ResourceOptions(parent=self))
            auth = pulumi.Output.concat(settings.grafana.admin_user, ":", self.grafana_admin_password)
            ready = [services[server.name]]
        else:
            auth, ready = settings.secret("grafana_api_token"), []
        grafana.GrafanaContent(
            settings, dashboards, grafana_endpoints(self.workloads, platform), auth, depends_on=ready,
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.endpoints = endpoints(settings, self.workloads)
        self.endpoints["grafana"] = grafana.url(settings)
        self.register_outputs({"endpoints": self.endpoints})


SHIPPERS = {"alloy": alloy, "promtail": promtail}
PROMTAIL_END_OF_LIFE = (
    "log_shipper.type is promtail: Promtail reached end of life on 2026-03-02 and gets no more "
    f"fixes; {images.PROMTAIL} is its last build. Grafana Alloy ships the same labels: set log_shipper.type to alloy."
)


def render_workloads(settings: Settings, platform: Platform) -> list[Workload]:
    """Every service of the stack, Prometheus first, with every config file rendered.

    Addresses depend only on a service's name, ports and replicas, so each service's config can
    point at the others before those are rendered."""
    exporters = [w for w in (module.workload(settings) for module in EXPORTERS) if w is not None]
    if settings.log_shipper.type == "promtail":
        pulumi.log.warn(PROMTAIL_END_OF_LIFE)
    alerts = alertmanager.workload(settings, platform)
    logs = loki.workload(settings)
    loki_http = platform.addresses(logs, "http")[0]
    shipper = SHIPPERS[settings.log_shipper.type].workload(
        settings, log_pipeline.pipeline(settings.platform, loki_http, settings.environment, settings.cluster)
    )
    traces = jaeger.workload(settings)
    collector = otel_collector.workload(
        settings,
        jaeger_otlp=platform.addresses(traces, "otlp-grpc")[0],
        loki_http=loki_http,
        prometheus_http=platform.addresses(prometheus.base(settings), "web"),
    )
    others = [alerts, logs, shipper, collector, traces, *exporters]
    scraped = [*others, grafana.base(settings)] if settings.grafana.mode == "deploy" else others
    metrics = prometheus.workload(
        settings,
        platform,
        scrape_jobs=[platform.scrape_job(w) for w in scraped],
        alertmanagers=platform.addresses(alerts, "web"),
        catalog_rules=alert_rules.render(settings, ["prometheus", *(w.name for w in scraped)]),
    )
    return [metrics, *others]


def admin_password(settings: Settings, parent: pulumi.Resource) -> pulumi.Output:
    """The stack's Grafana admin password: the one the stack sets, or one generated and kept in
    the stack's state (a Pulumi secret, exported as one)."""
    if settings.secrets.grafana_admin_password is not None:
        return settings.secret("grafana_admin_password")
    generated = random.RandomPassword(
        "grafana-admin-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=parent)
    )
    return pulumi.Output.secret(generated.result)


def grafana_endpoints(workloads: list[Workload], platform: Platform) -> grafana.Endpoints:
    """Grafana reads each service through its Service (kubernetes) or network alias (docker),
    and hands alerts to every Alertmanager replica."""
    by_name = {w.name: w for w in workloads}

    def service(name: str, port: str) -> str:
        return f"http://{name}:{by_name[name].port(port).container_port}"

    return grafana.Endpoints(
        prometheus=service("prometheus", "web"),
        loki=service("loki", "http"),
        jaeger=service("jaeger", "ui"),
        alertmanagers=tuple(f"http://{a}" for a in platform.addresses(by_name["alertmanager"], "web")),
    )


def endpoints(settings: Settings, workloads: list[Workload]) -> dict[str, str]:
    """Where a person or an application reaches each published port: on the docker host, or
    at the Service inside the cluster. Keyed by service, and by port where a service has several."""
    urls = {}
    for w in workloads:
        published = [p for p in w.ports if p.host_port is not None]
        for port in published:
            key = w.name if len(published) == 1 else f"{w.name}-{port.name}"
            if settings.platform == "docker":
                host = settings.docker.bind_address
                host = "127.0.0.1" if host == "0.0.0.0" else host
                urls[key] = f"http://{host}:{port.host_port}"
            else:
                urls[key] = f"http://{w.name}.{settings.kubernetes.namespace}.svc:{port.container_port}"
    return urls
