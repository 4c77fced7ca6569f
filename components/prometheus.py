"""Prometheus: configuration rendered from configs/prometheus/ and the stack's settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from components import images, user_rules, yaml_text
from components.platform import Platform
from components.settings import PrometheusSettings, Settings
from components.workload import (
    ConfigFile,
    DataVolume,
    PROMETHEUS,
    HealthCheck,
    Port,
    ScrapeJob,
    SecretFile,
    Workload,
    grafana_clients,
)

CONFIG_SOURCE = Path(__file__).parent.parent / "configs" / "prometheus"
CONFIG_DIR = "/etc/prometheus"
RULES_DIR = f"{CONFIG_DIR}/rules"
DATA_DIR = "/prometheus"
PORT = 9090


# The rendered alert catalog's file, beside the user's rule files (components/user_rules.py).
CATALOG_RULES = user_rules.CATALOG_RULES


def rule_files(catalog_rules: str, settings: Optional[Settings] = None) -> list[ConfigFile]:
    """The stack's rendered alert catalog, and every user rule file under configs/prometheus/rules,
    each checked as Prometheus will load it (a ValueError lists what it would refuse). With the
    stack's settings, a rule on a metric nothing in the stack produces is reported as a warning."""
    return [
        ConfigFile(f"{RULES_DIR}/{CATALOG_RULES}", catalog_rules),
        *(ConfigFile(f"{RULES_DIR}/{name}", text) for name, text in user_rules.checked(settings)),
    ]


def _static_job(job: ScrapeJob) -> dict:
    config: dict = {"job_name": job.name}
    if job.pods is not None:
        # Every pod of a per-node workload, named by the node it runs on.
        config["kubernetes_sd_configs"] = [{"role": "pod", "namespaces": {"names": [job.pods.namespace]}}]
        config["relabel_configs"] = [
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                "regex": job.pods.app,
                "action": "keep",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_container_port_number"],
                "regex": str(job.pods.port),
                "action": "keep",
            },
            {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "instance"},
        ]
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
        ("endpoints", "service", "__meta_kubernetes_service_name"),
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


REPLICA_LABEL = "replica"


def ha_pair(settings: Settings) -> bool:
    return settings.platform == "kubernetes" and settings.prometheus.replicas > 1


def render_config(
    settings: Settings,
    scrape_jobs: list[ScrapeJob],
    alertmanagers: list[str],
    remote_write_password_file: Optional[str] = None,
) -> str:
    """prometheus.yml: the base file from configs/, with the stack's settings and jobs merged in."""
    prom: PrometheusSettings = settings.prometheus
    config = yaml_text.load((CONFIG_SOURCE / "prometheus.yml").read_text()) or {}
    external_labels = {**prom.external_labels, "environment": settings.environment, "cluster": settings.cluster}
    if ha_pair(settings):
        # Each replica's series stay apart in long-term storage; Prometheus fills in its pod's name.
        external_labels[REPLICA_LABEL] = "${POD_NAME}"
    config.setdefault("global", {}).update(
        {
            "scrape_interval": prom.scrape_interval,
            "scrape_timeout": prom.scrape_timeout,
            "evaluation_interval": prom.evaluation_interval,
            "external_labels": external_labels,
        }
    )
    # Retention belongs in the file since Prometheus 3.8 (the flags are deprecated), and a
    # reload applies a change without a restart.
    config.setdefault("storage", {}).setdefault("tsdb", {})["retention"] = {
        "time": prom.retention.time,
        "size": prom.retention.size,
    }
    config["rule_files"] = [f"{RULES_DIR}/*.yml"]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    if ha_pair(settings):
        # Both replicas send the same alert: without the replica label Alertmanager sees one.
        config["alerting"]["alert_relabel_configs"] = [{"action": "labeldrop", "regex": REPLICA_LABEL}]

    jobs = list(config.get("scrape_configs") or [])
    jobs += [_static_job(job) for job in scrape_jobs]
    if prom.discovery:
        jobs += discovery_jobs(settings.platform, settings.docker.network)
    names = [job["job_name"] for job in jobs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"scrape job names used twice: {', '.join(duplicates)}; rename the job in "
            "prometheus.scrape_targets or configs/prometheus/prometheus.yml"
        )
    config["scrape_configs"] = jobs

    if prom.remote_write is not None:
        target: dict = {"url": prom.remote_write.url}
        if prom.remote_write.username is not None:
            target["basic_auth"] = {
                "username": prom.remote_write.username,
                "password_file": remote_write_password_file,
            }
        config["remote_write"] = [target]
    return yaml_text.dump(config)


def user_scrape_jobs(settings: Settings) -> list[ScrapeJob]:
    return [
        ScrapeJob(
            name=t.job,
            targets=tuple(t.targets),
            metrics_path=t.metrics_path,
            scheme=t.scheme,
            interval=t.interval,
            labels=dict(t.labels),
        )
        for t in settings.prometheus.scrape_targets
    ]


def base(settings: Settings) -> Workload:
    """Prometheus without its configuration: enough for the platform to say where it is."""
    prom = settings.prometheus
    secrets = []
    if prom.remote_write is not None and prom.remote_write.username is not None:
        secrets.append(SecretFile("remote_write_password", settings.secret("remote_write_password")))
    return Workload(
        name="prometheus",
        image=images.PROMETHEUS,
        # Grafana queries it, the collector pushes OTLP metrics, replicas scrape each other.
        ports=(Port("web", PORT, host_port=prom.port,
                    clients=(*grafana_clients(settings), "otel-collector", PROMETHEUS)),),
        resources=prom.resources,
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
        data=DataVolume(DATA_DIR, prom.storage_size),
        health=HealthCheck("web", "/-/ready"),
        replicas=prom.replicas,
        run_as_user=65534,
        metrics_port="web",
        field_env={"POD_NAME": "metadata.name"} if ha_pair(settings) else {},
    )


def workload(
    settings: Settings, platform: Platform, scrape_jobs: list[ScrapeJob], alertmanagers: list[str],
    catalog_rules: str,
) -> Workload:
    prometheus = base(settings)
    # Kubernetes API access: for the user's workloads, and for per-node services, which have
    # no single address and are always found through the API.
    discovery = settings.prometheus.discovery or any(job.pods is not None for job in scrape_jobs)
    # Prometheus scrapes every replica of itself too; its addresses do not depend on its config.
    jobs = [platform.scrape_job(prometheus), *scrape_jobs, *user_scrape_jobs(settings)]
    password = next((f.path for f in prometheus.secret_files), None)
    config = render_config(settings, jobs, alertmanagers, password)
    return dataclasses.replace(
        prometheus,
        discovery=discovery,
        config_files=(ConfigFile(f"{CONFIG_DIR}/prometheus.yml", config), *rule_files(catalog_rules, settings)),
    )
