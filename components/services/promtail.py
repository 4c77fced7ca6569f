"""Promtail: ships container logs to Loki. Kept for stacks that still choose it; Alloy (alloy.py)
is the default. Promtail reached end of life on 2026-03-02: its code left Loki in 3.7."""

from __future__ import annotations

from components import images, yaml_text
from components.services import log_pipeline
from components.services.log_pipeline import JSON_FIELDS, LEVEL_LABEL, REDACTED, TRACE_ID, Pipeline, Relabel, shipper
from components.settings import LogShipperArgs
from components.workload import ConfigFile, Workload

CONFIG = "/etc/promtail/promtail.yml"
DATA_DIR = "/var/lib/promtail"
NAME = "promtail"
PORT = 9080


def _relabel(rule: Relabel) -> dict:
    config = {"source_labels": list(rule.source_labels), "regex": rule.regex, "action": rule.action}
    if rule.action == "replace":
        config.update(target_label=rule.target_label, replacement=rule.replacement)
    if rule.separator != ";":
        config["separator"] = rule.separator
    return config


def stages(p: Pipeline) -> list[dict]:
    found = [{"cri": {}}] if p.kubernetes else []
    found += [{"replace": {"expression": r.expression, "replace": REDACTED}} for r in p.redactions]
    found += [
        {"json": {"expressions": dict(JSON_FIELDS)}},
        {"template": {"source": LEVEL_LABEL, "template": "{{ ToLower .Value }}"}},
        {"labels": {LEVEL_LABEL: None}},
        {"structured_metadata": {TRACE_ID: None}},
    ]
    return found


def render_config(p: Pipeline) -> str:
    relabel = [_relabel(rule) for rule in p.relabel]
    if p.kubernetes:
        # Promtail tails only the pods whose __host__ is its own node (HOSTNAME).
        relabel.insert(0, _relabel(Relabel(("__meta_kubernetes_pod_node_name",), "__host__")))
        job = {"job_name": "kubernetes-pods", "kubernetes_sd_configs": [{"role": "pod"}]}
    else:
        job = {
            "job_name": "docker-containers",
            "docker_sd_configs": [{"host": "unix:///var/run/docker.sock", "refresh_interval": "5s"}],
        }
    job.update(relabel_configs=relabel, pipeline_stages=stages(p))
    return yaml_text.dump(
        {
            "server": {"http_listen_port": PORT, "grpc_listen_port": 0, "log_level": "info"},
            "positions": {"filename": f"{DATA_DIR}/positions.yaml"},
            "clients": [{"url": p.loki_push_url, "external_labels": dict(p.external_labels)}],
            "scrape_configs": [job],
        }
    )


def workload(args: LogShipperArgs, p: Pipeline, name: str = NAME) -> Workload:
    return shipper(
        args, p, name=name, image=images.PROMTAIL, port=PORT,
        command=(f"-config.file={CONFIG}",), config=ConfigFile(CONFIG, render_config(p)), data_dir=DATA_DIR,
        # Promtail tails only pods whose __host__ is this node, named by HOSTNAME.
        node_env="HOSTNAME", ready_path="/ready",
    )


class Promtail(log_pipeline.Shipper):
    """Promtail on every node (end of life: prefer Alloy): ships each container's log lines to
    Loki. See log_pipeline.Shipper for its inputs."""

    kind = "Promtail"
    build = staticmethod(workload)
