"""Loki (single binary): tsdb index, schema v13, retention by the compactor, OTLP ingestion."""

from __future__ import annotations

import pulumi

from components import images, yaml_text
from components.settings import LokiSettings, Settings
from components.workload import ConfigFile, DataVolume, HealthCheck, Port, SecretFile, Workload, grafana_clients

CONFIG = "/etc/loki/loki.yml"
DATA_DIR = "/loki"
HTTP_PORT = 3100
GRPC_PORT = 9095
# The first day of the v13 schema period; kept fixed so an existing store is never reinterpreted.
SCHEMA_FROM = "2024-01-01"


def _object_store(loki: LokiSettings) -> tuple[str, dict]:
    """The object_store name Loki's schema and compactor use, and common.storage for it."""
    s = loki.storage
    if s.type == "s3":
        config: dict = {"bucketnames": s.bucket, "s3forcepathstyle": s.force_path_style, "insecure": s.insecure}
        if s.endpoint:
            config["endpoint"] = s.endpoint
        if s.region:
            config["region"] = s.region
        return "s3", {"s3": config}
    if s.type == "gcs":
        return "gcs", {"gcs": {"bucket_name": s.bucket}}
    return "filesystem", {
        "filesystem": {"chunks_directory": f"{DATA_DIR}/chunks", "rules_directory": f"{DATA_DIR}/rules"}
    }


def render_config(settings: Settings) -> str:
    loki = settings.loki
    store, storage = _object_store(loki)
    limits = loki.limits
    return yaml_text.dump(
        {
            "auth_enabled": False,
            "server": {"http_listen_port": HTTP_PORT, "grpc_listen_port": GRPC_PORT, "log_level": "info"},
            "common": {
                "instance_addr": "127.0.0.1",
                "path_prefix": DATA_DIR,
                "replication_factor": 1,
                "ring": {"kvstore": {"store": "inmemory"}},
                "storage": storage,
            },
            "schema_config": {
                "configs": [
                    {
                        "from": SCHEMA_FROM,
                        "store": "tsdb",
                        "object_store": store,
                        "schema": "v13",
                        "index": {"prefix": "index_", "period": "24h"},
                    }
                ]
            },
            "limits_config": {
                "retention_period": loki.retention,
                # OTLP log ingestion keeps resource attributes as structured metadata.
                "allow_structured_metadata": True,
                # Every line gets detected_level (structured metadata): from the shipper's level
                # label, or from the OTLP severity. Dashboards and the ErrorLogBurst rule use it.
                "discover_log_levels": True,
                "volume_enabled": True,
                "ingestion_rate_mb": limits.ingestion_rate_mb,
                "ingestion_burst_size_mb": limits.ingestion_burst_size_mb,
                "max_global_streams_per_user": limits.max_global_streams_per_user,
                "per_stream_rate_limit": limits.per_stream_rate_limit,
                "max_line_size": limits.max_line_size,
                "reject_old_samples": True,
                "reject_old_samples_max_age": "168h",
            },
            "compactor": {
                "working_directory": f"{DATA_DIR}/compactor",
                "compaction_interval": "10m",
                # Retention is applied by the compactor, which needs somewhere to keep deletes.
                "retention_enabled": True,
                "retention_delete_delay": "2h",
                "delete_request_store": store,
            },
            "analytics": {"reporting_enabled": False},
        }
    )


def _credentials(settings: Settings) -> tuple[tuple[SecretFile, ...], dict[str, str]]:
    """Object store credentials as files, named by the variables the SDKs read them from."""
    secrets = settings.secrets
    storage = settings.loki.storage
    if storage.type == "s3" and secrets.loki_s3_access_key_id is not None:
        content = pulumi.Output.all(
            settings.secret("loki_s3_access_key_id"), settings.secret("loki_s3_secret_access_key")
        ).apply(lambda keys: f"[default]\naws_access_key_id = {keys[0]}\naws_secret_access_key = {keys[1]}\n")
        file = SecretFile("loki_s3_credentials", content)
        return (file,), {"AWS_SHARED_CREDENTIALS_FILE": file.path}
    if storage.type == "gcs" and secrets.loki_gcs_service_account is not None:
        file = SecretFile("loki_gcs_service_account.json", settings.secret("loki_gcs_service_account"))
        return (file,), {"GOOGLE_APPLICATION_CREDENTIALS": file.path}
    # No keys: the store's credentials come from the environment (an IAM role, workload identity).
    return (), {}


def workload(settings: Settings) -> Workload:
    secret_files, env = _credentials(settings)
    return Workload(
        name="loki",
        image=images.LOKI,
        ports=(
            # The shipper and the collector push logs; Grafana queries them.
            Port("http", HTTP_PORT, host_port=settings.loki.port,
                 clients=(settings.log_shipper.type, "otel-collector", *grafana_clients(settings))),
            # Loki's components call each other over gRPC, even within one process.
            Port("grpc", GRPC_PORT, clients=("loki",)),
        ),
        resources=settings.loki.resources,
        args=(f"-config.file={CONFIG}",),
        env=env,
        config_files=(ConfigFile(CONFIG, render_config(settings)),),
        secret_files=secret_files,
        data=DataVolume(DATA_DIR, settings.loki.storage_size),
        # /ready answers once the ingester has joined its ring. The image is distroless (no
        # shell, wget or curl), so docker runs Loki's own `-health` check against it.
        health=HealthCheck("http", "/ready", docker_tool="loki"),
        run_as_user=10001,
        metrics_port="http",
    )
