"""The whole observability stack for one environment."""

from __future__ import annotations

import posixpath
from typing import Optional

import pulumi

import pulumi_random as random

from components import images, platforms
from components.alerting import alert_rules
from components.grafana import dashboards as dashboard_models
from components.grafana.content import Endpoints, GrafanaContent
from components.services import (
    alertmanager, alloy, cadvisor, gpu_exporter, grafana, jaeger, kube_state_metrics, loki, node_exporter, otel_collector,
    postgres_exporter, prometheus, promtail, redis_exporter,
)
from components.settings import config_checks
from components.platforms import Platform
from components.services.component import Rendered, ServiceComponent, roles
from components.settings import (
    CadvisorArgs,
    ConfigError,
    GpuExporterArgs,
    GrafanaContentArgs,
    GrafanaServerArgs,
    KubeStateMetricsArgs,
    LogShipperArgs,
    NodeExporterArgs,
    PostgresExporterArgs,
    RedisExporterArgs,
    Settings,
    args_of,
    cluster_targets,
)
from components.workload import Workload, grafana_clients

# A service the stack runs as its own component: the class, its name and the inputs it gets.
Planned = tuple[type[ServiceComponent], str, dict]


def exporters(settings: Settings) -> list[Planned]:
    """The exporters the stack's settings enable, with their args and secrets."""
    e = settings.exporters
    planned: list[Planned] = []
    if e.node.enabled:
        planned.append((node_exporter.NodeExporter, node_exporter.NAME, {"args": args_of(e.node, NodeExporterArgs)}))
    # On kubernetes the kubelets serve cAdvisor's metrics (cluster_targets); docker runs cAdvisor.
    if e.cadvisor.enabled and settings.platform == "docker":
        planned.append((cadvisor.Cadvisor, cadvisor.NAME, {"args": args_of(e.cadvisor, CadvisorArgs)}))
    if e.kube_state_metrics.enabled and settings.platform == "kubernetes":
        planned.append((kube_state_metrics.KubeStateMetrics, kube_state_metrics.NAME, {
            "args": args_of(e.kube_state_metrics, KubeStateMetricsArgs),
        }))
    if e.postgres.enabled:
        planned.append((postgres_exporter.PostgresExporter, postgres_exporter.NAME, {
            "args": args_of(e.postgres, PostgresExporterArgs),
            "password": settings.secret("postgres_password"),
        }))
    if e.redis.enabled:
        planned.append((redis_exporter.RedisExporter, redis_exporter.NAME, {
            "args": args_of(e.redis, RedisExporterArgs), "password": settings.optional_secret("redis_password"),
        }))
    if e.gpu.enabled:
        planned.append((gpu_exporter.GpuExporter, gpu_exporter.NAME, {"args": args_of(e.gpu, GpuExporterArgs)}))
    return planned


class ObservabilityStack(pulumi.ComponentResource):
    def __init__(self, name: str, settings: Settings, opts: Optional[pulumi.ResourceOptions] = None):
        # Render every workload first: a problem found while rendering stops the program
        # before the stack registers anything, like a settings error does.
        platform = platforms.create(settings)
        try:
            rendered = render_workloads(settings, platform)
            dashboards = dashboard_models.render(settings)
        except ValueError as error:
            raise ConfigError(f"stack {pulumi.get_stack()!r}: cannot render the stack: {error}") from None
        # The safety net: files Prometheus or Alertmanager would refuse are never shipped.
        self.workloads = [w for _, service in rendered for w in roles(service)]
        problems = config_checks.check(settings, self.workloads)
        if problems:
            raise ConfigError(config_checks.message(pulumi.get_stack(), problems))
        super().__init__("observability:index:Stack", name, None, opts)
        platform.provision(parent=self)
        child = pulumi.ResourceOptions(parent=self)
        # Each service's component, with the workload that was rendered and checked.
        self.services = {roles(service)[0].service: cls.from_rendered(service, platform, child)
                         for cls, service in rendered}

        self.grafana_admin_password: Optional[pulumi.Output] = None
        if settings.grafana.mode == "deploy":
            self.grafana_admin_password = admin_password(settings, parent=self)
            server = grafana.Grafana(
                grafana.NAME, args_of(settings.grafana, GrafanaServerArgs),
                admin_password=self.grafana_admin_password, platform=platform,
                datasources=outside_datasources(settings),
                database_password=settings.optional_secret("grafana_database_password"),
                database_ca_cert=settings.optional_secret("grafana_database_ca_cert"), opts=child,
            )
            self.services[server.workload.name] = server
            self.workloads.append(server.workload)
            auth = pulumi.Output.concat(settings.grafana.admin_user, ":", self.grafana_admin_password)
            ready = [server]
        else:
            auth, ready = settings.secret("grafana_api_token"), []
        content = GrafanaContentArgs(
            url=grafana.url(settings), folders=settings.grafana.folders,
            datasource_urls=settings.grafana.datasource_urls, long_term_metrics=settings.grafana.long_term_metrics,
            alerts=settings.grafana.alerts,
            runbook_url=settings.alerts.runbook_url,
        )
        GrafanaContent(
            "grafana", content, dashboards=dashboards, endpoints=grafana_endpoints(self.workloads, platform),
            auth=auth, long_term_metrics_password=settings.optional_secret("long_term_metrics_password"),
            depends_on=ready, opts=child,
        )

        self.endpoints = endpoints(self.workloads, platform)
        self.endpoints["grafana"] = grafana.url(settings)
        self.register_outputs({"endpoints": self.endpoints})


# log_shipper.type: the component that ships logs, named after its type.
SHIPPERS = {"alloy": alloy.Alloy, "promtail": promtail.Promtail}
PROMTAIL_END_OF_LIFE = (
    "log_shipper.type is promtail: Promtail reached end of life on 2026-03-02 and gets no more "
    f"fixes; {images.PROMTAIL} is its last build. Grafana Alloy ships the same labels: set log_shipper.type to alloy."
)


def render_workloads(settings: Settings, platform: Platform) -> list[tuple[type[ServiceComponent], Rendered]]:
    """Every service of the stack that has a component class, Prometheus first, with every config
    file rendered: the class and its workload. Grafana's server comes later, with its password.

    Addresses depend only on a service's name, ports and replicas, so each service's config can
    point at the others before those are rendered."""
    exporter_workloads = [(cls, cls.render(name, platform, **inputs)) for cls, name, inputs in exporters(settings)]
    if settings.log_shipper.type == "promtail":
        pulumi.log.warn(PROMTAIL_END_OF_LIFE)
    readers = grafana_clients(settings)
    # Secrets go as the stack sets them; each component mounts those its args use.
    alerts_inputs = {
        "args": settings.alertmanager,
        "slack_webhook_url": settings.optional_secret("slack_webhook_url"),
        "pagerduty_routing_key": settings.optional_secret("pagerduty_routing_key"),
        "watchdog_url": settings.optional_secret("watchdog_url"),
        "readers": readers,
    }
    alerts = alertmanager.Alertmanager.render(alertmanager.NAME, platform, **alerts_inputs)
    logs_inputs = {
        "args": settings.loki,
        "writers": (settings.log_shipper.type, "otel-collector"),
        "readers": readers,
        "s3_access_key_id": settings.optional_secret("loki_s3_access_key_id"),
        "s3_secret_access_key": settings.optional_secret("loki_s3_secret_access_key"),
        "gcs_service_account": settings.optional_secret("loki_gcs_service_account"),
    }
    logs = loki.Loki.render(loki.NAME, platform, **logs_inputs)
    loki_http = loki.push_address(platform, logs)
    shipper_inputs = {
        "args": args_of(settings.log_shipper, LogShipperArgs),
        "loki": loki_http,
        "environment": settings.environment,
        "cluster": settings.cluster,
    }
    shipper_class = SHIPPERS[settings.log_shipper.type]
    shipper = shipper_class.render(settings.log_shipper.type, platform, **shipper_inputs)
    traces_inputs = {"args": settings.jaeger, "readers": readers,
                     "writers": otel_collector.jaeger_writers(settings.otel_collector),
                     "elasticsearch_password": settings.optional_secret("jaeger_elasticsearch_password"),
                     "cassandra_password": settings.optional_secret("jaeger_cassandra_password"),
                     "storage_ca": settings.optional_secret("jaeger_storage_ca")}
    traces = jaeger.Jaeger.render(jaeger.NAME, platform, **traces_inputs)
    metrics_inputs = {
        "args": settings.prometheus,
        "environment": settings.environment,
        "cluster": settings.cluster,
        "readers": readers,
        "remote_write_password": settings.optional_secret("remote_write_password"),
    }
    collector_inputs = {
        "args": settings.otel_collector,
        "environment": settings.environment,
        "token": settings.optional_secret("otlp_token"),
        "jaeger": jaeger.otlp_address(platform, traces),
        "loki": loki_http,
        "prometheus": platform.addresses(
            prometheus.base(settings.prometheus, platform, readers, metrics_inputs["remote_write_password"]), "web"
        ),
    }
    collector = otel_collector.OtelCollector.render(otel_collector.NAME, platform, **collector_inputs)
    others = [w for service in (alerts, logs, shipper, collector, traces, *(w for _, w in exporter_workloads))
              for w in roles(service)]
    if settings.grafana.mode == "deploy":
        # Its address and scrape job; the server itself is registered once its admin password is.
        scraped = [*others, grafana.base(args_of(settings.grafana, GrafanaServerArgs), platform)]
    else:
        scraped = others
    targets = cluster_targets(settings)
    scrape_jobs = platform.scrape_jobs(scraped)
    catalog = alert_rules.render(settings, ["prometheus", *(j.name for j in scrape_jobs), *prometheus.cluster_job_names(targets)])
    metrics_inputs |= {
        "cluster_targets": targets,
        "scrape_jobs": scrape_jobs,
        "alertmanagers": platform.addresses(alerts, "web"),
        "rule_files": {posixpath.basename(f.path): f.content for f in prometheus.rule_files(catalog, settings)},
    }
    metrics = prometheus.Prometheus.render(prometheus.NAME, platform, **metrics_inputs)
    return [
        (prometheus.Prometheus, metrics),
        (alertmanager.Alertmanager, alerts),
        (loki.Loki, logs),
        (shipper_class, shipper),
        (otel_collector.OtelCollector, collector),
        (jaeger.Jaeger, traces),
        *exporter_workloads,
    ]


def outside_datasources(settings: Settings) -> list[str]:
    """The datasource URLs the stack file points at instead of the stack's own services, and the
    long-term metrics store."""
    urls = [url for url in settings.grafana.datasource_urls.model_dump().values() if url is not None]
    long_term = settings.grafana.long_term_metrics
    return urls + ([long_term.url] if long_term is not None else [])


def admin_password(settings: Settings, parent: pulumi.Resource) -> pulumi.Output:
    """The stack's Grafana admin password: the one the stack sets, or one generated and kept in
    the stack's state (a Pulumi secret, exported as one)."""
    if settings.secrets.grafana_admin_password is not None:
        return settings.secret("grafana_admin_password")
    generated = random.RandomPassword(
        "grafana-admin-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=parent)
    )
    return pulumi.Output.secret(generated.result)


def grafana_endpoints(workloads: list[Workload], platform: Platform) -> Endpoints:
    """Grafana reads each service through its Service (kubernetes) or network alias (docker),
    and hands alerts to every Alertmanager replica."""
    by_name = {w.name: w for w in workloads}

    def service(name: str, port: str) -> str:
        return f"http://{name}:{by_name[name].port(port).container_port}"

    return Endpoints(
        prometheus=service("prometheus", "web"),
        loki=service(loki.query_address_of(workloads), "http"),
        jaeger=service("jaeger", "ui"),
        alertmanagers=tuple(f"http://{a}" for a in platform.addresses(by_name["alertmanager"], "web")),
    )


def endpoints(workloads: list[Workload], platform: Platform) -> dict[str, str]:
    """Where a person or an application reaches each published port: on the docker host, or
    at the Service inside the cluster. Keyed by service, and by port where a service has several."""
    urls = {}
    for w in workloads:
        published = platform.urls(w)
        for port, url in published.items():
            urls[w.name if len(published) == 1 else f"{w.name}-{port}"] = url
    return urls
