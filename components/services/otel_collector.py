"""OpenTelemetry Collector (contrib): OTLP in; traces to Jaeger, logs to Loki, metrics to Prometheus.

One collector, or (otel_collector.scale_out, kubernetes) two tiers of several pods, both roles of
the service `otel-collector`: the gateway tier, named `otel-collector` like the one collector so
that applications keep their endpoint, receives all OTLP, sends logs and metrics on itself and
routes each trace by its trace ID to one pod of the sampler tier, which tail-samples it and sends
what it keeps to Jaeger. Every span of a trace must reach the same sampler for its decision to see
the whole trace.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

import pulumi

from components import images, yaml_text
from components.platforms import Platform
from components.services.component import Rendered, ServiceComponent
from components.settings import OtelCollectorArgs, Resources, go_duration, milliseconds, quantity_bytes
from components.workload import Autoscale, ConfigFile, HealthCheck, Peers, Port, SecretFile, Sources, Workload

NAME = "otel-collector"
CONFIG = "/etc/otelcol-contrib/config.yaml"
GRPC_PORT = 4317
HTTP_PORT = 4318
METRICS_PORT = 8888
HEALTH_PORT = 13133
# The roles of the scaled-out collector (the pod label app.kubernetes.io/component).
GATEWAY, SAMPLER = "gateway", "sampler"
# The contrib exporter that routes each trace to one sampler (loadbalancingexporter, whose type
# was renamed from `loadbalancing`, kept as a deprecated alias).
LOAD_BALANCER = "load_balancing"


def sampler_name(name: str = NAME) -> str:
    """The sampler tier's workload, of the collector named `name`."""
    return f"{name}-sampler"


def samplers_service(name: str = NAME) -> str:
    """The headless Service that lists every ready sampler pod: the gateways' DNS resolver reads
    one address per pod from it (a Service with one virtual address would give them one backend)."""
    return f"{name}-samplers"


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


def has_samplers(collector: OtelCollectorArgs) -> bool:
    """Whether the collector runs a sampler tier: scaled out, and sampling. Keeping every trace
    needs no trace on one pod, so a gateway then sends traces to Jaeger itself."""
    return collector.scale_out.enabled and sampling_processor(collector) is not None


def jaeger_writers(collector: OtelCollectorArgs, name: str = NAME) -> tuple[str, ...]:
    """The collector's workloads that send spans to Jaeger's OTLP gRPC port."""
    return (sampler_name(name),) if has_samplers(collector) else (name,)


# The file holding the token OTLP requests must carry (otel_collector.require_token).
TOKEN = SecretFile("otlp_token", None)
AUTHENTICATOR = "bearertokenauth"
# First in every pipeline: refuse data before the collector runs out of memory.
MEMORY_LIMITER = {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 25}
BATCH = {"send_batch_size": 8192, "timeout": "5s"}


def jaeger_exporter(jaeger_otlp: str) -> dict:
    return {"endpoint": jaeger_otlp, "tls": {"insecure": True}}


def load_balancer(samplers: str, queue_size: int) -> dict:
    """The gateway's traces exporter: each trace, by its ID, to one of the pods the DNS name
    `samplers` lists (re-read every 5 s, the exporter's default), on their OTLP gRPC port.

    A batch a sampler fails to take goes back to this exporter's own queue and is retried through
    the ring of samplers as it is then, so a sampler that stopped is left out once DNS no longer
    lists it. For that, each sampler's own OTLP exporter waits for the send's result and does not
    retry by itself (otherwise it would report success once queued, and retry the stopped pod).
    A retried batch may bring some spans to a sampler twice."""
    return {
        "routing_key": "traceID",
        "resolver": {"dns": {"hostname": samplers, "port": str(GRPC_PORT)}},
        "protocol": {"otlp": {
            "tls": {"insecure": True},
            "retry_on_failure": {"enabled": False},
            "sending_queue": {"wait_for_result": True},
        }},
        # The exporter's own retry and queue, which its default config leaves off.
        "retry_on_failure": {"enabled": True, "initial_interval": "1s", "max_interval": "5s",
                             "max_elapsed_time": "1m", "multiplier": 2, "randomization_factor": 0.5},
        "sending_queue": {"queue_size": queue_size},
    }


def _config(receivers: dict, processors: dict, exporters: dict, extensions: dict, pipelines: dict) -> str:
    return yaml_text.dump(
        {
            "receivers": receivers,
            "processors": processors,
            "exporters": exporters,
            "extensions": extensions,
            "service": {
                "extensions": list(extensions),
                "pipelines": pipelines,
                "telemetry": {"metrics": telemetry_metrics(METRICS_PORT)},
            },
        }
    )


def _health_check() -> dict:
    # Bound to all interfaces: probes come from outside the container.
    return {"health_check": {"endpoint": f"0.0.0.0:{HEALTH_PORT}"}}


def render_config(
    collector: OtelCollectorArgs, environment: str, jaeger_otlp: str, loki_http: str, prometheus_http: Sequence[str],
    samplers: Optional[str] = None,
) -> str:
    """config.yaml of the one collector, or of the gateway tier. Addresses are host:port of Jaeger's
    OTLP gRPC, Loki's HTTP and each Prometheus. samplers: the DNS name listing the sampler tier's
    pods, to which the gateway routes traces instead of sampling them itself."""
    exporters: dict = {
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
        "memory_limiter": MEMORY_LIMITER,
        "resource": {
            "attributes": [
                {"key": "deployment.environment.name", "value": environment, "action": "upsert"},
            ]
        },
        "batch": BATCH,
    }
    trace_processors = ["memory_limiter", "resource"]
    if samplers is None:
        traces_exporter = "otlp_grpc/jaeger"
        exporters[traces_exporter] = jaeger_exporter(jaeger_otlp)
        sampler = sampling_processor(collector)
        if sampler is not None:
            processors["tail_sampling"] = sampler
            trace_processors.append("tail_sampling")
    else:
        traces_exporter = LOAD_BALANCER
        exporters[traces_exporter] = load_balancer(samplers, collector.scale_out.queue_size)
    trace_processors.append("batch")

    grpc: dict = {"endpoint": f"0.0.0.0:{GRPC_PORT}"}
    http: dict = {"endpoint": f"0.0.0.0:{HTTP_PORT}"}
    extensions = _health_check()
    if collector.require_token:
        # Both protocols answer 401 (gRPC: Unauthenticated) to a request without
        # `Authorization: Bearer <token>`; the extension reads the token from its secret file.
        extensions[AUTHENTICATOR] = {"filename": TOKEN.path}
        grpc["auth"] = http["auth"] = {"authenticator": AUTHENTICATOR}
    return _config(
        receivers={"otlp": {"protocols": {"grpc": grpc, "http": http}}},
        processors=processors,
        exporters=exporters,
        extensions=extensions,
        pipelines={
            "traces": {"receivers": ["otlp"], "processors": trace_processors, "exporters": [traces_exporter]},
            "logs": {"receivers": ["otlp"], "processors": ["memory_limiter", "resource", "batch"], "exporters": ["otlp_http/loki"]},
            "metrics": {"receivers": ["otlp"], "processors": ["memory_limiter", "resource", "batch"], "exporters": metrics_exporters},
        },
    )


def render_sampler_config(collector: OtelCollectorArgs, jaeger_otlp: str) -> str:
    """config.yaml of the sampler tier: traces from the gateways (OTLP gRPC, which already set
    the environment attribute), tail-sampled, to Jaeger."""
    return _config(
        receivers={"otlp": {"protocols": {"grpc": {"endpoint": f"0.0.0.0:{GRPC_PORT}"}}}},
        processors={"memory_limiter": MEMORY_LIMITER, "tail_sampling": sampling_processor(collector), "batch": BATCH},
        exporters={"otlp_grpc/jaeger": jaeger_exporter(jaeger_otlp)},
        extensions=_health_check(),
        pipelines={"traces": {"receivers": ["otlp"], "processors": ["memory_limiter", "tail_sampling", "batch"],
                              "exporters": ["otlp_grpc/jaeger"]}},
    )


def go_memory_limit(resources: Resources) -> dict[str, str]:
    """GOMEMLIMIT at 80% of the container's memory limit, where the memory limiter's hard limit
    is (memorylimiterprocessor's README): the Go runtime collects garbage harder as it nears it."""
    return {"GOMEMLIMIT": str(quantity_bytes(resources.limits.memory) * 4 // 5)}


def workload(
    collector: OtelCollectorArgs,
    *,
    environment: str,
    jaeger: str,
    loki: str,
    prometheus: Sequence[str],
    token: Optional[pulumi.Input[str]] = None,
    name: str = NAME,
) -> Rendered:
    """The one collector; with scale_out, the gateway tier and (when it samples) the sampler tier.
    token: required with require_token, kept secret and mounted as a file."""
    secrets = ()
    if collector.require_token:
        if token is None:
            raise ValueError(f"{name}: require_token is set, so the otlp_token is required")
        secrets = (SecretFile(TOKEN.name, pulumi.Output.secret(token)),)
    clients = collector.clients
    applications = Sources(
        namespaces=None if clients.namespaces is None else tuple(clients.namespaces), cidrs=tuple(clients.cidrs),
    )
    single = Workload(
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
    scale = collector.scale_out
    if not scale.enabled:
        return single
    samplers = samplers_service(name) if has_samplers(collector) else None
    gateway = replace(
        single,
        resources=scale.gateway.resources,
        env=go_memory_limit(scale.gateway.resources),
        config_files=(ConfigFile(CONFIG, render_config(collector, environment, jaeger, loki, prometheus, samplers)),),
        # It holds nothing a pod of its own must keep: CPU use alone says how many it needs.
        autoscale=Autoscale(scale.gateway.min_replicas, scale.gateway.max_replicas, scale.gateway.cpu_utilization),
        part_of=name,
        role=GATEWAY,
    )
    if samplers is None:
        return (gateway,)
    sampler = Workload(
        name=sampler_name(name),
        image=images.OTEL_COLLECTOR,
        ports=(
            # Only the gateways send here, each trace to the one pod its ID maps to.
            Port("otlp-grpc", GRPC_PORT, clients=(name,)),
            Port("metrics", METRICS_PORT),
            Port("health", HEALTH_PORT),
        ),
        resources=scale.sampler.resources,
        env=go_memory_limit(scale.sampler.resources),
        args=(f"--config={CONFIG}",),
        config_files=(ConfigFile(CONFIG, render_sampler_config(collector, jaeger)),),
        health=HealthCheck("health", "/", docker_tool=None),
        run_as_user=10001,
        metrics_port="metrics",
        # A fixed count, never autoscaled: each change of the pods the Service lists moves about
        # 1/N of the traces in flight to another sampler, which then decides on part of a trace.
        replicas=scale.sampler.replicas,
        # Ready pods only: a starting or stopping sampler gets no traces.
        peers=(Peers(samplers, GRPC_PORT, only_ready=True),),
        part_of=name,
        role=SAMPLER,
    )
    return (gateway, sampler)


class OtelCollector(ServiceComponent):
    """The OpenTelemetry Collector (contrib): applications send OTLP here; traces go to Jaeger
    (tail-sampled when the args say so), logs to Loki and metrics to every Prometheus replica.

    args: the stack file's `otel_collector:` keys (OtelCollectorArgs; the stacks' defaults when
    left out). environment: deployment.environment.name on everything it forwards. jaeger:
    host:port of Jaeger's OTLP gRPC port; loki: host:port of Loki's HTTP port; prometheus:
    host:port of each Prometheus replica (their addresses["web"]), which must accept OTLP.
    token: the bearer token applications must send, required with args.require_token.
    On kubernetes Loki and Prometheus admit it by its name ("otel-collector" in the stack), and
    Jaeger's OTLP port the workloads jaeger_writers(args, name) names (its sampler tier when
    args.scale_out runs one). See ServiceComponent for the output properties.
    """

    kind = "OtelCollector"

    def __init__(self, name: str, args: Optional[OtelCollectorArgs] = None, *, platform: Platform, environment: str,
                 jaeger: str, loki: str, prometheus: Sequence[str], token: Optional[pulumi.Input[str]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, platform, opts, args=args or OtelCollectorArgs(), environment=environment,
                         jaeger=jaeger, loki=loki, prometheus=prometheus, token=token)

    @classmethod
    def render(cls, name: str, platform: Platform, *, args: OtelCollectorArgs, **inputs) -> Rendered:
        return workload(args, name=name, **inputs)
