"""Grafana Alloy: ships container logs to Loki; the supported successor of Promtail."""

from __future__ import annotations

import json

from components import images
from components.services import log_pipeline
from components.services.log_pipeline import JSON_FIELDS, LEVEL_LABEL, REDACTED, TRACE_ID, Pipeline, Relabel, shipper
from components.settings import LogShipperArgs
from components.workload import ConfigFile, Workload

CONFIG = "/etc/alloy/config.alloy"
DATA_DIR = "/var/lib/alloy"
NAME = "alloy"
PORT = 12345
SOCKET = "unix:///var/run/docker.sock"


def _value(value) -> str:
    """An Alloy literal: strings quoted and escaped as JSON does, which Alloy's syntax accepts."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_value(v)}" for key, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value)


def _block(name: str, label: str | None, body: list[str], indent: str = "") -> list[str]:
    head = f'{indent}{name} "{label}" {{' if label else f"{indent}{name} {{"
    return [head, *[f"{indent}  {line}" for line in body], f"{indent}}}"]


def _attributes(**values) -> list[str]:
    return [f"{key} = {value}" for key, value in values.items()]


def _rule(rule: Relabel) -> list[str]:
    body = _attributes(source_labels=_value(list(rule.source_labels)), regex=_value(rule.regex), action=_value(rule.action))
    if rule.action == "replace":
        body += _attributes(target_label=_value(rule.target_label), replacement=_value(rule.replacement))
    if rule.separator != ";":
        body += _attributes(separator=_value(rule.separator))
    return _block("rule", None, body)


def _stages(p: Pipeline) -> list[str]:
    lines: list[str] = []
    if p.kubernetes:
        lines += _block("stage.cri", None, [])
    for r in p.redactions:
        lines += _block("stage.replace", None, _attributes(expression=_value(r.expression), replace=_value(REDACTED)))
    lines += _block("stage.json", None, _attributes(expressions=_value(dict(JSON_FIELDS))))
    lines += _block("stage.template", None, _attributes(source=_value(LEVEL_LABEL), template=_value("{{ ToLower .Value }}")))
    lines += _block("stage.labels", None, _attributes(values=_value({LEVEL_LABEL: ""})))
    lines += _block("stage.structured_metadata", None, _attributes(values=_value({TRACE_ID: ""})))
    return lines


def render_config(p: Pipeline) -> str:
    relabel_rules = [line for rule in p.relabel for line in _rule(rule)]
    blocks: list[list[str]] = []
    if p.kubernetes:
        # Only this node's pods: NODE_NAME comes from the pod's spec.nodeName.
        selector = _block("selectors", None, _attributes(role='"pod"', field='"spec.nodeName=" + sys.env("NODE_NAME")'))
        blocks.append(_block("discovery.kubernetes", "pods", _attributes(role='"pod"') + selector))
        blocks.append(_block("discovery.relabel", "pods", _attributes(targets="discovery.kubernetes.pods.targets") + relabel_rules))
        blocks.append(_block("local.file_match", "pods", _attributes(path_targets="discovery.relabel.pods.output")))
        blocks.append(_block("loki.source.file", "pods", _attributes(
            targets="local.file_match.pods.targets", forward_to="[loki.process.pipeline.receiver]")))
    else:
        # Every 5s rather than the default 1m: a short-lived container's output is shipped too.
        blocks.append(_block("discovery.docker", "containers",
                             _attributes(host=_value(SOCKET), refresh_interval=_value("5s"))))
        blocks.append(_block("discovery.relabel", "containers", _attributes(targets="discovery.docker.containers.targets") + relabel_rules))
        blocks.append(_block("loki.source.docker", "containers", _attributes(
            host=_value(SOCKET), targets="discovery.relabel.containers.output", forward_to="[loki.process.pipeline.receiver]")))
    blocks.append(_block("loki.process", "pipeline", _attributes(forward_to="[loki.write.default.receiver]") + _stages(p)))
    endpoint = _block("endpoint", None, _attributes(url=_value(p.loki_push_url)))
    blocks.append(_block("loki.write", "default", endpoint + _attributes(external_labels=_value(dict(p.external_labels)))))
    # The module's path before the services moved into components/services/, kept on purpose: the
    # header is part of the file, and a new one would change its hash and restart every Alloy pod
    # for a comment. Update it with the next change that restarts Alloy anyway.
    header = ["// Rendered by the observability stack from components/alloy.py and configs/logs/."]
    return "\n\n".join("\n".join(block) for block in [header, *blocks]) + "\n"


def workload(args: LogShipperArgs, p: Pipeline, name: str = NAME) -> Workload:
    return shipper(
        args, p, name=name, image=images.ALLOY, port=PORT,
        command=("run", f"--server.http.listen-addr=0.0.0.0:{PORT}", f"--storage.path={DATA_DIR}", CONFIG),
        config=ConfigFile(CONFIG, render_config(p)), data_dir=DATA_DIR,
        # The discovery selector keeps this node's pods: NODE_NAME.
        node_env="NODE_NAME", ready_path="/-/ready",
    )


class Alloy(log_pipeline.Shipper):
    """Grafana Alloy on every node: ships each container's log lines to Loki, labelled and
    redacted. See log_pipeline.Shipper for its inputs."""

    kind = "Alloy"
    build = staticmethod(workload)
