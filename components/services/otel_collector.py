"""OpenTelemetry Collector (contrib): OTLP in; traces to Jaeger, logs to Loki, metrics to Prometheus."""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi

from components import images, yaml_text
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import OtelCollectorArgs, go_duration, milliseconds
from components.workload import ConfigFile, HealthCheck, Port, SecretFile, Sources, Workload

NAME = "otel-collector"
CONFIG = "/etc/otelcol-contrib/config.yaml"
GRPC_PORT = 4317
HTTP_PORT = 4318
METRICS_PORT = 8888
HEALTH_PORT = 13133


def telemetry_metrics(port: int, **extra) -> dict:
    """service.telemetry.metrics of the collector and of Jaeger (a collector distribution): its own
    metrics served for Prometheus on `port`.

    The exposed names are set here rather than left to defaults, because the alerts and dashboards
    name them: counters without `_total` and names without unit suffixes
    (otelcol_receiver_accepted_spans), which is also the collector's default since 0.152."""
    exporter = {"host": "0.0.0.0", "port": port, "without_type_suffix": True, "without_units": True}
    return {**extra, "readers": [{"pull": {"exporter": {"prometheus": exporter}}}]}


def sampling_processor(collector: OtelCollectorArgs) -> dict | None:
    """Tail sampling: every error trace, every slow trace, and a share of the rest; None keeps all."""
    sampling = collector.sampling
    if sampling.percentage >= 100:
        return None
    return {
        "decision_wait": go_duration(sampling.decision_wait),
        "num_traces": 50000,
        "policies": [
            {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
            {"name": "slow", "type": "latency", "latency": {"threshold_ms": milliseconds(sampling.slow_threshold)}},
            {"name": "share", "type": "probabilistic", "probabilistic": {"sampling_percentage": sampling.percentage}},
        ],
    }


# The file holding the token OTLP requests must carry (otel_collector.require_token).
TOKEN = SecretFile("otlp_token", None)
AUTHENTICATOR = "bearertokenauth"


def render_config(
    collector: OtelCollectorArgs, environment: str, jaeger_otlp: str, loki_http: str, prometheus_http: Sequence[str]
) -> str:
    """config.yaml. Addresses are host:port of Jaeger's OTLP gRPC, Loki's HTTP and each Prometheus."""
    exporters: dict = {
        "otlp_grpc/jaeger": {"endpoint": jaeger_otlp, "tls": {"insecure": True}},
        # Loki's native OTLP endpoint; the exporter appends /v1/logs.
        "otlp_http/loki": {"endpoint": f"http://{loki_http}/otlp"},
    }
    # Every Prometheus replica gets every metric, as scraping would give them.
    metrics_exporters = []
    for i, address in enumerate(prometheus_http):
        name = f"otlp_http/prometheus-{i}"
        exporters[name] = {"endpoint": f"http://{address}/api/v1/otlp"}
        metrics_exporters.append(name)

    processors: dict = {
        # First in every pipeline: refuse data before the collector runs out of memory.
        "memory_limiter": {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 25},
        "resource": {
            "attributes": [
                {"key": "deployment.environment.name", "value": environment, "action": "upsert"},
            ]
        },
        "batch": {"send_batch_size": 8192, "timeout": "5s"},
    }
    trace_processors = ["memory_limiter", "resource"]
    sampler = sampling_processor(collector)
    if sampler is not None:
        processors["tail_sampling"] = sampler
        trace_processors.append("tail_sampling")
    trace_processors.append("batch")

    grpc: dict = {"endpoint": f"0.0.0.0:{GRPC_PORT}"}
    http: dict = {"endpoint": f"0.0.0.0:{HTTP_PORT}"}
    # Bound to all interfaces: probes come from outside the container.
    extensions: dict = {"health_check": {"endpoint": f"0.0.0.0:{HEALTH_PORT}"}}
    if collector.require_token:
        # Both protocols answer 401 (gRPC: Unauthenticated) to a request without
        # `Authorization: Bearer <token>`; the extension reads the token from its secret file.
        extensions[AUTHENTICATOR] = {"filename": TOKEN.path}
        grpc["auth"] = http["auth"] = {"authenticator": AUTHENTICATOR}
    return yaml_text.dump(
        {
            "receivers": {"otlp": {"protocols": {"grpc": grpc, "http": http}}},
            "processors": processors,
            "exporters": exporters,
            "extensions": extensions,
            "service": {
                "extensions": list(extensions),
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "processors": trace_processors, "exporters": ["otlp_grpc/jaeger"]},
                    "logs": {"receivers": ["otlp"], "processors": ["memory_limiter", "resource", "batch"], "exporters": ["otlp_http/loki"]},
                    "metrics": {"receivers": ["otlp"], "processors": ["memory_limiter", "resource", "batch"], "exporters": metrics_exporters},
                },
                "telemetry": {"metrics": telemetry_metrics(METRICS_PORT)},
            },
        }
    )


def workload(
    collector: OtelCollectorArgs,
    *,
    environment: str,
    jaeger: str,
    loki: str,
    prometheus: Sequence[str],
    token: Optional[pulumi.Input[str]] = None,
    name: str = NAME,
) -> Workload:
    """token: required with require_token, kept secret and mounted as a file."""
    secrets = ()
    if collector.require_token:
        if token is None:
            raise ValueError(f"{name}: require_token is set, so the otlp_token is required")
        secrets = (SecretFile(TOKEN.name, pulumi.Output.secret(token)),)
    clients = collector.clients
    applications = Sources(
        namespaces=None if clients.namespaces is None else tuple(clients.namespaces), cidrs=tuple(clients.cidrs),
    )
    return Workload(
        name=name,
        image=images.OTEL_COLLECTOR,
        ports=(
            # Applications send their telemetry here: on kubernetes those of the namespaces and
            # address blocks the args name.
            Port("otlp-grpc", GRPC_PORT, host_port=collector.grpc_port, outside=applications),
            Port("otlp-http", HTTP_PORT, host_port=collector.http_port, outside=applications),
            Port("metrics", METRICS_PORT),
            Port("health", HEALTH_PORT),
        ),
        resources=collector.resources,
        args=(f"--config={CONFIG}",),
        config_files=(ConfigFile(CONFIG, render_config(collector, environment, jaeger, loki, prometheus)),),
        secret_files=secrets,
        # A distroless image: kubernetes probes the health_check extension, docker cannot.
        health=HealthCheck("health", "/", docker_tool=None),
        run_as_user=10001,
        metrics_port="metrics",
    )


class OtelCollector(ServiceComponent):
    """The OpenTelemetry Collector (contrib): applications send OTLP here; traces go to Jaeger
    (tail-sampled when the args say so), logs to Loki and metrics to every Prometheus replica.

    args: the stack file's `otel_collector:` keys (OtelCollectorArgs; the stacks' defaults when
    left out). environment: deployment.environment.name on everything it forwards. jaeger:
    host:port of Jaeger's OTLP gRPC port; loki: host:port of Loki's HTTP port; prometheus:
    host:port of each Prometheus replica (their addresses["web"]), which must accept OTLP.
    token: the bearer token applications must send, required with args.require_token.
    On kubernetes Jaeger, Loki and Prometheus admit it by the name "otel-collector".
    See ServiceComponent for the output properties.
    """

    kind = "OtelCollector"

    def __init__(self, name: str, args: Optional[OtelCollectorArgs] = None, *, platform: Platform, environment: str,
                 jaeger: str, loki: str, prometheus: Sequence[str], token: Optional[pulumi.Input[str]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, platform, opts, args=args or OtelCollectorArgs(), environment=environment,
                         jaeger=jaeger, loki=loki, prometheus=prometheus, token=token)

    @classmethod
    def render(cls, name: str, platform: Platform, *, args: OtelCollectorArgs, **inputs) -> Workload:
        return workload(args, name=name, **inputs)
