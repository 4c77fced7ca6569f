"""Jaeger v2: OTLP in, the query UI, traces in memory (dev) or badger on a volume (staging, prod)."""

from __future__ import annotations

from components import images, yaml_text
from components.otel_collector import telemetry_metrics
from components.settings import Settings, go_duration
from components.workload import ConfigFile, DataVolume, HealthCheck, Port, Workload, grafana_clients

CONFIG = "/etc/jaeger/config.yaml"
DATA_DIR = "/badger"
UI_PORT = 16686
GRPC_PORT = 4317
HTTP_PORT = 4318
METRICS_PORT = 8888
HEALTH_PORT = 13133
STORE = "traces"


def _backend(settings: Settings) -> dict:
    jaeger = settings.jaeger
    if jaeger.storage == "badger":
        return {
            "badger": {
                "directories": {"keys": f"{DATA_DIR}/keys", "values": f"{DATA_DIR}/values"},
                "ephemeral": False,
                "ttl": {"spans": go_duration(jaeger.trace_ttl)},
            }
        }
    return {"memory": {"max_traces": jaeger.max_traces}}


def render_config(settings: Settings) -> str:
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
                "jaeger_storage": {"backends": {STORE: _backend(settings)}},
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


def workload(settings: Settings) -> Workload:
    jaeger = settings.jaeger
    badger = jaeger.storage == "badger"
    return Workload(
        name="jaeger",
        image=images.JAEGER,
        ports=(
            # Grafana reads traces through the query API; the collector is the only writer.
            Port("ui", UI_PORT, host_port=jaeger.port, clients=grafana_clients(settings)),
            Port("otlp-grpc", GRPC_PORT, clients=("otel-collector",)),
            Port("otlp-http", HTTP_PORT),
            Port("metrics", METRICS_PORT),
            Port("health", HEALTH_PORT),
        ),
        resources=jaeger.resources,
        args=(f"--config={CONFIG}",),
        config_files=(ConfigFile(CONFIG, render_config(settings)),),
        data=DataVolume(DATA_DIR, jaeger.storage_size) if badger else None,
        # The image is built on Alpine, whose busybox has wget.
        health=HealthCheck("health", "/status"),
        run_as_user=10001,
        metrics_port="metrics",
    )
