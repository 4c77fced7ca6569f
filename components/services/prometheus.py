"""Prometheus: configuration rendered from configs/prometheus/ and the stack's settings."""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import pulumi

from components import CONFIGS, images, yaml_text
from components.alerting import recording_rules, slos, user_rules
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import ClusterTargets, PrometheusArgs, Settings, url_port
from components.workload import (
    ApiRead,
    ConfigFile,
    Egress,
    DataVolume,
    PROMETHEUS,
    HealthCheck,
    Port,
    ScrapeJob,
    SecretFile,
    Workload,
)

CONFIG_SOURCE = CONFIGS / "prometheus"
CONFIG_DIR = "/etc/prometheus"
RULES_DIR = f"{CONFIG_DIR}/rules"
DATA_DIR = "/prometheus"
PORT = 9090
# The name every NetworkPolicy of the stack admits to the metrics ports (workload.PROMETHEUS).
NAME = PROMETHEUS


# The rendered alert catalog's file, beside the user's rule files (components/alerting/user_rules.py).
CATALOG_RULES = user_rules.CATALOG_RULES


def rule_files(catalog_rules: str, settings: Optional[Settings] = None) -> list[ConfigFile]:
    """The stack's rendered alert catalog, its recording rules, the rules of its service level
    objectives, and every user rule file under configs/prometheus/rules, each checked as Prometheus will load it (a
    ValueError lists what it would refuse). With the stack's settings, a rule on a metric nothing
    in the stack produces is reported as a warning."""
    objectives = slos.render(settings) if settings is not None else None
    records = recording_rules.render(settings, user_rules.deployed_producers(settings)) if settings is not None else None
    return [
        ConfigFile(f"{RULES_DIR}/{CATALOG_RULES}", catalog_rules),
        *([ConfigFile(f"{RULES_DIR}/{recording_rules.RULES}", records)] if records is not None else []),
        *([ConfigFile(f"{RULES_DIR}/{slos.RULES}", objectives)] if objectives is not None else []),
        *(ConfigFile(f"{RULES_DIR}/{name}", text) for name, text in user_rules.checked(settings)),
    ]


def _static_job(job: ScrapeJob) -> dict:
    config: dict = {"job_name": job.name}
    if job.pods is not None:
        # Every pod of the workloads, named by its node (one per node) or by itself.
        config["kubernetes_sd_configs"] = [{"role": "pod", "namespaces": {"names": [job.pods.namespace]}}]
        config["relabel_configs"] = [
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                "regex": "|".join(job.pods.apps),
                "action": "keep",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_container_port_number"],
                "regex": str(job.pods.port),
                "action": "keep",
            },
            {"source_labels": ["__meta_kubernetes_pod_node_name" if job.pods.by_node else "__meta_kubernetes_pod_name"],
             "target_label": "instance"},
        ]
        if not job.pods.by_node:
            # The role of a service that runs as several (Loki's distributor), as Kubernetes'
            # recommended label names it; absent for a service of one role.
            config["relabel_configs"].append({
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
                "target_label": "component",
            })
    else:
        group: dict = {"targets": list(job.targets)}
        if job.labels:
            group["labels"] = dict(job.labels)
        config["static_configs"] = [group]
    if job.metrics_path != "/metrics":
        config["metrics_path"] = job.metrics_path
    if job.scheme != "http":
        config["scheme"] = job.scheme
    if job.interval is not None:
        config["scrape_interval"] = job.interval
    return config


def _opt_in_relabel(meta: str) -> list[dict]:
    """The prometheus.io/{scrape,path,port,scheme,job} convention, for labels or annotations."""
    return [
        {"source_labels": [f"{meta}_prometheus_io_scrape"], "regex": "true", "action": "keep"},
        {"source_labels": [f"{meta}_prometheus_io_path"], "regex": "(.+)", "target_label": "__metrics_path__"},
        {"source_labels": [f"{meta}_prometheus_io_scheme"], "regex": "(https?)", "target_label": "__scheme__"},
        {"source_labels": [f"{meta}_prometheus_io_job"], "regex": "(.+)", "target_label": "job"},
    ]


def discovery_jobs(platform: str, docker_network: str) -> list[dict]:
    """Scrape the user's own workloads that opt in, wherever the stack runs."""
    if platform == "docker":
        label = "__meta_docker_container_label"
        return [
            {
                "job_name": "docker-containers",
                "docker_sd_configs": [{"host": "unix:///var/run/docker.sock", "refresh_interval": "30s"}],
                "relabel_configs": [
                    # Only containers Prometheus can reach: those on the stack's network.
                    {"source_labels": ["__meta_docker_network_name"], "regex": docker_network, "action": "keep"},
                    {"source_labels": ["__meta_docker_container_name"], "regex": "/?(.*)", "target_label": "job"},
                    *_opt_in_relabel(label),
                    {
                        "source_labels": ["__meta_docker_network_ip", f"{label}_prometheus_io_port"],
                        "regex": r"(.+);(\d+)",
                        "replacement": "$1:$2",
                        "target_label": "__address__",
                    },
                    {"source_labels": ["__meta_docker_container_name"], "regex": "/?(.*)", "target_label": "container"},
                ],
            }
        ]
    jobs = []
    for role, kind, job_source in (
        ("pod", "pod", "__meta_kubernetes_pod_label_app_kubernetes_io_name"),
        # EndpointSlices: the Endpoints API is deprecated since Kubernetes 1.33.
        ("endpointslice", "service", "__meta_kubernetes_service_name"),
    ):
        meta = f"__meta_kubernetes_{kind}_annotation"
        relabel = [
            {"source_labels": [job_source], "regex": "(.+)", "target_label": "job"},
            *_opt_in_relabel(meta),
            {
                "source_labels": ["__address__", f"{meta}_prometheus_io_port"],
                "regex": r"([^:]+)(?::\d+)?;(\d+)",
                "replacement": "$1:$2",
                "target_label": "__address__",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": [f"__meta_kubernetes_{kind}_name"], "target_label": kind},
        ]
        if kind == "pod":
            # Finished or not yet started pods have nothing to scrape.
            relabel.insert(0, {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Pending|Succeeded|Failed", "action": "drop"})
        jobs.append(
            {
                "job_name": f"kubernetes-{kind}s",
                "kubernetes_sd_configs": [{"role": role}],
                "relabel_configs": relabel,
            }
        )
    return jobs


# What each Kubernetes discovery role the stack uses lists and watches
# (discovery/kubernetes/kubernetes.go at Prometheus v3.14.0, without attach_metadata): the pod
# role, pods; the endpointslice role, endpointslices, services and pods; the node role, nodes.
SD_ROLE_READS = {
    "pod": (ApiRead(("pods",)),),
    "endpointslice": (ApiRead(("endpointslices",), "discovery.k8s.io"), ApiRead(("pods", "services"))),
    "node": (ApiRead(("nodes",)),),
}
# What scraping the cluster itself takes beyond discovery: the kubelet authorizes /metrics and
# /metrics/cadvisor as `get` of the subresource nodes/metrics; the API server serves /metrics
# to whoever may get that non-resource URL.
CLUSTER_SCRAPE_READS = (ApiRead(("nodes/metrics",), verbs=("get",)), ApiRead(urls=("/metrics",), verbs=("get",)))

# Inside a pod that mounts its service account's token: the token and the cluster's CA.
ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def merged(reads: Sequence[ApiRead]) -> tuple[ApiRead, ...]:
    """The same access in as few rules as it takes: one per API group and verbs, then the URLs."""
    by_group: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    urls: dict[tuple[str, ...], set[str]] = {}
    for read in reads:
        if read.urls:
            urls.setdefault(read.verbs, set()).update(read.urls)
        else:
            by_group.setdefault((read.group, read.verbs), set()).update(read.resources)
    return (
        *(ApiRead(tuple(sorted(names)), group, verbs=verbs) for (group, verbs), names in sorted(by_group.items())),
        *(ApiRead(urls=tuple(sorted(names)), verbs=verbs) for verbs, names in sorted(urls.items())),
    )


def cluster_jobs(targets: ClusterTargets) -> list[dict]:
    """The cluster itself: every kubelet and the cAdvisor it serves (named `cadvisor`, the job of
    the cAdvisor container on docker, so the same alerts and panels read both), the API server and
    CoreDNS. Both authenticate Prometheus with its service account's token."""
    def token() -> dict:
        return {"authorization": {"credentials_file": f"{ACCOUNT_DIR}/token"}}

    def kubelet(job: str, path: str = "/metrics") -> dict:
        if targets.verify_kubelet_certificates:
            tls = {"ca_file": f"{ACCOUNT_DIR}/ca.crt"}
        else:
            # Stated in KubernetesSettings.verify_kubelet_certificates: most kubelets'
            # certificates are self-signed. The token still authenticates Prometheus.
            tls = {"insecure_skip_verify": True}
        return {
            "job_name": job,
            **({"metrics_path": path} if path != "/metrics" else {}),
            "scheme": "https",
            **token(),
            "tls_config": tls,
            # The node role's address is the node's, at the kubelet's own port.
            "kubernetes_sd_configs": [{"role": "node"}],
            "relabel_configs": [{"source_labels": ["__meta_kubernetes_node_name"], "target_label": "instance"}],
        }

    jobs = [kubelet("kubelet")]
    if targets.cadvisor:
        jobs.append(kubelet("cadvisor", "/metrics/cadvisor"))
    jobs.append({
        "job_name": "apiserver",
        "scheme": "https",
        **token(),
        # The API server's certificate is the cluster CA's, for the name `kubernetes`, not
        # necessarily for each endpoint's address.
        "tls_config": {"ca_file": f"{ACCOUNT_DIR}/ca.crt", "server_name": "kubernetes"},
        # Each API server on its own: a Service address would mix their counters.
        "kubernetes_sd_configs": [{"role": "endpointslice", "namespaces": {"names": ["default"]}}],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_service_name", "__meta_kubernetes_endpointslice_port_name"],
             "regex": "kubernetes;https", "action": "keep"},
        ],
    })
    dns = targets.coredns
    if dns.enabled:
        labels = ",".join(f"{key}={value}" for key, value in sorted(dns.pod_labels.items()))
        jobs.append({
            "job_name": "coredns",
            # The selector filters on the API server: Prometheus watches CoreDNS's pods only.
            "kubernetes_sd_configs": [{
                "role": "pod", "namespaces": {"names": [dns.namespace]},
                "selectors": [{"role": "pod", "label": labels}],
            }],
            "relabel_configs": [
                {"source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": str(dns.port),
                 "action": "keep"},
                {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Pending|Succeeded|Failed",
                 "action": "drop"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "instance"},
            ],
        })
    return jobs


# The kubelet's port: the node role's targets are at it (most clusters keep its default).
KUBELET_PORT = 10250


def scrape_egress(args: PrometheusArgs, platform: Platform, scrape_jobs: Sequence[ScrapeJob],
                  cluster_targets: Optional[ClusterTargets]) -> tuple[Egress, ...]:
    """Kubernetes: what Prometheus reaches beyond the stack's own pods."""
    egress = []
    if args.discovery and platform.kind == "kubernetes":
        egress.append(Egress("annotated pods and Services, on the ports they name"))
    per_node = sorted({j.pods.port for j in scrape_jobs if j.pods is not None and j.pods.by_node})
    if per_node:
        # A per-node agent on its node's network (node-exporter) is at the node's address.
        egress.append(Egress("the per-node agents on their node's network", tuple(per_node)))
    if cluster_targets is not None:
        egress.append(Egress("the kubelets", (KUBELET_PORT,)))
        if cluster_targets.coredns.enabled:
            egress.append(Egress("CoreDNS", (cluster_targets.coredns.port,)))
    targets = sorted({int(t.rsplit(":", 1)[1]) for job in args.scrape_targets for t in job.targets})
    if targets:
        egress.append(Egress("prometheus.scrape_targets", tuple(targets)))
    if args.remote_write is not None:
        egress.append(Egress("remote write", (url_port(args.remote_write.url),)))
    return tuple(egress)


def cluster_job_names(targets: Optional[ClusterTargets]) -> list[str]:
    """The jobs cluster_jobs renders: what the alert catalog's `requires` may name of the cluster."""
    return [job["job_name"] for job in cluster_jobs(targets)] if targets is not None else []


def cluster_reads(targets: ClusterTargets) -> tuple[ApiRead, ...]:
    roles = ["node", "endpointslice"] + (["pod"] if targets.coredns.enabled else [])
    return (*(read for role in roles for read in SD_ROLE_READS[role]), *CLUSTER_SCRAPE_READS)


REPLICA_LABEL = "replica"


def ha_pair(args: PrometheusArgs, platform: Platform) -> bool:
    return platform.kind == "kubernetes" and args.replicas > 1


def render_config(
    args: PrometheusArgs,
    platform: Platform,
    scrape_jobs: list[ScrapeJob],
    alertmanagers: Sequence[str],
    environment: str,
    cluster: str,
    remote_write_password_file: Optional[str] = None,
    cluster_targets: Optional[ClusterTargets] = None,
) -> str:
    """prometheus.yml: the base file from configs/, with the args, the labels every series
    carries (environment and cluster) and the scrape jobs merged in."""
    config = yaml_text.load((CONFIG_SOURCE / "prometheus.yml").read_text()) or {}
    external_labels = {**args.external_labels, "environment": environment, "cluster": cluster}
    if ha_pair(args, platform):
        # Each replica's series stay apart in long-term storage; Prometheus fills in its pod's name.
        external_labels[REPLICA_LABEL] = "${POD_NAME}"
    config.setdefault("global", {}).update(
        {
            "scrape_interval": args.scrape_interval,
            "scrape_timeout": args.scrape_timeout,
            "evaluation_interval": args.evaluation_interval,
            "external_labels": external_labels,
        }
    )
    # Retention belongs in the file since Prometheus 3.8 (the flags are deprecated), and a
    # reload applies a change without a restart.
    config.setdefault("storage", {}).setdefault("tsdb", {})["retention"] = {
        "time": args.retention.time,
        "size": args.retention.size,
    }
    config["rule_files"] = [f"{RULES_DIR}/*.yml"]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    if ha_pair(args, platform):
        # Both replicas send the same alert: without the replica label Alertmanager sees one.
        config["alerting"]["alert_relabel_configs"] = [{"action": "labeldrop", "regex": REPLICA_LABEL}]

    jobs = list(config.get("scrape_configs") or [])
    jobs += [_static_job(job) for job in scrape_jobs]
    if cluster_targets is not None:
        jobs += cluster_jobs(cluster_targets)
    if args.discovery:
        jobs += discovery_jobs(platform.kind, platform.settings.network if platform.kind == "docker" else "")
    names = [job["job_name"] for job in jobs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"scrape job names used twice: {', '.join(duplicates)}; rename the job in "
            "prometheus.scrape_targets or configs/prometheus/prometheus.yml"
        )
    config["scrape_configs"] = jobs

    if args.remote_write is not None:
        target: dict = {"url": args.remote_write.url}
        if args.remote_write.username is not None:
            target["basic_auth"] = {
                "username": args.remote_write.username,
                "password_file": remote_write_password_file,
            }
        config["remote_write"] = [target]
    return yaml_text.dump(config)


def user_scrape_jobs(args: PrometheusArgs) -> list[ScrapeJob]:
    return [
        ScrapeJob(
            name=t.job,
            targets=tuple(t.targets),
            metrics_path=t.metrics_path,
            scheme=t.scheme,
            interval=t.interval,
            labels=dict(t.labels),
        )
        for t in args.scrape_targets
    ]


def base(
    args: PrometheusArgs,
    platform: Platform,
    readers: Sequence[str] = ("grafana",),
    remote_write_password: Optional[pulumi.Input[str]] = None,
    name: str = NAME,
) -> Workload:
    """Prometheus without its configuration: enough for the platform to say where it is.
    readers: the workloads that query it (or workload.ANYONE), beside the collector, which
    pushes OTLP metrics, and its own replicas, which scrape each other."""
    secrets = []
    if args.remote_write is not None and args.remote_write.username is not None:
        if remote_write_password is None:
            raise ValueError(f"{name}: remote_write.username is set, so the remote_write_password is required")
        secrets.append(SecretFile("remote_write_password", pulumi.Output.secret(remote_write_password)))
    return Workload(
        name=name,
        image=images.PROMETHEUS,
        ports=(Port("web", PORT, host_port=args.port, clients=(*readers, "otel-collector", PROMETHEUS)),),
        resources=args.resources,
        args=(
            f"--config.file={CONFIG_DIR}/prometheus.yml",
            f"--storage.tsdb.path={DATA_DIR}",
            # Retention is in prometheus.yml (storage.tsdb.retention): the flags are deprecated.
            "--web.enable-lifecycle",
            # The OpenTelemetry Collector pushes application metrics to /api/v1/otlp/v1/metrics.
            "--web.enable-otlp-receiver",
            # Keep exemplars, so Grafana can open the trace behind a latency spike in Jaeger.
            # (${POD_NAME} in external labels is expanded without a flag since Prometheus 3.)
            "--enable-feature=exemplar-storage",
        ),
        secret_files=tuple(secrets),
        data=DataVolume(DATA_DIR, args.storage_size),
        health=HealthCheck("web", "/-/ready"),
        replicas=args.replicas,
        run_as_user=65534,
        metrics_port="web",
        field_env={"POD_NAME": "metadata.name"} if ha_pair(args, platform) else {},
    )


def workload(
    args: PrometheusArgs,
    platform: Platform,
    *,
    environment: str,
    cluster: str,
    scrape_jobs: Sequence[ScrapeJob] = (),
    alertmanagers: Sequence[str] = (),
    rule_files: Mapping[str, str] | None = None,
    readers: Sequence[str] = ("grafana",),
    remote_write_password: Optional[pulumi.Input[str]] = None,
    cluster_targets: Optional[ClusterTargets] = None,
    name: str = NAME,
) -> Workload:
    """rule_files: file name -> rule file, loaded from RULES_DIR (the stack's are checked by
    rule_files() below). cluster_targets: kubernetes only, what to scrape of the cluster itself."""
    if platform.kind == "kubernetes" and name != PROMETHEUS:
        raise ValueError(f"{name}: on kubernetes Prometheus must be named {PROMETHEUS!r}: the NetworkPolicies "
                         "of what it scrapes admit the pods of that name")
    if platform.kind != "kubernetes" and cluster_targets is not None:
        raise ValueError(f"{name}: cluster_targets are a Kubernetes cluster's; the {platform.kind} platform has none")
    prometheus = base(args, platform, readers, remote_write_password, name)
    # Kubernetes API access: for the user's workloads, for per-node services, which have no
    # single address and are always found through the API, and for the cluster itself.
    roles = {"pod"} if any(j.pods for j in scrape_jobs) else set()
    if args.discovery:
        roles |= {"pod", "endpointslice"}  # discovery_jobs(): kubernetes-pods and kubernetes-services
    reads = [read for role in sorted(roles) for read in SD_ROLE_READS[role]]
    if cluster_targets is not None:
        reads += cluster_reads(cluster_targets)
    egress = scrape_egress(args, platform, scrape_jobs, cluster_targets)
    # Prometheus scrapes every replica of itself too; its addresses do not depend on its config.
    jobs = [platform.scrape_job(prometheus), *scrape_jobs, *user_scrape_jobs(args)]
    password = next((f.path for f in prometheus.secret_files), None)
    config = render_config(args, platform, jobs, alertmanagers, environment, cluster, password, cluster_targets)
    rules = tuple(ConfigFile(f"{RULES_DIR}/{file}", text) for file, text in (rule_files or {}).items())
    return dataclasses.replace(
        prometheus,
        discovery=merged(reads),
        egress=egress,
        config_files=(ConfigFile(f"{CONFIG_DIR}/prometheus.yml", config), *rules),
    )


class Prometheus(ServiceComponent):
    """Prometheus: scrapes what it is given, evaluates its rule files and sends alerts.

    args: the stack file's `prometheus:` keys (PrometheusArgs; the stacks' defaults when left
    out). environment and cluster: labels on every series it stores and sends. scrape_jobs: the
    other components' scrape_job; alertmanagers: host:port of each Alertmanager replica (an
    Alertmanager component's addresses["web"]); rule_files: file name -> rule file text.
    readers: the workloads that query it, or workload.ANYONE. remote_write_password: required
    with remote_write.username. cluster_targets (kubernetes only): the kubelets, their cAdvisor,
    the API server and CoreDNS (ClusterTargets). On kubernetes its name must be "prometheus".
    See ServiceComponent for the output properties.
    """

    kind = "Prometheus"

    def __init__(self, name: str, args: Optional[PrometheusArgs] = None, *, platform: Platform, environment: str,
                 cluster: str, scrape_jobs: Sequence[ScrapeJob] = (), alertmanagers: Sequence[str] = (),
                 rule_files: Mapping[str, str] | None = None, readers: Sequence[str] = ("grafana",),
                 remote_write_password: Optional[pulumi.Input[str]] = None,
                 cluster_targets: Optional[ClusterTargets] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(
            name, platform, opts, args=args or PrometheusArgs(), environment=environment, cluster=cluster,
            scrape_jobs=scrape_jobs, alertmanagers=alertmanagers, rule_files=rule_files, readers=readers,
            remote_write_password=remote_write_password, cluster_targets=cluster_targets,
        )

    @classmethod
    def render(cls, name: str, platform: Platform, **inputs) -> Workload:
        return workload(platform=platform, name=name, **inputs)
