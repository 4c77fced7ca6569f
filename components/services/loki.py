"""Loki (single binary): tsdb index, schema v13, retention by the compactor, OTLP ingestion."""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi

from components import images, yaml_text
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import LokiArgs
from components.workload import ConfigFile, DataVolume, Egress, HealthCheck, Port, SecretFile, Workload

NAME = "loki"
CONFIG = "/etc/loki/loki.yml"
DATA_DIR = "/loki"
HTTP_PORT = 3100
GRPC_PORT = 9095
# The first day of the v13 schema period; kept fixed so an existing store is never reinterpreted.
SCHEMA_FROM = "2024-01-01"


def _object_store(loki: LokiArgs) -> tuple[str, dict]:
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


def render_config(loki: LokiArgs) -> str:
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


def _credentials(
    loki: LokiArgs,
    s3_access_key_id: Optional[pulumi.Input[str]],
    s3_secret_access_key: Optional[pulumi.Input[str]],
    gcs_service_account: Optional[pulumi.Input[str]],
) -> tuple[tuple[SecretFile, ...], dict[str, str]]:
    """Object store credentials as files, named by the variables the SDKs read them from."""
    storage = loki.storage
    if (s3_access_key_id is None) != (s3_secret_access_key is None):
        raise ValueError("an S3 access key needs both s3_access_key_id and s3_secret_access_key")
    if storage.type == "s3" and s3_access_key_id is not None:
        content = pulumi.Output.secret(pulumi.Output.all(s3_access_key_id, s3_secret_access_key)).apply(
            lambda keys: f"[default]\naws_access_key_id = {keys[0]}\naws_secret_access_key = {keys[1]}\n"
        )
        file = SecretFile("loki_s3_credentials", content)
        return (file,), {"AWS_SHARED_CREDENTIALS_FILE": file.path}
    if storage.type == "gcs" and gcs_service_account is not None:
        file = SecretFile("loki_gcs_service_account.json", pulumi.Output.secret(gcs_service_account))
        return (file,), {"GOOGLE_APPLICATION_CREDENTIALS": file.path}
    # No keys: the store's credentials come from the environment (an IAM role, workload identity).
    return (), {}


def _bucket_egress(args: LokiArgs) -> tuple[Egress, ...]:
    """The bucket's endpoint: its own port, or https's (http's for an insecure S3 endpoint)."""
    s = args.storage
    if s.type == "filesystem":
        return ()
    port = 80 if s.type == "s3" and s.insecure else 443
    if s.type == "s3" and s.endpoint and ":" in s.endpoint:
        port = int(s.endpoint.rsplit(":", 1)[1])
    return (Egress(f"the {s.type} bucket", (port,)),)


def workload(
    args: LokiArgs,
    *,
    writers: Sequence[str] = ("alloy", "otel-collector"),
    readers: Sequence[str] = ("grafana",),
    s3_access_key_id: Optional[pulumi.Input[str]] = None,
    s3_secret_access_key: Optional[pulumi.Input[str]] = None,
    gcs_service_account: Optional[pulumi.Input[str]] = None,
    name: str = NAME,
) -> Workload:
    """writers: the workloads that push logs; readers: those that query them (either may be
    workload.ANYONE)."""
    if args.storage.type != "filesystem" and args.storage.bucket is None:
        raise ValueError(f"{name}: storage.bucket is required with storage.type {args.storage.type}")
    secret_files, env = _credentials(args, s3_access_key_id, s3_secret_access_key, gcs_service_account)
    return Workload(
        name=name,
        image=images.LOKI,
        ports=(
            # The shipper and the collector push logs; Grafana queries them.
            Port("http", HTTP_PORT, host_port=args.port, clients=(*writers, *readers)),
            # Loki's components call each other over gRPC, even within one process.
            Port("grpc", GRPC_PORT, clients=(name,)),
        ),
        resources=args.resources,
        args=(f"-config.file={CONFIG}",),
        env=env,
        config_files=(ConfigFile(CONFIG, render_config(args)),),
        secret_files=secret_files,
        egress=_bucket_egress(args),
        data=DataVolume(DATA_DIR, args.storage_size),
        # /ready answers once the ingester has joined its ring. The image is distroless (no
        # shell, wget or curl), so docker runs Loki's own `-health` check against it.
        health=HealthCheck("http", "/ready", docker_tool="loki"),
        run_as_user=10001,
        metrics_port="http",
    )


class Loki(ServiceComponent):
    """Loki, single binary: logs pushed by the shippers and the collector (OTLP), kept on its
    volume or in an S3 or GCS bucket, with retention by the compactor.

    args: the stack file's `loki:` keys (LokiArgs; the stacks' defaults when left out). writers
    and readers: the workloads that push and query logs, or workload.ANYONE. s3_access_key_id
    and s3_secret_access_key (both or neither), gcs_service_account: the bucket's credentials as
    secret files; without them the store's SDK finds its own (an IAM role, workload identity).
    See ServiceComponent for the output properties.
    """

    kind = "Loki"

    def __init__(self, name: str, args: Optional[LokiArgs] = None, *, platform: Platform,
                 writers: Sequence[str] = ("alloy", "otel-collector"), readers: Sequence[str] = ("grafana",),
                 s3_access_key_id: Optional[pulumi.Input[str]] = None,
                 s3_secret_access_key: Optional[pulumi.Input[str]] = None,
                 gcs_service_account: Optional[pulumi.Input[str]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(
            name, platform, opts, args=args or LokiArgs(), writers=writers, readers=readers,
            s3_access_key_id=s3_access_key_id, s3_secret_access_key=s3_secret_access_key,
            gcs_service_account=gcs_service_account,
        )

    @classmethod
    def render(cls, name: str, platform: Platform, **inputs) -> Workload:
        return workload(name=name, **inputs)
