"""Loki: tsdb index, schema v13, retention by the compactor, OTLP ingestion.

Monolithic (one pod runs every role) or, on kubernetes, microservices: each role its own pods,
the mode Loki's documentation recommends for production (its simple scalable mode is being
removed before Loki 4.0). Every role runs the same binary; `-target` picks the role.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi

from components import images, yaml_text
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import LokiArgs
from components.settings import LokiMicroservices, Resources, quantity_bytes
from components.workload import (
    Autoscale, ConfigFile, DataVolume, Egress, HealthCheck, Peers, Port, SecretFile, Workload,
)

NAME = "loki"
CONFIG = "/etc/loki/loki.yml"
DATA_DIR = "/loki"
HTTP_PORT = 3100
GRPC_PORT = 9095
# The first day of the v13 schema period; kept fixed so an existing store is never reinterpreted.
SCHEMA_FROM = "2024-01-01"
MEMBERLIST_PORT = 7946
# Microservices mode's roles, as Loki's -target names them (pkg/loki/modules.go at v3.7.6).
ROLES = ("distributor", "ingester", "querier", "query-frontend", "query-scheduler", "index-gateway", "compactor")
# Microservices mode: each stream is written to this many ingesters, and a write succeeds once a
# majority (two) has it. Loki's default, said here because the topology rests on it.
REPLICATION_FACTOR = 3
# Seconds an ingester has to stop cleanly (Loki's Helm chart gives 300). With the write-ahead log
# it does not flush on shutdown; its volume keeps what it had not flushed, replayed on start.
INGESTER_STOP_GRACE = 300


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


def _shared(loki: LokiArgs, common: dict) -> dict:
    """What every mode's config says: storage, schema, limits, retention."""
    store, storage = _object_store(loki)
    limits = loki.limits
    return {
        "auth_enabled": False,
        "server": {"http_listen_port": HTTP_PORT, "grpc_listen_port": GRPC_PORT, "log_level": "info"},
        "common": {"path_prefix": DATA_DIR, **common, "storage": storage},
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


def render_config(loki: LokiArgs) -> str:
    """Monolithic: one process, its rings in memory."""
    return yaml_text.dump(_shared(loki, {
        "instance_addr": "127.0.0.1",
        "replication_factor": 1,
        "ring": {"kvstore": {"store": "inmemory"}},
    }))


def render_microservices_config(loki: LokiArgs, name: str, cluster_label: str, role: str) -> str:
    """Microservices: one role's config, naming only the roles it calls, by their Services.

    The rings (ingesters', distributors', the compactor's) gossip over memberlist: setting
    join_members alone moves every ring there. common.ring is left unset on purpose: setting any
    of it makes Loki skip that choice and fall back to consul."""
    common: dict = {"replication_factor": REPLICATION_FACTOR}
    reads = role in ("querier", "query-frontend")
    if reads:
        # Both ask the compactor which lines are deleted; Loki refuses to start them without it.
        common["compactor_grpc_address"] = f"{name}-compactor:{GRPC_PORT}"
    config = _shared(loki, common)
    config["memberlist"] = {
        "join_members": [f"dns+{name}-memberlist:{MEMBERLIST_PORT}"],
        # Gossip from another stack's Loki in the cluster is dropped, not merged.
        "cluster_label": cluster_label,
    }
    # Each ingester's zone is its node (-ingester.availability-zone): with zone awareness, on the
    # ingesters and on those that write to or read from them, the three copies of a stream go to
    # three different nodes however many ingesters a node runs, so losing one node leaves every
    # stream a majority.
    config["ingester"] = {"lifecycler": {"ring": {"zone_awareness_enabled": True}}}
    if role == "ingester":
        memory = quantity_bytes(loki.microservices.ingester.resources.limits.memory)
        config["ingester"]["wal"] = {
            "enabled": True,
            "dir": f"{DATA_DIR}/wal",
            # Replay stops taking memory here and flushes instead: three quarters of the
            # ingester's memory limit, as Loki's WAL guide suggests.
            "replay_memory_ceiling": f"{memory * 3 // 4 // 2**20}MB",
        }
    schedulers = f"{name}-query-scheduler-discovery:{GRPC_PORT}"
    if role == "query-frontend":
        config["frontend"] = {"scheduler_address": schedulers, "tail_proxy_url": f"http://{name}-querier:{HTTP_PORT}"}
    if role == "querier":
        config["frontend_worker"] = {"scheduler_address": schedulers}
    if role == "index-gateway":
        # simple: every gateway serves the whole index; queriers ask any of them.
        config["index_gateway"] = {"mode": "simple"}
    if reads:
        config["storage_config"] = {"tsdb_shipper": {"index_gateway_client": {
            "server_address": f"dns+{name}-index-gateway:{GRPC_PORT}"}}}
    return yaml_text.dump(config)


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
    cluster_label: Optional[str] = None,
) -> Workload | tuple[Workload, ...]:
    """writers: the workloads that push logs; readers: those that query them (either may be
    workload.ANYONE). cluster_label: microservices mode's memberlist label (the name when unset)."""
    if args.storage.type != "filesystem" and args.storage.bucket is None:
        raise ValueError(f"{name}: storage.bucket is required with storage.type {args.storage.type}")
    secret_files, env = _credentials(args, s3_access_key_id, s3_secret_access_key, gcs_service_account)
    if args.mode == "microservices":
        return _roles(args, writers, readers, secret_files, env, name, cluster_label or name)
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


def _roles(args: LokiArgs, writers: Sequence[str], readers: Sequence[str], secret_files: tuple[SecretFile, ...],
           env: dict[str, str], name: str, cluster_label: str) -> tuple[Workload, ...]:
    """Microservices mode: a workload per role, each with its own config file.

    Who calls whom (each port admits exactly these): writers push to the distributors, which
    write to the ingesters; readers query the query frontends, which queue queries on the
    schedulers; queriers take them from there, read the ingesters, the index gateways and the
    bucket, and send results back to the frontend that asked (its gRPC port). Queriers and
    frontends ask the compactor about deletes. Every role gossips the rings over memberlist."""
    m: LokiMicroservices = args.microservices
    role = {r: f"{name}-{r}" for r in ROLES}
    members = tuple(role.values())
    bucket = _bucket_egress(args)
    ring = Peers(f"{name}-memberlist", MEMBERLIST_PORT)

    def make(r: str, *, http: Sequence[str] = (), grpc: Sequence[str] = (), resources: Resources,
             replicas: int = 1, autoscale: Optional[Autoscale] = None, data: Optional[DataVolume] = None,
             reads_bucket: bool = False, **extra) -> Workload:
        # The two roles outside callers use are the stack's endpoints (kubernetes publishes nothing
        # on a host; the port only marks them as reached from outside Loki).
        published = args.port if r in ("distributor", "query-frontend") else None
        return Workload(
            name=role[r],
            image=images.LOKI,
            ports=(
                Port("http", HTTP_PORT, host_port=published, clients=tuple(http)),
                Port("grpc", GRPC_PORT, clients=tuple(grpc)),
                Port("memberlist", MEMBERLIST_PORT, clients=members, udp=True),
            ),
            resources=resources,
            args=(f"-config.file={CONFIG}", f"-target={r}", *extra.pop("more_args", ())),
            env=env,
            config_files=(ConfigFile(CONFIG, render_microservices_config(args, name, cluster_label, r)),),
            secret_files=secret_files if reads_bucket else (),
            egress=bucket if reads_bucket else (),
            data=data,
            # Roles without a volume still write under the path prefix (caches, markers).
            scratch=() if data else (DATA_DIR,),
            replicas=replicas,
            autoscale=autoscale,
            peers=(ring, *extra.pop("peers", ())),
            # /ready only gates traffic: Loki's own charts give its roles no liveness probe.
            health=HealthCheck("http", "/ready", docker_tool="loki", restart_when_failing=False),
            run_as_user=10001,
            metrics_port="http",
            part_of=name,
            role=r,
            **extra,
        )

    def scaled(role_args) -> Autoscale:
        return Autoscale(role_args.min_replicas, role_args.max_replicas, role_args.cpu_utilization)

    frontend, querier = role["query-frontend"], role["querier"]
    return (
        make("distributor", http=writers, resources=m.distributor.resources, autoscale=scaled(m.distributor)),
        make("ingester", grpc=(role["distributor"], querier), resources=m.ingester.resources,
             replicas=m.ingester.replicas, data=DataVolume(DATA_DIR, m.ingester.storage_size), reads_bucket=True,
             # Its zone is its node: see render_microservices_config.
             more_args=("-ingester.availability-zone=$(NODE_NAME)",), field_env={"NODE_NAME": "spec.nodeName"},
             stop_grace_seconds=INGESTER_STOP_GRACE),
        make("query-frontend", http=readers, grpc=(querier,), resources=m.query_frontend.resources,
             autoscale=scaled(m.query_frontend)),
        # The frontends and queriers find every scheduler through its headless Service.
        make("query-scheduler", grpc=(frontend, querier), resources=m.query_scheduler.resources,
             replicas=m.query_scheduler.replicas, peers=(Peers(f"{name}-query-scheduler-discovery", GRPC_PORT),)),
        make("querier", http=(frontend,), resources=m.querier.resources, autoscale=scaled(m.querier),
             reads_bucket=True),
        make("index-gateway", grpc=(frontend, querier), resources=m.index_gateway.resources,
             replicas=m.index_gateway.replicas, data=DataVolume(DATA_DIR, m.index_gateway.storage_size),
             reads_bucket=True),
        make("compactor", grpc=(frontend, querier), resources=m.compactor.resources,
             data=DataVolume(DATA_DIR, m.compactor.storage_size), reads_bucket=True),
    )


def push_address(platform: Platform, rendered: Workload | tuple[Workload, ...]) -> str:
    """host:port where shippers and the collector push logs: the distributors in microservices
    mode, the one pod otherwise."""
    return platform.addresses(_role_of(rendered, "distributor"), "http")[0]


def query_address(platform: Platform, rendered: Workload | tuple[Workload, ...]) -> str:
    """host:port where Grafana queries logs: the query frontends, or the one pod."""
    return platform.addresses(_role_of(rendered, "query-frontend"), "http")[0]


def query_address_of(workloads: Sequence[Workload], name: str = NAME) -> str:
    """The name of the workload that answers queries, among a stack's workloads."""
    return next(w.name for w in workloads if w.service == name and w.role in (None, "query-frontend"))


def _role_of(rendered: Workload | tuple[Workload, ...], role: str) -> Workload:
    if isinstance(rendered, Workload):
        return rendered
    return next(w for w in rendered if w.role == role)


class Loki(ServiceComponent):
    """Loki: logs pushed by the shippers and the collector (OTLP), kept on its volume or in an
    S3 or GCS bucket, with retention by the compactor. Monolithic by default; with args.mode
    microservices (kubernetes, a bucket), one workload per role, `workloads`: push to
    push_address(), query at query_address().

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
    def render(cls, name: str, platform: Platform, **inputs) -> Workload | tuple[Workload, ...]:
        # One stack's Loki gossips with no other's in the cluster.
        label = f"{platform.namespace}.{name}" if platform.kind == "kubernetes" else name
        return workload(name=name, cluster_label=label, **inputs)
