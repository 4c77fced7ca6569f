"""Jaeger v2: OTLP in, the query UI, traces in memory (dev) or badger on a volume (staging, prod)."""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi

from components import images, yaml_text
from components.services.otel_collector import telemetry_metrics
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import JaegerArgs, go_duration
from components.workload import ConfigFile, DataVolume, HealthCheck, Port, Workload

NAME = "jaeger"
CONFIG = "/etc/jaeger/config.yaml"
DATA_DIR = "/badger"
UI_PORT = 16686
GRPC_PORT = 4317
HTTP_PORT = 4318
METRICS_PORT = 8888
HEALTH_PORT = 13133
STORE = "traces"


def _backend(jaeger: JaegerArgs) -> dict:
    if jaeger.storage == "badger":
        return {
            "badger": {
                "directories": {"keys": f"{DATA_DIR}/keys", "values": f"{DATA_DIR}/values"},
                "ephemeral": False,
                "ttl": {"spans": go_duration(jaeger.trace_ttl)},
            }
        }
    return {"memory": {"max_traces": jaeger.max_traces}}


def render_config(jaeger: JaegerArgs) -> str:
    """Jaeger v2 is an OpenTelemetry Collector distribution: the same config shape."""
    return yaml_text.dump(
        {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["jaeger_storage_exporter"]}
                },
                "telemetry": {
                    "resource": {"service.name": "jaeger"},
                    "metrics": telemetry_metrics(METRICS_PORT, level="detailed"),
                },
            },
            "extensions": {
                "healthcheckv2": {"use_v2": True, "http": {"endpoint": f"0.0.0.0:{HEALTH_PORT}"}},
                "jaeger_query": {
                    "storage": {"traces": STORE},
                    "http": {"endpoint": f"0.0.0.0:{UI_PORT}"},
                },
                "jaeger_storage": {"backends": {STORE: _backend(jaeger)}},
            },
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"0.0.0.0:{GRPC_PORT}"},
                        "http": {"endpoint": f"0.0.0.0:{HTTP_PORT}"},
                    }
                }
            },
            "processors": {"batch": {}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": STORE}},
        }
    )


def workload(
    jaeger: JaegerArgs, *, readers: Sequence[str] = ("grafana",), writers: Sequence[str] = ("otel-collector",),
    name: str = NAME,
) -> Workload:
    """readers: the workloads that query traces; writers: those that send spans (OTLP gRPC);
    either may be workload.ANYONE."""
    badger = jaeger.storage == "badger"
    return Workload(
        name=name,
        image=images.JAEGER,
        ports=(
            # Grafana reads traces through the query API; the collector is the only writer.
            Port("ui", UI_PORT, host_port=jaeger.port, clients=tuple(readers)),
            Port("otlp-grpc", GRPC_PORT, clients=tuple(writers)),
            Port("otlp-http", HTTP_PORT),
            Port("metrics", METRICS_PORT),
            Port("health", HEALTH_PORT),
        ),
        resources=jaeger.resources,
        args=(f"--config={CONFIG}",),
        config_files=(ConfigFile(CONFIG, render_config(jaeger)),),
        data=DataVolume(DATA_DIR, jaeger.storage_size) if badger else None,
        # The image is built on Alpine, whose busybox has wget.
        health=HealthCheck("health", "/status"),
        run_as_user=10001,
        metrics_port="metrics",
    )


class Jaeger(ServiceComponent):
    """Jaeger v2: receives spans over OTLP, keeps them in memory or in badger on a volume, and
    serves the query UI and API.

    args: the stack file's `jaeger:` keys (JaegerArgs; the stacks' defaults when left out).
    readers and writers: the workloads that query traces and send spans, or workload.ANYONE.
    See ServiceComponent for the output properties; addresses["otlp-grpc"][0] is what the
    collector component's jaeger input takes.
    """

    kind = "Jaeger"

    def __init__(self, name: str, args: Optional[JaegerArgs] = None, *, platform: Platform,
                 readers: Sequence[str] = ("grafana",), writers: Sequence[str] = ("otel-collector",),
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, platform, opts, args=args or JaegerArgs(), readers=readers, writers=writers)

    @classmethod
    def render(cls, name: str, platform: Platform, *, args: JaegerArgs, readers: Sequence[str],
               writers: Sequence[str]) -> Workload:
        return workload(args, readers=readers, writers=writers, name=name)
