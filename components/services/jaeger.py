"""Jaeger v2: OTLP in, the query UI. Traces in memory (dev) or badger on a volume (staging): one
pod. Or in a store the stack does not run, shared by several pods (Elasticsearch, OpenSearch or
Cassandra; prod, kubernetes only): Jaeger then runs as two roles of the one service `jaeger`,
collectors that write spans and queriers that read them."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import pulumi

from components import images, yaml_text
from components.services.otel_collector import telemetry_metrics
from components.platforms import Platform
from components.services.component import Rendered, ServiceComponent, roles
from components.settings import JAEGER_DISTRIBUTED, JaegerArgs, go_duration, milliseconds, url_port
from components.workload import ConfigFile, DataVolume, Egress, HealthCheck, Peers, Port, SecretFile, Workload

NAME = "jaeger"
CONFIG = "/etc/jaeger/config.yaml"
DATA_DIR = "/badger"
UI_PORT = 16686
GRPC_PORT = 4317
HTTP_PORT = 4318
METRICS_PORT = 8888
HEALTH_PORT = 13133
STORE = "traces"
# The roles on a distributed store (Workload.role): the collectors are named <name>-collector;
# the queriers keep the service's name, which Grafana's datasource and the `jaeger` endpoint use.
COLLECTOR, QUERY = "collector", "query"
ES_PASSWORD = SecretFile("jaeger_elasticsearch_password", None)
# The store's CA certificate(s) (secrets.jaeger_storage_ca).
STORAGE_CA = SecretFile("jaeger_storage_ca.pem", None)
CASSANDRA_PASSWORD = SecretFile("jaeger_cassandra_password", None)


def _elasticsearch(jaeger: JaegerArgs, role: str, storage_ca: bool) -> dict:
    es = jaeger.elasticsearch
    # Every index is written through <prefix>-jaeger-<type>-write and read through -read, aliases
    # that the cluster's ILM or ISM policy rolls over (auto_rollover: the policy is named in the
    # index templates). Legacy use_ilm/use_aliases are refused by Jaeger 2.20.
    def index() -> dict:
        return {"shards": es.shards, "replicas": es.replicas,
                "rotation": {"auto_rollover": {"policy_name": es.lifecycle_policy}}}

    config: dict = {
        "server_urls": list(es.server_urls),
        # What `jaeger-es-rollover init` creates aliases for (adaptive sampling is not run).
        "indices": {"spans": index(), "services": index(), "dependencies": index()},
        # The collectors install the index templates; the queriers only read through the aliases.
        "create_mappings": role == COLLECTOR,
    }
    if es.index_prefix is not None:
        config["indices"]["index_prefix"] = es.index_prefix
    if es.username is not None:
        config["auth"] = {"basic": {"username": es.username, "password_file": ES_PASSWORD.path}}
    if storage_ca:
        config["tls"] = {"ca_file": STORAGE_CA.path}
    return {jaeger.storage: config}


def _cassandra(jaeger: JaegerArgs, role: str, storage_ca: bool) -> dict:
    c = jaeger.cassandra
    ttl_minutes = milliseconds(jaeger.trace_ttl) // 60_000
    connection: dict = {"servers": list(c.servers), "port": c.port}
    if c.username is not None:
        # Jaeger's Cassandra config has no password file; the collector-style config reads one.
        connection["auth"] = {"basic": {"username": c.username, "password": f"${{file:{CASSANDRA_PASSWORD.path}}}"}}
    if not c.tls:
        connection["tls"] = {"insecure": True}
    elif storage_ca:
        connection["tls"] = {"ca_file": STORAGE_CA.path}
    return {"cassandra": {
        "schema": {
            "keyspace": c.keyspace,
            # The collectors create what is missing; the queriers only read.
            "create": c.create_schema and role == COLLECTOR,
            "datacenter": c.datacenter,
            "replication_factor": c.replication_factor,
            # The tables' TTL, set when they are created.
            "trace_ttl": go_duration(jaeger.trace_ttl),
            # Upstream's schema script's rule: about 30 compaction windows over the TTL.
            "compaction_window": f"{max(1, math.ceil(ttl_minutes / 30))}m",
        },
        "connection": connection,
    }}


def _backend(jaeger: JaegerArgs, role: Optional[str] = None, storage_ca: bool = False) -> dict:
    """storage_ca: the store's CA is mounted (STORAGE_CA)."""
    if jaeger.storage in ("elasticsearch", "opensearch"):
        return _elasticsearch(jaeger, role, storage_ca)
    if jaeger.storage == "cassandra":
        return _cassandra(jaeger, role, storage_ca)
    if jaeger.storage == "badger":
        return {
            "badger": {
                "directories": {"keys": f"{DATA_DIR}/keys", "values": f"{DATA_DIR}/values"},
                "ephemeral": False,
                "ttl": {"spans": go_duration(jaeger.trace_ttl)},
            }
        }
    return {"memory": {"max_traces": jaeger.max_traces}}


def render_config(jaeger: JaegerArgs, role: Optional[str] = None, storage_ca: bool = False) -> str:
    """Jaeger v2 is an OpenTelemetry Collector distribution: the same config shape. role: None for
    the one Jaeger of memory or badger, which does both; COLLECTOR (receives and writes, no UI) or
    QUERY (the UI and API; the collector needs a pipeline, so nop in and nop out, as upstream's
    cmd/jaeger/config-query.yaml) on a distributed store."""
    writes, reads = role != QUERY, role != COLLECTOR
    config: dict = {
        "service": {
            "extensions": ["jaeger_storage", *(["jaeger_query"] if reads else []), "healthcheckv2"],
            "pipelines": {"traces": (
                {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["jaeger_storage_exporter"]}
                if writes else {"receivers": ["nop"], "exporters": ["nop"]}
            )},
            "telemetry": {
                "resource": {"service.name": "jaeger"},
                "metrics": telemetry_metrics(METRICS_PORT, level="detailed"),
            },
        },
        "extensions": {
            "healthcheckv2": {"use_v2": True, "http": {"endpoint": f"0.0.0.0:{HEALTH_PORT}"}},
            "jaeger_storage": {"backends": {STORE: _backend(jaeger, role, storage_ca)}},
        },
    }
    if reads:
        config["extensions"]["jaeger_query"] = {
            "storage": {"traces": STORE},
            "http": {"endpoint": f"0.0.0.0:{UI_PORT}"},
        }
    if writes:
        config |= {
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
    else:
        config |= {"receivers": {"nop": {}}, "exporters": {"nop": {}}}
    return yaml_text.dump(config)


def _base(jaeger: JaegerArgs, name: str, ports: tuple[Port, ...], role: Optional[str] = None,
          secret_files: tuple[SecretFile, ...] = (), **shape) -> Workload:
    """What every Jaeger pod has: the image, its config, health and metrics."""
    storage_ca = any(f.name == STORAGE_CA.name for f in secret_files)
    return Workload(
        name=name,
        image=images.JAEGER,
        ports=(*ports, Port("metrics", METRICS_PORT), Port("health", HEALTH_PORT)),
        args=(f"--config={CONFIG}",),
        # The image is built on Alpine, whose busybox has wget.
        health=HealthCheck("health", "/status"),
        run_as_user=10001,
        metrics_port="metrics",
        role=role,
        config_files=(ConfigFile(CONFIG, render_config(jaeger, role, storage_ca)),),
        secret_files=secret_files,
        **shape,
    )


def _writes(writers: Sequence[str]) -> tuple[Port, ...]:
    # The collector is the only writer; OTLP HTTP stays closed (no client).
    return Port("otlp-grpc", GRPC_PORT, clients=tuple(writers)), Port("otlp-http", HTTP_PORT)


def _store(jaeger: JaegerArgs, elasticsearch_password: Optional[pulumi.Input[str]],
           cassandra_password: Optional[pulumi.Input[str]], storage_ca: Optional[pulumi.Input[str]]) -> dict:
    """What both roles need of the store: its password and CA as files, and the way out to it."""
    if jaeger.storage == "cassandra":
        store, password, user, file = jaeger.cassandra, cassandra_password, "cassandra", CASSANDRA_PASSWORD
        addresses = store.servers
        egress = Egress("the Cassandra cluster (every node the driver discovers)", (store.port,))
    else:
        store, password, user, file = jaeger.elasticsearch, elasticsearch_password, "elasticsearch", ES_PASSWORD
        addresses = store.server_urls
        egress = Egress(f"the {jaeger.storage} cluster", tuple(sorted({url_port(u) for u in store.server_urls})))
    if not addresses:
        # (An Egress without ports would open every port.)
        raise ValueError(f"jaeger.storage {jaeger.storage} needs the cluster's addresses in jaeger.{user}")
    secrets: tuple[SecretFile, ...] = ()
    if store.username is not None:
        if password is None:
            raise ValueError(f"jaeger.{user}.username needs the store's password ({user}_password)")
        secrets = (SecretFile(file.name, pulumi.Output.secret(password)),)
    if storage_ca is not None:
        secrets += (SecretFile(STORAGE_CA.name, pulumi.Output.secret(storage_ca)),)
    return {"secret_files": secrets, "egress": (egress,)}


def workload(
    jaeger: JaegerArgs, *, readers: Sequence[str] = ("grafana",), writers: Sequence[str] = ("otel-collector",),
    name: str = NAME, elasticsearch_password: Optional[pulumi.Input[str]] = None,
    cassandra_password: Optional[pulumi.Input[str]] = None, storage_ca: Optional[pulumi.Input[str]] = None,
) -> Rendered:
    """readers: the workloads that query traces; writers: those that send spans (OTLP gRPC);
    either may be workload.ANYONE. One workload with memory or badger; on a distributed store the
    collectors (<name>-collector) and the queriers (<name>), each a Deployment of several pods."""
    ui = Port("ui", UI_PORT, host_port=jaeger.port, clients=tuple(readers))
    if jaeger.storage not in JAEGER_DISTRIBUTED:
        badger = jaeger.storage == "badger"
        return _base(jaeger, name, (ui, *_writes(writers)), resources=jaeger.resources,
                     data=DataVolume(DATA_DIR, jaeger.storage_size) if badger else None)
    store = _store(jaeger, elasticsearch_password, cassandra_password, storage_ca)

    def role(role_name: str, workload_name: str, ports: tuple[Port, ...], sized, **shape) -> Workload:
        return _base(jaeger, workload_name, ports, role_name, part_of=name, replicas=sized.replicas,
                     resources=sized.resources, **store, **shape)

    collector = f"{name}-{COLLECTOR}"
    return (
        # Writers resolve this headless Service to every ready collector and spread their gRPC
        # streams over them (round robin); a Service's one address would pin each stream to one pod.
        role(COLLECTOR, collector, _writes(writers), jaeger.collector,
             peers=(Peers(f"{collector}-discovery", GRPC_PORT, only_ready=True),)),
        role(QUERY, name, (ui,), jaeger.query),
    )


def otlp_address(platform: Platform, rendered: Rendered) -> str:
    """host:port where writers send spans over OTLP gRPC: the collectors' headless Service on a
    distributed store, the one pod otherwise."""
    (receiver,) = (w for w in roles(rendered) if w.role != QUERY)
    if receiver.peers:
        return f"{receiver.peers[0].service}:{GRPC_PORT}"
    return platform.addresses(receiver, "otlp-grpc")[0]


class Jaeger(ServiceComponent):
    """Jaeger v2: receives spans over OTLP and serves the query UI and API; keeps them in memory,
    in badger on a volume, or in Elasticsearch, OpenSearch or Cassandra (collectors and queriers,
    kubernetes only).

    args: the stack file's `jaeger:` keys (JaegerArgs; the stacks' defaults when left out).
    readers and writers: the workloads that query traces and send spans, or workload.ANYONE.
    elasticsearch_password, cassandra_password: the store's password, for its `username`;
    storage_ca: the CA certificate(s) of its TLS, when not the system's. All three kept secret
    and mounted as files.
    See ServiceComponent for the output properties; otlp_address(platform, component.workloads)
    is what the collector component's jaeger input takes.
    """

    kind = "Jaeger"

    def __init__(self, name: str, args: Optional[JaegerArgs] = None, *, platform: Platform,
                 readers: Sequence[str] = ("grafana",), writers: Sequence[str] = ("otel-collector",),
                 elasticsearch_password: Optional[pulumi.Input[str]] = None,
                 cassandra_password: Optional[pulumi.Input[str]] = None,
                 storage_ca: Optional[pulumi.Input[str]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, platform, opts, args=args or JaegerArgs(), readers=readers, writers=writers,
                         elasticsearch_password=elasticsearch_password, cassandra_password=cassandra_password,
                         storage_ca=storage_ca)

    @classmethod
    def render(cls, name: str, platform: Platform, *, args: JaegerArgs, readers: Sequence[str],
               writers: Sequence[str], elasticsearch_password: Optional[pulumi.Input[str]] = None,
               cassandra_password: Optional[pulumi.Input[str]] = None,
               storage_ca: Optional[pulumi.Input[str]] = None) -> Rendered:
        return workload(args, readers=readers, writers=writers, name=name, elasticsearch_password=elasticsearch_password,
                        cassandra_password=cassandra_password, storage_ca=storage_ca)
