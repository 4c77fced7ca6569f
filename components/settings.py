"""The stack's settings: one typed model read from the Pulumi stack config.

Every key lives in the project's namespace (`observability:<key>` in stacks/Pulumi.<env>.yaml).
`load()` validates all of it before the program registers any resource, and reports every problem
in one `ConfigError` that names the stack, the key path and what is wrong. Secret values never
appear in a message.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Optional

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

NAMESPACE = "observability"

# Prometheus-style durations ("30s", "1h30m", "7d"): the format Prometheus and Alertmanager accept.
_DURATION = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")
# Prometheus retention sizes ("512MB", "50GB").
_BYTE_SIZE = re.compile(r"^\d+(B|KB|MB|GB|TB|PB|EB)$")
# Kubernetes quantities: memory and storage ("512Mi", "20Gi"), CPU ("250m", "1", "0.5").
_QUANTITY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_CPU = re.compile(r"^(\d+m|\d+(\.\d+)?)$")
# Names that end up as container, volume, Prometheus job or Kubernetes object names.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ConfigError(pulumi.RunError):
    """Bad stack configuration; Pulumi prints the message without a traceback."""


def _matches(pattern: re.Pattern, what: str, example: str):
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not a valid {what} (for example {example!r})")
        return value

    return check


_QUANTITY_UNITS = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15, "EB": 10**18, "B": 1,
    "m": 10**-3,
}


def quantity(value: str) -> float:
    """A Kubernetes quantity or Prometheus size in base units: bytes, or cores for CPU."""
    number = value.rstrip("".join(set("".join(_QUANTITY_UNITS))))
    unit = value[len(number):]
    return float(number) * _QUANTITY_UNITS.get(unit, 1)


def _nonzero(kind: str):
    def check(value: str) -> str:
        if quantity(value) <= 0:
            raise ValueError(f"{value!r} is zero; a {kind} must be larger than zero")
        return value

    return check


def _positive_duration(value: str) -> str:
    _matches(_DURATION, "duration", "30s, 5m, 7d")(value)
    if not any(ch.isdigit() and ch != "0" for ch in value):
        raise ValueError(f"{value!r} is a zero duration; it must be longer than zero")
    return value


Duration = Annotated[str, AfterValidator(_positive_duration)]
ByteSize = Annotated[str, AfterValidator(_matches(_BYTE_SIZE, "size", "50GB")), AfterValidator(_nonzero("size"))]
Quantity = Annotated[
    str, AfterValidator(_matches(_QUANTITY, "Kubernetes quantity", "512Mi")), AfterValidator(_nonzero("quantity"))
]
Cpu = Annotated[str, AfterValidator(_matches(_CPU, "CPU quantity", "250m")), AfterValidator(_nonzero("CPU quantity"))]
Name = Annotated[str, AfterValidator(_matches(_NAME, "name (lower case, digits, '-')", "api"))]
Port = Annotated[int, Field(ge=1, le=65535)]
Url = Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")]


class Model(BaseModel):
    """Base of every settings section: unknown keys are errors, values are immutable."""

    # defer_build: each section's validator is built once, inside Settings' own, when the first
    # stack is validated, rather than once per class at import and again inside its parent's.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ResourceAmounts(Model):
    cpu: Cpu
    memory: Quantity


class Resources(Model):
    """Requests and limits; on docker only the limits apply."""

    requests: ResourceAmounts
    limits: ResourceAmounts


def resources(cpu_request: str, memory_request: str, cpu_limit: str, memory_limit: str):
    """A default `resources` field for a service."""
    return Field(
        default_factory=lambda: Resources(
            requests=ResourceAmounts(cpu=cpu_request, memory=memory_request),
            limits=ResourceAmounts(cpu=cpu_limit, memory=memory_limit),
        )
    )


class DockerSettings(Model):
    host: str = "unix:///var/run/docker.sock"
    # Published ports bind here; 0.0.0.0 opens them to every interface of the host.
    bind_address: str = "127.0.0.1"
    network: Name = "observability"
    # Where the engine keeps its socket on the host, for services that discover containers.
    socket_path: str = "/var/run/docker.sock"


class KubernetesSettings(Model):
    context: Optional[str] = None
    namespace: Name = "observability"
    storage_class: Optional[str] = None


class Retention(Model):
    time: Duration = "7d"
    size: ByteSize = "10GB"


class ScrapeTarget(Model):
    """A static scrape job for something the stack does not deploy (an API, a batch host)."""

    job: Name
    targets: list[Annotated[str, Field(pattern=r"^[^\s/:]+:\d{1,5}$")]] = Field(min_length=1)
    metrics_path: str = Field(default="/metrics", pattern=r"^/")
    scheme: Literal["http", "https"] = "http"
    interval: Optional[Duration] = None
    labels: dict[str, str] = Field(default_factory=dict)


class RemoteWrite(Model):
    """Long-term storage (Mimir, Thanos receive, Grafana Cloud); password in secrets."""

    url: str = Field(pattern=r"^https?://")
    username: Optional[str] = None


class PrometheusSettings(Model):
    replicas: int = Field(default=1, ge=1, le=10)
    port: Port = 9090
    scrape_interval: Duration = "15s"
    scrape_timeout: Duration = "10s"
    evaluation_interval: Duration = "15s"
    retention: Retention = Field(default_factory=Retention)
    storage_size: Quantity = "20Gi"
    external_labels: dict[str, str] = Field(default_factory=dict)
    # Scrape the user's own containers (docker label) or pods and services (annotation) that opt in.
    discovery: bool = True
    scrape_targets: list[ScrapeTarget] = Field(default_factory=list)
    remote_write: Optional[RemoteWrite] = None
    resources: Resources = resources("250m", "512Mi", "1", "1Gi")


class SlackReceiver(Model):
    enabled: bool = False
    critical_channel: str = "#alerts-critical"
    warning_channel: str = "#alerts"


class PagerDutyReceiver(Model):
    enabled: bool = False


class WatchdogReceiver(Model):
    """A dead man's switch: an outside service that alarms when the Watchdog stops arriving."""

    enabled: bool = False
    # How often the always-firing Watchdog is sent again; the outside service's grace period
    # must be longer than this plus group_wait.
    repeat_interval: Duration = "1m"


class Receivers(Model):
    slack: SlackReceiver = Field(default_factory=SlackReceiver)
    pagerduty: PagerDutyReceiver = Field(default_factory=PagerDutyReceiver)
    watchdog: WatchdogReceiver = Field(default_factory=WatchdogReceiver)


class AlertmanagerSettings(Model):
    replicas: int = Field(default=1, ge=1, le=9)
    port: Port = 9093
    group_by: list[str] = Field(default_factory=lambda: ["alertname", "job", "severity"])
    group_wait: Duration = "30s"
    group_interval: Duration = "5m"
    repeat_interval: Duration = "4h"
    receivers: Receivers = Field(default_factory=Receivers)
    storage_size: Quantity = "1Gi"
    resources: Resources = resources("50m", "64Mi", "200m", "128Mi")


class NodeExporterSettings(Model):
    enabled: bool = True
    resources: Resources = resources("50m", "32Mi", "200m", "64Mi")


class CadvisorSettings(Model):
    enabled: bool = True
    resources: Resources = resources("100m", "128Mi", "500m", "256Mi")


class PostgresExporterSettings(Model):
    enabled: bool = False
    host: Optional[str] = None
    port: Port = 5432
    user: Optional[str] = None
    database: str = "postgres"
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "disable"
    resources: Resources = resources("50m", "32Mi", "200m", "64Mi")


class RedisExporterSettings(Model):
    enabled: bool = False
    # redis://host:6379 or rediss://host:6380; a password, if Redis wants one, goes in secrets.
    address: Optional[Annotated[str, Field(pattern=r"^rediss?://[^\s/]+:\d{1,5}$")]] = None
    resources: Resources = resources("50m", "32Mi", "200m", "64Mi")


class Toleration(Model):
    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: Optional[str] = None
    effect: Optional[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]] = None


class GpuExporterSettings(Model):
    enabled: bool = False
    # dcgm: NVIDIA DCGM exporter (port 9400); nvidia_smi: the nvidia-smi exporter (port 9835).
    exporter: Literal["dcgm", "nvidia_smi"] = "dcgm"
    # Kubernetes only: which nodes have GPUs, and the taint they carry.
    node_selector: dict[str, str] = Field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    tolerations: list[Toleration] = Field(
        default_factory=lambda: [Toleration(key="nvidia.com/gpu", effect="NoSchedule")]
    )
    runtime_class: Optional[str] = "nvidia"
    resources: Resources = resources("50m", "128Mi", "500m", "512Mi")


class ExportersSettings(Model):
    node: NodeExporterSettings = Field(default_factory=NodeExporterSettings)
    cadvisor: CadvisorSettings = Field(default_factory=CadvisorSettings)
    postgres: PostgresExporterSettings = Field(default_factory=PostgresExporterSettings)
    redis: RedisExporterSettings = Field(default_factory=RedisExporterSettings)
    gpu: GpuExporterSettings = Field(default_factory=GpuExporterSettings)


class LokiStorage(Model):
    """Where Loki keeps chunks and index: a local volume, or a bucket (prod)."""

    type: Literal["filesystem", "s3", "gcs"] = "filesystem"
    bucket: Optional[str] = None
    # S3 and S3-compatible stores (MinIO, Ceph): endpoint host[:port], region, addressing.
    endpoint: Optional[str] = None
    region: Optional[str] = None
    force_path_style: bool = False
    insecure: bool = False


class LokiLimits(Model):
    ingestion_rate_mb: float = Field(default=4, gt=0)
    ingestion_burst_size_mb: float = Field(default=6, gt=0)
    max_global_streams_per_user: int = Field(default=5000, ge=1)
    per_stream_rate_limit: ByteSize = "3MB"
    max_line_size: ByteSize = "256KB"


class LokiSettings(Model):
    port: Port = 3100
    retention: Duration = "7d"
    storage: LokiStorage = Field(default_factory=LokiStorage)
    storage_size: Quantity = "20Gi"
    limits: LokiLimits = Field(default_factory=LokiLimits)
    resources: Resources = resources("100m", "256Mi", "1", "1Gi")


class LogShipperSettings(Model):
    # Promtail reached end of life on 2026-03-02; Grafana Alloy is its supported successor.
    type: Literal["alloy", "promtail"] = "alloy"
    resources: Resources = resources("50m", "64Mi", "500m", "256Mi")


class SamplingSettings(Model):
    """Tail sampling: every error trace and every slow trace, and this share of the rest."""

    percentage: float = Field(default=10, gt=0, le=100)
    slow_threshold: Duration = "1s"
    decision_wait: Duration = "10s"


class OtelCollectorSettings(Model):
    grpc_port: Port = 4317
    http_port: Port = 4318
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    resources: Resources = resources("100m", "256Mi", "1", "512Mi")


class JaegerSettings(Model):
    port: Port = 16686
    storage: Literal["memory", "badger"] = "memory"
    # memory: traces kept, oldest dropped first. badger: how long spans are kept.
    max_traces: int = Field(default=100000, ge=1)
    trace_ttl: Duration = "72h"
    storage_size: Quantity = "10Gi"
    resources: Resources = resources("100m", "256Mi", "1", "1Gi")


class DatasourceUrls(Model):
    """Where Grafana reaches each datasource; by default, the services this stack deploys."""

    prometheus: Optional[Url] = None
    loki: Optional[Url] = None
    jaeger: Optional[Url] = None
    alertmanager: Optional[Url] = None


class GrafanaAlerts(Model):
    """Thresholds of the rules Grafana evaluates (they need Loki, which Prometheus cannot query)."""

    # Error lines of one service in 5 minutes.
    error_log_burst: int = Field(default=10, ge=1)
    # Log volume of one service over 10 minutes, against its average 10 minutes of the last day.
    log_volume_factor: float = Field(default=3, gt=1)


class GrafanaIngress(Model):
    """Kubernetes: Grafana reachable from outside the cluster, over TLS, at grafana.url's host.
    Without it, Grafana's port admits only Prometheus (NetworkPolicy); use `kubectl port-forward`."""

    enabled: bool = False
    # The IngressClass of the cluster's ingress controller; unset: the cluster's default class.
    class_name: Optional[Name] = None
    # The kubernetes.io/tls Secret in the stack's namespace with the certificate for the host.
    tls_secret: Name = "grafana-tls"
    # A cert-manager ClusterIssuer that issues tls_secret; unset: the Secret is provided otherwise.
    cluster_issuer: Optional[str] = Field(default=None, min_length=1)
    # Where the ingress controller's pods run: the only namespace whose pods may reach Grafana.
    controller_namespace: Name = "ingress-nginx"
    # Further annotations for the controller (timeouts, allow-lists, ...).
    annotations: dict[str, str] = Field(default_factory=dict)


class GrafanaSettings(Model):
    # deploy: the stack runs Grafana. external: everything goes to an existing Grafana at
    # grafana.url, with an API token in secrets.grafana_api_token.
    mode: Literal["deploy", "external"] = "deploy"
    port: Port = 3000
    # Where `pulumi up` and people reach Grafana. On docker it defaults to the published port;
    # on kubernetes and for an external Grafana it must be set (an Ingress, a load balancer).
    url: Optional[Url] = None
    admin_user: str = Field(default="admin", min_length=1)
    folders: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["Platform", "Applications", "Databases", "GPU & ML", "LLM & RAG"]
    )
    datasource_urls: DatasourceUrls = Field(default_factory=DatasourceUrls)
    alerts: GrafanaAlerts = Field(default_factory=GrafanaAlerts)
    ingress: GrafanaIngress = Field(default_factory=GrafanaIngress)
    storage_size: Quantity = "10Gi"
    resources: Resources = resources("100m", "256Mi", "1", "512Mi")


class AlertOverride(Model):
    """A stack's change to one alert of configs/alerts/catalog.yml, by its name there."""

    # Merged with Model's config: only what this section adds.
    model_config = ConfigDict(populate_by_name=True)

    enabled: bool = True
    threshold: Optional[float] = None
    for_: Optional[Duration] = Field(default=None, alias="for")
    severity: Optional[Literal["critical", "warning", "info"]] = None


class AlertsSettings(Model):
    # Where runbook links point; each alert's section is appended as #<alertname in lower case>.
    runbook_url: str = Field(default="docs/runbook.md", min_length=1)
    overrides: dict[str, AlertOverride] = Field(default_factory=dict)


SecretValue = Annotated[str, Field(min_length=1)]


class SecretsSettings(Model):
    """The `secrets` key: set each one with `pulumi config set --secret --path secrets.<name>`."""

    slack_webhook_url: Optional[SecretValue] = None
    pagerduty_routing_key: Optional[SecretValue] = None
    watchdog_url: Optional[SecretValue] = None
    postgres_password: Optional[SecretValue] = None
    redis_password: Optional[SecretValue] = None
    remote_write_password: Optional[SecretValue] = None
    loki_s3_access_key_id: Optional[SecretValue] = None
    loki_s3_secret_access_key: Optional[SecretValue] = None
    loki_gcs_service_account: Optional[SecretValue] = None
    grafana_admin_password: Optional[SecretValue] = None
    grafana_api_token: Optional[SecretValue] = None


class Settings(Model):
    platform: Literal["docker", "kubernetes"]
    environment: Name
    cluster: Name = "local"
    # Protect stateful data (volumes, StatefulSets and their claims) from deletion, and keep it
    # if the stack is destroyed: a mistaken `pulumi destroy` or rename loses nothing. On in prod.
    protect_data: bool = False
    docker: DockerSettings = Field(default_factory=DockerSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    alertmanager: AlertmanagerSettings = Field(default_factory=AlertmanagerSettings)
    exporters: ExportersSettings = Field(default_factory=ExportersSettings)
    loki: LokiSettings = Field(default_factory=LokiSettings)
    log_shipper: LogShipperSettings = Field(default_factory=LogShipperSettings)
    otel_collector: OtelCollectorSettings = Field(default_factory=OtelCollectorSettings)
    jaeger: JaegerSettings = Field(default_factory=JaegerSettings)
    grafana: GrafanaSettings = Field(default_factory=GrafanaSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings, repr=False)

    def secret(self, name: str) -> pulumi.Output[str]:
        """A secret as a Pulumi secret Output, the only form in which it leaves the settings."""
        value = getattr(self.secrets, name)
        if value is None:
            raise KeyError(f"secret {name!r} is not set")
        return pulumi.Output.secret(value)


def _cross_checks(s: Settings) -> list[tuple[str, str]]:
    """Rules that span several keys; each problem as (key path, message)."""
    problems: list[tuple[str, str]] = []

    def need_secret(name: str, because: str) -> None:
        if getattr(s.secrets, name) is None:
            problems.append(
                (
                    f"secrets.{name}",
                    f"required because {because}; set it with "
                    f"`pulumi config set --secret --path secrets.{name} <value>`",
                )
            )

    receivers = s.alertmanager.receivers
    if receivers.slack.enabled:
        need_secret("slack_webhook_url", "alertmanager.receivers.slack.enabled is true")
    if receivers.pagerduty.enabled:
        need_secret("pagerduty_routing_key", "alertmanager.receivers.pagerduty.enabled is true")
    if receivers.watchdog.enabled:
        need_secret("watchdog_url", "alertmanager.receivers.watchdog.enabled is true")

    pg = s.exporters.postgres
    if pg.enabled:
        for key in ("host", "user"):
            if getattr(pg, key) is None:
                problems.append(
                    (f"exporters.postgres.{key}", "required because exporters.postgres.enabled is true")
                )
        need_secret("postgres_password", "exporters.postgres.enabled is true")
    if s.exporters.redis.enabled and s.exporters.redis.address is None:
        problems.append(
            ("exporters.redis.address", "required because exporters.redis.enabled is true")
        )
    rw = s.prometheus.remote_write
    if rw is not None and rw.username is not None:
        need_secret("remote_write_password", "prometheus.remote_write.username is set")

    if milliseconds(s.loki.retention) < _UNIT_MS["d"]:
        # The compactor deletes by whole index periods (24h); Loki refuses shorter retention.
        problems.append(("loki.retention", "must be at least 24h"))
    storage = s.loki.storage
    if storage.type != "filesystem" and storage.bucket is None:
        problems.append(("loki.storage.bucket", f"required because loki.storage.type is {storage.type}"))
    if storage.type == "s3":
        keys = ("loki_s3_access_key_id", "loki_s3_secret_access_key")
        given = [k for k in keys if getattr(s.secrets, k) is not None]
        # Both keys, or neither (credentials from the environment: an IAM role, IRSA).
        if len(given) == 1:
            need_secret(next(k for k in keys if k not in given), f"secrets.{given[0]} is set")

    grafana = s.grafana
    if grafana.url is None and (grafana.mode == "external" or s.platform == "kubernetes"):
        because = "grafana.mode is external" if grafana.mode == "external" else "platform is kubernetes"
        problems.append(("grafana.url", f"required because {because}: the address where `pulumi up` reaches Grafana"))
    if grafana.mode == "external":
        need_secret("grafana_api_token", "grafana.mode is external")
    if grafana.ingress.enabled:
        if s.platform != "kubernetes":
            problems.append(("grafana.ingress.enabled", "an Ingress needs the kubernetes platform; docker publishes grafana.port"))
        elif grafana.mode != "deploy":
            problems.append(("grafana.ingress.enabled", "an Ingress is for the Grafana the stack deploys (grafana.mode is external)"))
        elif grafana.url is not None and not re.fullmatch(r"https://[^/:]+/?", grafana.url):
            problems.append(("grafana.url", "must be https://<host> because grafana.ingress.enabled is true "
                                            "(the Ingress serves TLS for that host, at its root)"))
    # Folders are known to Grafana, dashboards and configs/grafana/dashboards/ by their uid.
    uids: dict[str, list[str]] = {}
    for title in grafana.folders:
        uids.setdefault(folder_uid(title), []).append(title)
    for uid, titles in sorted(uids.items()):
        if not uid:
            problems.append(("grafana.folders", f"folder {titles[0]!r} needs a letter or digit in its name"))
        elif len(titles) > 1:
            names = " and ".join(repr(t) for t in titles)
            problems.append(("grafana.folders", f"folders {names} would share the uid {uid!r}"))

    published = {
        "prometheus.port": s.prometheus.port,
        "alertmanager.port": s.alertmanager.port,
        "loki.port": s.loki.port,
        "otel_collector.grpc_port": s.otel_collector.grpc_port,
        "otel_collector.http_port": s.otel_collector.http_port,
        "jaeger.port": s.jaeger.port,
    }
    if grafana.mode == "deploy":
        published["grafana.port"] = grafana.port
    seen: dict[int, str] = {}
    for key, port in published.items():
        if port in seen:
            problems.append((key, f"port {port} is already used by {seen[port]}"))
        seen.setdefault(port, key)

    jobs = [t.job for t in s.prometheus.scrape_targets]
    for job in sorted({j for j in jobs if jobs.count(j) > 1}):
        problems.append(("prometheus.scrape_targets", f"job {job!r} is listed more than once"))
    if milliseconds(s.prometheus.scrape_timeout) > milliseconds(s.prometheus.scrape_interval):
        problems.append(
            ("prometheus.scrape_timeout", "must not be longer than prometheus.scrape_interval")
        )

    sized = {
        key: getattr(s, key)
        for key in ("prometheus", "alertmanager", "loki", "log_shipper", "otel_collector", "jaeger", "grafana")
    }
    sized.update({f"exporters.{name}": getattr(s.exporters, name) for name in ExportersSettings.model_fields})
    for key, section in sized.items():
        for amount in ("cpu", "memory"):
            request = getattr(section.resources.requests, amount)
            limit = getattr(section.resources.limits, amount)
            if quantity(request) > quantity(limit):
                problems.append(
                    (f"{key}.resources.requests.{amount}", f"{request} is more than the limit {limit}")
                )

    if s.platform == "docker":
        # One engine, one machine: replicas would only share the host's fate and its ports.
        for key in ("prometheus", "alertmanager"):
            if getattr(s, key).replicas > 1:
                problems.append(
                    (f"{key}.replicas", "docker runs one replica; use the kubernetes platform for HA")
                )
    return problems


_UNIT_MS = {"y": 31_536_000_000, "w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


def milliseconds(duration: str) -> int:
    """A Prometheus-style duration ("1h30m", "7d") in whole milliseconds, exactly."""
    return sum(int(n) * _UNIT_MS[unit] for n, unit in re.findall(r"(\d+)(ms|y|w|d|h|m|s)", duration))


def go_duration(duration: str) -> str:
    """The same duration in Go's time.Duration syntax, which has no days: "7d" -> "168h".

    The OpenTelemetry Collector and Jaeger read durations that way; Prometheus and Loki do not.
    """
    ms = milliseconds(duration)
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def folder_uid(title: str) -> str:
    """A Grafana folder's uid: its title in lower case, words joined by '-' ("GPU & ML" -> gpu-ml)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _format(stack: str, problems: list[tuple[str, str]]) -> str:
    lines = [f"stack {stack!r}: invalid configuration:"]
    lines += [f"  - key '{key}': {message}" for key, message in problems]
    return "\n".join(lines)


def _key_path(loc: tuple) -> str:
    return ".".join(str(part) if not isinstance(part, int) else f"[{part}]" for part in loc).replace(
        ".[", "["
    )


def parse(stack: str, values: dict[str, Any], secret_keys: set[str] = frozenset()) -> Settings:
    """Validate raw config values (keys without the namespace) into Settings, or raise ConfigError.

    `secret_keys` are the keys Pulumi holds as secrets; the `secrets` key must be one of them.
    """
    values = dict(values)
    values.setdefault("environment", stack)
    problems: list[tuple[str, str]] = []
    if "secrets" in values and "secrets" not in secret_keys:
        problems.append(
            ("secrets", "must be set with `pulumi config set --secret --path secrets.<name>`")
        )
    for key in sorted(secret_keys - {"secrets"}):
        problems.append((key, "is a secret; only the `secrets` key may hold secret values"))
    try:
        settings = Settings.model_validate(values)
    except ValidationError as error:
        for e in error.errors(include_input=False, include_url=False):
            # Never echo the input: it may be a secret. Name the key and the rule only.
            message = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            message = message.removeprefix("Value error, ")
            problems.append((_key_path(e["loc"]), message))
        raise ConfigError(_format(stack, problems)) from None
    problems += _cross_checks(settings)
    if problems:
        raise ConfigError(_format(stack, problems))
    return settings


def required_secrets(stack: str, values: dict[str, Any]) -> set[str]:
    """The secrets a configuration (without its `secrets` key) needs; empty if it is invalid."""
    values = {**values, "environment": values.get("environment", stack)}
    try:
        settings = Settings.model_validate(values)
    except ValidationError:
        return set()
    return {
        key.removeprefix("secrets.")
        for key, message in _cross_checks(settings)
        if key.startswith("secrets.") and message.startswith("required because")
    }


def _decode(raw: Any) -> Any:
    """Pulumi hands objects and lists over as JSON text and scalars as plain text."""
    if isinstance(raw, str) and raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def load() -> Settings:
    """Read and validate this stack's settings from the Pulumi config."""
    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = NAMESPACE + ":"
    values = {k[len(prefix):]: _decode(v) for k, v in raw.items() if k.startswith(prefix)}
    env_secret_keys = set(runtime_config.get_config_secret_keys_env())
    secret_keys = {
        k for k in values
        if runtime_config.is_config_secret(prefix + k) or prefix + k in env_secret_keys
    }
    return parse(pulumi.get_stack(), values, secret_keys)
