"""What a service needs, said once and independent of where it runs.

A service module builds a `Workload`; a platform (components/platforms/) turns it into Docker or
Kubernetes resources. Nothing here calls Pulumi: secret values are carried as Outputs, untouched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, Optional

import pulumi

from components.settings import Resources, Settings, Toleration

# The label (docker) or pod template annotation (kubernetes) that carries Workload.config_hash().
CONFIG_HASH = "observability.dev/config-hash"

# Where every secret file is mounted, on both platforms (Docker's own convention for secrets).
SECRETS_DIR = "/run/secrets"


# Pod template annotations (kubernetes) that state, in the manifest itself, why a pod runs as root
# (Workload.unrestricted_because) or reaches into its node (Workload.host_access_because).
ROOT_BECAUSE = "observability.dev/runs-as-root-because"
HOST_ACCESS_BECAUSE = "observability.dev/host-access-because"

# In Port.clients: every source may call the port (applications sending telemetry).
ANYONE = "*"
# Scrapes every metrics port; NetworkPolicies admit it there without being named.
PROMETHEUS = "prometheus"


def grafana_clients(settings: Settings) -> tuple[str, ...]:
    """Who reads a datasource: the stack's Grafana, or anyone when Grafana is external, since the
    stack cannot tell where an external Grafana's requests come from."""
    return ("grafana",) if settings.grafana.mode == "deploy" else (ANYONE,)


@dataclass(frozen=True)
class Sources:
    """Kubernetes: callers of a port from outside the stack: the pods of these namespaces (every
    namespace when None) and these address blocks (nodes, machines outside the cluster)."""

    namespaces: Optional[tuple[str, ...]] = None
    cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Port:
    name: str
    container_port: int
    # Published on the docker host (bound to docker.bind_address); Kubernetes ignores it.
    host_port: Optional[int] = None
    # The workloads (by name) that call this port, or ANYONE. On kubernetes a NetworkPolicy
    # admits exactly these (and the node, for probes); a port nobody calls is closed. Docker's one
    # network between the stack's containers has no such rules.
    clients: tuple[str, ...] = ()
    # Also UDP on the same number (Alertmanager's cluster gossip).
    udp: bool = False
    # Callers from outside the stack (applications sending telemetry), beside `clients`.
    outside: Optional[Sources] = None


@dataclass(frozen=True)
class Egress:
    """Kubernetes: where a workload connects beyond the stack's own pods (which every workload may
    call, each admitting only its own callers): these TCP `ports` (every port when empty) at any
    address, in the cluster or outside it. `why` names what it reaches there."""

    why: str
    ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class ConfigFile:
    """A rendered, non-secret file at an absolute path inside the container."""

    path: str
    content: str


@dataclass(frozen=True)
class SecretFile:
    """A secret mounted read-only at SECRETS_DIR/<name>."""

    name: str
    value: pulumi.Output

    @property
    def path(self) -> str:
        return f"{SECRETS_DIR}/{self.name}"


@dataclass(frozen=True)
class DataVolume:
    """Persistent data: a named volume on docker, a PersistentVolumeClaim on kubernetes."""

    mount_path: str
    size: str


@dataclass(frozen=True)
class HostMount:
    host_path: str
    mount_path: str
    read_only: bool = True


@dataclass(frozen=True)
class HealthCheck:
    """An HTTP GET that answers 2xx when the service is ready."""

    port: str
    path: str
    # What in the image can make that request on docker: "wget" (busybox's, in Alpine and the
    # Prometheus busybox images), "curl", "bash" (Ubuntu images with neither: bash's /dev/tcp), or
    # "loki" (Loki's distroless image has no shell or HTTP client; its binary has `-health`). An
    # image with none of these (FROM scratch or distroless: the collector's, the nvidia-smi
    # exporter's) has None: no docker health check, and `pulumi up` does not wait for it;
    # Kubernetes probes it anyway.
    docker_tool: Optional[Literal["wget", "curl", "bash", "loki"]] = "wget"
    # Kubernetes: also restart the container when it keeps failing (a liveness probe). False where
    # not being ready is no fault of the container: a Loki ingester replaying its write-ahead log,
    # or waiting for its ring to be healthy, is not ready for minutes and must not be killed.
    restart_when_failing: bool = True


@dataclass(frozen=True)
class Ingress:
    """Kubernetes: a port reachable from outside the cluster at a host name, over TLS."""

    port: str
    host: str
    tls_secret: str
    class_name: Optional[str]
    annotations: dict[str, str]
    # The ingress controller's namespace: its pods alone may reach the port.
    controller_namespace: str


@dataclass(frozen=True)
class Gpu:
    """Access to every NVIDIA GPU of the node, and on kubernetes where such nodes are."""

    node_selector: dict[str, str]
    tolerations: tuple[Toleration, ...]
    runtime_class: Optional[str]


@dataclass(frozen=True)
class ApiRead:
    """Kubernetes: part of the API a workload reads. `resources` of one API `group` ("" is the
    core group; a subresource is "nodes/metrics"), or non-resource `urls` such as "/metrics";
    `verbs` are what it does with them."""

    resources: tuple[str, ...] = ()
    group: str = ""
    urls: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("get", "list", "watch")


@dataclass(frozen=True)
class Autoscale:
    """Kubernetes: a HorizontalPodAutoscaler keeps between `min_replicas` and `max_replicas` pods,
    adding pods while their average CPU use is above `cpu_utilization` percent of the request."""

    min_replicas: int
    max_replicas: int
    cpu_utilization: int

    def __post_init__(self):
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"autoscaling needs 1 <= min_replicas <= max_replicas, not {self.min_replicas} and {self.max_replicas}")


@dataclass(frozen=True)
class Peers:
    """Kubernetes: a headless Service named `service` that lists the address of every pod that
    shares it (of one workload or of several) on `port`: how members of a memberlist ring, or a
    load balancer spreading work over a tier's pods, find each one. `only_ready`: only pods that
    are ready; otherwise every pod, so that starting members find each other."""

    service: str
    port: int
    only_ready: bool = False


@dataclass(frozen=True)
class Workload:
    name: str
    image: str
    ports: tuple[Port, ...]
    resources: Resources
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    config_files: tuple[ConfigFile, ...] = ()
    secret_files: tuple[SecretFile, ...] = ()
    data: Optional[DataVolume] = None
    host_mounts: tuple[HostMount, ...] = ()
    health: Optional[HealthCheck] = None
    replicas: int = 1
    # One instance on every node (a DaemonSet on kubernetes).
    per_node: bool = False
    host_pid: bool = False
    host_network: bool = False
    privileged: bool = False
    # Linux capabilities added to an unrestricted container (SYS_ADMIN for GPU profiling).
    capabilities: tuple[str, ...] = ()
    gpu: Optional[Gpu] = None
    # The unprivileged user the workload runs as on both platforms: the image's own where it
    # names one. Kubernetes also gives it the data volume (fsGroup) and runs the pod restricted:
    # non-root, read-only root filesystem, no capabilities.
    run_as_user: Optional[int] = None
    # Why a workload cannot run restricted (root or privileged host access), said where it is made.
    unrestricted_because: Optional[str] = None
    # Why it needs the node's namespaces or files (host_pid, host_network, host_mounts, or per-node
    # data kept on the node), said where it is made.
    host_access_because: Optional[str] = None
    # Reads the platform's API (to discover scrape or log targets, or to report on the cluster):
    # on docker any makes it read the engine's socket; on kubernetes exactly these are granted.
    discovery: tuple[ApiRead, ...] = ()
    # Kubernetes: environment variables set from the pod's own fields (downward API), such as
    # {"NODE_NAME": "spec.nodeName"}. Docker has one host and no pods: it sets none of them.
    field_env: dict[str, str] = field(default_factory=dict)
    ingress: Optional[Ingress] = None
    # Where it connects beyond the stack's own pods, the cluster's DNS and (with `discovery`) the
    # API server, which every workload reaches as it needs.
    egress: tuple[Egress, ...] = ()
    # The port Prometheus scrapes, by name, and its path.
    metrics_port: Optional[str] = None
    metrics_path: str = "/metrics"
    # The service this workload is one `role` of, when a service runs as several (Loki's
    # "distributor" is a role of "loki"): Prometheus scrapes all of a service's roles as one job
    # named after the service, each series labelled with its role (`component`).
    part_of: Optional[str] = None
    role: Optional[str] = None
    # Kubernetes: replicas set by a HorizontalPodAutoscaler rather than by `replicas`.
    autoscale: Optional[Autoscale] = None
    # Kubernetes: the headless Services listing its pods' addresses, with those of the other
    # workloads that name the same Service.
    peers: tuple[Peers, ...] = ()
    # Directories it writes but need not keep (an emptyDir on kubernetes, where the
    # root filesystem is read-only; docker's writable root holds them).
    scratch: tuple[str, ...] = ()
    # Seconds a pod has to finish once asked to stop (an ingester flushing what it holds), when
    # the platform's default (30 s on kubernetes, 10 s on docker) is too short.
    stop_grace_seconds: Optional[int] = None

    def __post_init__(self):
        if self.unrestricted_because is None and self.run_as_user is None:
            raise ValueError(f"{self.name}: a restricted pod needs the image's user (run_as_user), "
                             "or unrestricted_because saying why it cannot have one")
        if self.capabilities and self.unrestricted_because is None:
            raise ValueError(f"{self.name}: a restricted pod adds no capabilities; say why it needs "
                             "them in unrestricted_because")
        if self.host_access() and self.host_access_because is None:
            raise ValueError(f"{self.name}: say why it needs the node's namespaces or files in host_access_because")
        if self.autoscale is not None and (self.data is not None or self.per_node):
            raise ValueError(f"{self.name}: only a stateless workload with a replica count is autoscaled")
        if (self.part_of is None) != (self.role is None):
            raise ValueError(f"{self.name}: a role of a service names both the service (part_of) and its role")

    @property
    def service(self) -> str:
        """The service it belongs to: its scrape job, and what the alert catalog `requires`."""
        return self.part_of or self.name

    @property
    def min_replicas(self) -> int:
        """The fewest pods it runs when all is well: what every path through it can count on."""
        return self.autoscale.min_replicas if self.autoscale else self.replicas

    def host_access(self) -> bool:
        """Whether it reaches into the node it runs on (kubernetes keeps per-node data on the node)."""
        return bool(self.host_pid or self.host_network or self.host_mounts or (self.per_node and self.data))

    def config_hash(self) -> str:
        """A digest of the non-secret files. Platforms show it on the container or pod template,
        so a config change is visible in a preview even where the files themselves are hidden
        (a container's uploads all show as secret once one of them is)."""
        digest = hashlib.sha256()
        for f in sorted(self.config_files, key=lambda f: f.path):
            digest.update(f.path.encode() + b"\0" + f.content.encode() + b"\0")
        return digest.hexdigest()[:16]

    def port(self, name: str) -> Port:
        for port in self.ports:
            if port.name == name:
                return port
        raise KeyError(f"{self.name} has no port named {name!r}")


@dataclass(frozen=True)
class PodDiscovery:
    """Kubernetes: scrape every pod of these workloads (`apps`, by name), where no single address
    reaches each pod: per-node workloads (`by_node`: each pod named by its node), and Deployments
    of several pods or of several roles (each named by its pod, labelled with its role)."""

    namespace: str
    apps: tuple[str, ...]
    port: int
    by_node: bool = False


@dataclass(frozen=True)
class ScrapeJob:
    """A Prometheus scrape job as data; components/services/prometheus.py renders it."""

    name: str
    targets: tuple[str, ...] = ()
    pods: Optional[PodDiscovery] = None
    metrics_path: str = "/metrics"
    scheme: str = "http"
    interval: Optional[str] = None
    labels: dict[str, str] = field(default_factory=dict)
