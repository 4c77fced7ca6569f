"""components/tools/verify.py against a stack on 127.0.0.1: Debian's Prometheus, Alertmanager and
node-exporter run with the configuration the program renders for dev (as in test_live_stack.py),
and small stand-ins, in this file, take the place of what has no binary here:

- Loki: stores pushed lines; sets detected_level at ingest from a `level` label or an OTLP
  severity number, as Loki 3.7's distributor does with discover_log_levels (field_detection.go);
  answers query_range with detected_level among the stream's labels, as Loki does when the
  caller does not ask for categorised labels.
- the log shipper: the emitter verify is given; it reads the container's line as Alloy's JSON
  stage does (level becomes a label) and pushes it to Loki.
- the OpenTelemetry Collector: takes OTLP/HTTP JSON, hands log records to Loki (severity as
  structured metadata, as Loki's OTLP endpoint keeps it) and spans to Jaeger.
- Jaeger: answers /api/traces/<id> as its v2 query extension does (200 with data, or 404).
- Grafana: answers the paths verify reads, for what the stack declares, behind basic auth.

One healthy run, then one run per fault, each breaking exactly one thing: every other check
must still pass. Every server binds 127.0.0.1 and is stopped at the end of the module.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import json
import re
import subprocess
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from components.tools import verify
from conftest import Run, container_args, container_files, merge, relocate, require_tool, run_program, stack_config, write_files
from live import Deadline, Process, answers, api, free_port, local_args, receiving, running, running_alertmanager, wait_for

SETUP_S = 30
HEALTHY_TIMEOUT_S = 25
# A faulty run waits this long for what never comes; the faults that are final answer at once.
FAULT_TIMEOUT_S = 2.5
PASSWORD = "verify-test-password"
CHECKS = ["prometheus-targets", "prometheus-rules", "alertmanager", "logs-shipper", "logs-otlp", "traces",
          "grafana", "grafana-content", "watchdog"]

# dev as shipped, with Prometheus's time scales at one second, through the stack's own settings.
FAST = {"prometheus": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}}
# The services with a binary here, by their scrape job in the rendered prometheus.yml.
LOCAL_JOBS = ("prometheus", "alertmanager", "node-exporter")
# Not rendered: Prometheus sends an alert again only after this delay (default 1m), and its first
# send of the Watchdog comes before the notifier knows the Alertmanager (see test_live_stack.py).
PROMETHEUS_TEST_FLAGS = ["--rules.alert.resend-delay=1s"]
# Rendered flags that Debian's Prometheus 2.42 does not know: Prometheus 3's OTLP receiver.
PROMETHEUS_2_42_LACKS = {"--web.enable-otlp-receiver": None}


# --- stand-ins ----------------------------------------------------------------------------------


Reply = tuple[int, object]


@contextmanager
def serving(answer: Callable[[str, str, dict, bytes], Reply]) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 answering with `answer(method, path, headers, body)` as JSON;
    yields its base URL and stops it at the end."""

    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a client that stalls cannot hold a thread longer

        def _reply(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, document = answer(self.command, self.path, dict(self.headers), body)
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _reply

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


LEVELS = {"warn": "warn", "warning": "warn", "wrn": "warn", "error": "error", "err": "error",
          "info": "info", "inf": "info", "debug": "debug", "dbg": "debug"}
# OTLP severity numbers: the upper bound of each range, as Loki maps them to a level.
SEVERITY = [(0, "unknown"), (4, "trace"), (8, "debug"), (12, "info"), (16, "warn"), (20, "error"), (24, "fatal")]
QUERY = re.compile(r'^\{service_name=~"\.\+"\} \|= "(?P<text>[^"\\]+)"$')


@dataclass
class Loki:
    entries: list[tuple[dict, int, str]] = field(default_factory=list)

    def push(self, labels: dict, line: str, metadata: Optional[dict] = None) -> None:
        """Ingest one line: detected_level from a level label, else from an OTLP severity
        number, else unknown; structured metadata kept with the line."""
        metadata = dict(metadata or {})
        if "level" in labels:
            metadata["detected_level"] = LEVELS.get(labels["level"].lower(), labels["level"])
        elif "severity_number" in metadata:
            number = int(metadata["severity_number"])
            metadata["detected_level"] = next((level for top, level in SEVERITY if number <= top), "unknown")
        else:
            metadata["detected_level"] = "unknown"
        self.entries.append(({**labels, **metadata}, time.time_ns(), line))

    def answer(self, method: str, path: str, headers: dict, body: bytes) -> Reply:
        url = urlsplit(path)
        if method != "GET" or url.path != "/loki/api/v1/query_range":
            return 404, {"message": "not found"}
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        match = QUERY.match(params.get("query", ""))
        if not match:
            return 400, {"message": f"this stand-in reads only the verify query, not {params.get('query')!r}"}
        start, end = int(params["start"]), int(params["end"])
        streams: dict[str, dict] = {}
        for labels, ts, line in list(self.entries):
            if labels.get("service_name") and match["text"] in line and start <= ts < end:
                key = json.dumps(labels, sort_keys=True)
                streams.setdefault(key, {"stream": labels, "values": []})["values"].append([str(ts), line])
        return 200, {"status": "success", "data": {"resultType": "streams", "result": list(streams.values()), "stats": {}}}


@dataclass
class Jaeger:
    spans: dict[str, list[dict]] = field(default_factory=dict)

    def answer(self, method: str, path: str, headers: dict, body: bytes) -> Reply:
        match = re.fullmatch(r"/api/traces/([0-9a-f]{32})", path)
        if method != "GET" or not match:
            return 404 if method == "GET" and not path.startswith("/api/traces/") else 400, {"errors": [{"msg": "bad request"}]}
        found = self.spans.get(match[1])
        if not found:
            return 404, {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": 404, "msg": "trace not found"}]}
        return 200, {"data": [{"traceID": match[1], "spans": found, "processes": {}}], "total": 0, "limit": 0, "offset": 0, "errors": None}


def attribute(resource: dict, key: str) -> str:
    return next(a["value"]["stringValue"] for a in resource["attributes"] if a["key"] == key)


@dataclass
class Collector:
    """OTLP/HTTP JSON in; log records to Loki, spans to Jaeger. The two faults it can play: a
    pipeline that loses the severity, and spans that never reach Jaeger."""

    loki: Loki
    jaeger: Jaeger
    drop_severity: bool = False
    drop_spans: bool = False

    def answer(self, method: str, path: str, headers: dict, body: bytes) -> Reply:
        if method != "POST" or path not in ("/v1/logs", "/v1/traces"):
            return 404, {"message": "not found"}
        if headers.get("Content-Type") != "application/json":
            return 415, {"message": "unsupported content type"}
        document = json.loads(body)
        if path == "/v1/logs":
            for resource_logs in document["resourceLogs"]:
                service = attribute(resource_logs["resource"], "service.name")
                for scope in resource_logs["scopeLogs"]:
                    for record in scope["logRecords"]:
                        metadata = {} if self.drop_severity else {
                            "severity_number": str(record["severityNumber"]), "severity_text": record["severityText"]}
                        self.loki.push({"service_name": service}, record["body"]["stringValue"], metadata)
        else:
            for resource_spans in document["resourceSpans"]:
                for scope in resource_spans["scopeSpans"]:
                    for span in scope["spans"]:
                        # OTLP/JSON carries ids as hex: 16 bytes of trace id, 8 of span id.
                        if not (re.fullmatch(r"[0-9a-f]{32}", span["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", span["spanId"])):
                            return 400, {"message": "invalid trace or span id"}
                        if span["status"]["code"] != 2:  # STATUS_CODE_ERROR: what tail sampling keeps
                            return 400, {"message": "this stand-in expects an error span"}
                        if not self.drop_spans:
                            self.jaeger.spans.setdefault(span["traceId"], []).append(
                                {"traceID": span["traceId"], "spanID": span["spanId"], "operationName": span["name"]})
        return 200, {"partialSuccess": {}}


@dataclass
class Grafana:
    """What the program puts into Grafana, served at the API paths of Grafana 13."""

    folders: set[str]
    dashboards: set[str]
    datasources: dict[str, str]  # uid -> type
    rule_groups: set[tuple[str, str]]
    failing: dict[str, str] = field(default_factory=dict)  # datasource uid -> health message

    def answer(self, method: str, path: str, headers: dict, body: bytes) -> Reply:
        if method != "GET":
            return 405, {"message": "method not allowed"}
        if path == "/api/health":
            return 200, {"database": "ok", "version": "13.2.3"}
        expected = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        if headers.get("Authorization") != expected:
            return 401, {"message": "Unauthorized"}
        if m := re.fullmatch(r"/api/datasources/uid/([^/]+)/health", path):
            if m[1] not in self.datasources:
                return 404, {"message": "Data source not found"}
            if self.datasources[m[1]] == "alertmanager":  # a plugin without a backend
                return 404, {"message": "Plugin not found"}
            if m[1] in self.failing:
                return 400, {"status": "ERROR", "message": self.failing[m[1]]}
            return 200, {"status": "OK", "message": "Data source is working"}
        if m := re.fullmatch(r"/api/datasources/uid/([^/]+)", path):
            found = m[1] in self.datasources
            return (200, {"uid": m[1], "type": self.datasources[m[1]]}) if found else (404, {"message": "Data source not found"})
        if m := re.fullmatch(r"/api/folders/([^/]+)", path):
            return (200, {"uid": m[1]}) if m[1] in self.folders else (404, {"message": "folder not found"})
        if m := re.fullmatch(r"/api/dashboards/uid/([^/]+)", path):
            return (200, {"dashboard": {"uid": m[1]}, "meta": {}}) if m[1] in self.dashboards else (404, {"message": "Dashboard not found"})
        if m := re.fullmatch(r"/api/v1/provisioning/folder/([^/]+)/rule-groups/([^/]+)", path):
            if (m[1], m[2]) in self.rule_groups:
                return 200, {"title": m[2], "folderUid": m[1], "interval": 60, "rules": []}
            return 404, {"message": "rule group not found"}
        return 404, {"message": "Not found"}


@dataclass
class Shipper:
    """Stands in for the emitter and the shipper together: the container's line read as Alloy's
    JSON stage reads it (its level becomes a label) and pushed to Loki. `ships` False: a shipper
    that never picks the container up."""

    loki: Loki
    ships: bool = True
    calls: list[tuple[str, str, float]] = field(default_factory=list)

    @contextmanager
    def emit(self, name: str, line: str, seconds: float) -> Iterator[None]:
        self.calls.append((name, line, seconds))
        if self.ships:
            self.loki.push({"service_name": name, "container": name, "level": json.loads(line)["level"]}, line)
        yield


# --- the stack on loopback ----------------------------------------------------------------------


def loopback_prometheus(rendered: str, root: Path, local: dict[str, str]) -> Path:
    """The rendered prometheus.yml for processes on 127.0.0.1: the scrape jobs of LOCAL_JOBS with
    their loopback addresses, the same rule files (copied under `root`) and the local
    Alertmanager. Every other job has no process here. Debian's 2.42 knows no storage block."""
    config = yaml.safe_load(relocate(rendered, root, ("/etc/prometheus",)))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    config["scrape_configs"] = [{**jobs[name], "static_configs": [{"targets": [local[name]]}]} for name in LOCAL_JOBS]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [local["alertmanager"]]}]}]
    config.pop("storage", None)
    path = root / "prometheus-verify.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Live:
    urls: dict[str, str]
    loki: Loki
    jaeger: Jaeger
    collector: Collector
    grafana: Grafana
    password_file: Path
    processes: dict[str, Process]
    node_exporter: str
    root: Path
    run: Run

    def argv(self, timeout: float, **override: str) -> list[str]:
        urls = {**self.urls, **override}
        flags = [arg for name, url in urls.items() for arg in (f"--{name.replace('_', '-')}", url)]
        return ["--stack", "dev", "--timeout", str(timeout), *flags, "--grafana-password-file", str(self.password_file)]

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.processes.values())


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    binaries = {name: require_tool(name) for name in ("prometheus", "prometheus-node-exporter", "prometheus-alertmanager")}
    deadline = Deadline(SETUP_S)
    root = tmp_path_factory.mktemp("verify")
    logs = root / "logs"
    run = run_program("dev", merge(stack_config("dev"), FAST), {})
    local = {job: f"127.0.0.1:{free_port()}" for job in LOCAL_JOBS}
    loki, jaeger = Loki(), Jaeger()
    collector = Collector(loki, jaeger)
    grafana = Grafana(
        folders={r.inputs["uid"] for r in run.of_type("grafana:oss/folder:Folder")},
        dashboards={json.loads(r.inputs["configJson"])["uid"] for r in run.of_type("grafana:oss/dashboard:Dashboard")},
        datasources={r.inputs["uid"]: r.inputs["type"] for r in run.of_type("grafana:oss/dataSource:DataSource")},
        rule_groups={(r.inputs["folderUid"], r.inputs["name"]) for r in run.of_type("grafana:alerting/ruleGroup:RuleGroup")},
    )
    password_file = root / "grafana-password"
    password_file.write_text(PASSWORD + "\n")
    with ExitStack() as stack:
        urls = {
            "loki": stack.enter_context(serving(loki.answer)),
            "jaeger": stack.enter_context(serving(jaeger.answer)),
            "otlp_http": stack.enter_context(serving(collector.answer)),
            "grafana": stack.enter_context(serving(grafana.answer)),
            "prometheus": f"http://{local['prometheus']}",
            "alertmanager": f"http://{local['alertmanager']}",
        }
        receiver = stack.enter_context(receiving())
        processes = {"alertmanager": stack.enter_context(
            running_alertmanager(run, root, receiver, local["alertmanager"], deadline.remaining()))}
        # In its container node-exporter sees the host's root at /host; here it runs on the host.
        # Debian's build turns on the systemd collector, which the image leaves off.
        node_args = local_args(container_args(run, "node-exporter"), {"--path.rootfs": "/"})
        processes["node-exporter"] = stack.enter_context(running(
            "node-exporter",
            [binaries["prometheus-node-exporter"], *node_args, "--no-collector.systemd", f"--web.listen-address={local['node-exporter']}"],
            logs, lambda: answers(f"http://{local['node-exporter']}/metrics"), deadline.remaining()))
        files = write_files(container_files(run, "prometheus"), root)
        config = loopback_prometheus(files["/etc/prometheus/prometheus.yml"].read_text(), root, local)
        prometheus_args = local_args(container_args(run, "prometheus"), {
            "--config.file": str(config), "--storage.tsdb.path": str(root / "prometheus-data"), **PROMETHEUS_2_42_LACKS})
        processes["prometheus"] = stack.enter_context(running(
            "prometheus",
            [binaries["prometheus"], *prometheus_args, *PROMETHEUS_TEST_FLAGS, f"--web.listen-address={local['prometheus']}"],
            logs, lambda: answers(f"http://{local['prometheus']}/-/ready"), deadline.remaining()))
        yield Live(urls, loki, jaeger, collector, grafana, password_file, processes, local["node-exporter"], root, run)


def verified(argv: list[str], **kwargs) -> tuple[int, dict[str, tuple[str, str]], str]:
    """Run verify in this process: its exit code, each check's (status, detail) and its output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = verify.main(argv, **kwargs)
    lines = out.getvalue().splitlines()
    parsed = {}
    for line in lines:
        match = re.fullmatch(r"(ok  |FAIL) ([a-z-]+): (.*)", line)
        assert match, f"not a check line: {line!r}\n{out.getvalue()}"
        parsed[match[2]] = (match[1].strip(), match[3])
    assert list(parsed) == CHECKS, out.getvalue()
    return code, parsed, out.getvalue()


def only_failure(live: Live, argv: list[str], check: str, **kwargs) -> str:
    """Run verify; it must fail with exit 1 on `check` alone. The failure's detail."""
    code, results, output = verified(argv, **kwargs)
    failed = [name for name, (status, _) in results.items() if status == "FAIL"]
    assert (code, failed) == (1, [check]), f"{output}\n{live.logs()}"
    return results[check][1]


# --- tests --------------------------------------------------------------------------------------


def test_a_healthy_stack_passes_every_check(live):
    shipper = Shipper(live.loki)
    code, results, output = verified(live.argv(HEALTHY_TIMEOUT_S), emit=shipper.emit)
    assert code == 0 and all(status == "ok" for status, _ in results.values()), f"{output}\n{live.logs()}"
    assert results["prometheus-targets"][1] == "3 targets up", output
    # The marked line: valid JSON at warn, emitted by a container named after its marker.
    (name, line, seconds), = shipper.calls
    assert json.loads(line) == {"level": "warn", "msg": name} and name.startswith("verify-") and seconds > 0
    assert f"{name} in Loki" in results["logs-shipper"][1] and "detected_level=warn" in results["logs-shipper"][1]
    assert "detected_level=error" in results["logs-otlp"][1] and "service_name=verify" in results["logs-otlp"][1]
    # The Alertmanager datasource's plugin has no backend to run a health check: it must exist.
    assert results["grafana"][1] == "healthy; datasources jaeger, loki, prometheus pass their health checks; alertmanager exists"
    g = live.grafana
    assert results["grafana-content"][1] == (
        f"all exist: folders {len(g.folders)}, dashboards {len(g.dashboards)}, rule groups {len(g.rule_groups)}"), output
    assert results["watchdog"][1].startswith("Watchdog in Alertmanager"), output


def test_endpoints_and_the_password_come_from_the_stack_outputs(live):
    # The names the program exports (__main__.py: endpoints, grafana_admin_password), with the
    # addresses of this machine's stand-ins.
    published = {"prometheus": "prometheus", "alertmanager": "alertmanager", "loki": "loki", "jaeger": "jaeger",
                 "otel-collector-otlp-http": "otlp_http", "grafana": "grafana"}
    assert set(published) <= set(live.run.outputs["endpoints"]), live.run.outputs["endpoints"]
    assert live.run.outputs["grafana_admin_password"], "the program no longer exports the admin password"
    outputs = {"endpoints": {key: live.urls[name] for key, name in published.items()}, "grafana_admin_password": PASSWORD}
    asked = []

    def read_outputs(stack, deadline):
        asked.append(stack)
        return outputs

    code, results, output = verified(["--stack", "dev", "--timeout", str(HEALTHY_TIMEOUT_S)],
                                     emit=Shipper(live.loki).emit, read_outputs=read_outputs)
    assert (code, asked) == (0, ["dev"]), output


def test_flags_override_the_stack_outputs():
    # dev's published ports as the stack file sets them, and one flag.
    outputs = {"endpoints": {
        "prometheus": "http://127.0.0.1:9090", "alertmanager": "http://127.0.0.1:9093", "loki": "http://127.0.0.1:3100",
        "otel-collector-otlp-grpc": "http://127.0.0.1:4317", "otel-collector-otlp-http": "http://127.0.0.1:4318",
        "jaeger": "http://127.0.0.1:16686", "grafana": "http://127.0.0.1:3000"}}
    found = verify.endpoints({"loki": "http://127.0.0.1:13100/"}, outputs)
    assert found == {"prometheus": "http://127.0.0.1:9090", "alertmanager": "http://127.0.0.1:9093",
                     "loki": "http://127.0.0.1:13100", "otlp_http": "http://127.0.0.1:4318",
                     "jaeger": "http://127.0.0.1:16686", "grafana": "http://127.0.0.1:3000"}


def test_a_missing_dashboard_fails(live):
    missing = sorted(live.grafana.dashboards)[0]
    live.grafana.dashboards.discard(missing)
    try:
        detail = only_failure(live, live.argv(FAULT_TIMEOUT_S), "grafana-content", emit=Shipper(live.loki).emit)
    finally:
        live.grafana.dashboards.add(missing)
    assert detail == f"missing: dashboard {missing}"


def test_a_datasource_that_fails_its_health_check_fails(live):
    live.grafana.failing["loki"] = "Unable to connect with Loki. Please check the server logs for more details."
    try:
        detail = only_failure(live, live.argv(FAULT_TIMEOUT_S), "grafana", emit=Shipper(live.loki).emit)
    finally:
        live.grafana.failing.clear()
    assert detail == "datasource loki: 400 Unable to connect with Loki. Please check the server logs for more details."


def test_a_log_line_that_never_arrives_fails(live):
    detail = only_failure(live, live.argv(FAULT_TIMEOUT_S), "logs-shipper", emit=Shipper(live.loki, ships=False).emit)
    assert re.fullmatch(r"verify-[0-9a-f]{12} not in Loki after \d+s", detail), detail


def test_a_line_that_arrives_with_the_wrong_level_fails(live):
    live.collector.drop_severity = True
    try:
        detail = only_failure(live, live.argv(FAULT_TIMEOUT_S), "logs-otlp", emit=Shipper(live.loki).emit)
    finally:
        live.collector.drop_severity = False
    assert re.fullmatch(r"verify-[0-9a-f]{12} arrived \(service_name=verify\) with detected_level=unknown, expected error", detail), detail


def test_a_missing_trace_fails(live):
    live.collector.drop_spans = True
    try:
        detail = only_failure(live, live.argv(FAULT_TIMEOUT_S), "traces", emit=Shipper(live.loki).emit)
    finally:
        live.collector.drop_spans = False
    assert re.fullmatch(r"trace [0-9a-f]{32} not in Jaeger after \d+s", detail), detail


def test_an_alertmanager_without_the_watchdog_fails(live):
    # A second Alertmanager, ready, that no Prometheus sends to.
    address = f"127.0.0.1:{free_port()}"
    root = live.root / "lonely"
    with receiving() as receiver, running_alertmanager(live.run, root, receiver, address):
        detail = only_failure(live, live.argv(FAULT_TIMEOUT_S, alertmanager=f"http://{address}"), "watchdog",
                              emit=Shipper(live.loki).emit)
    assert re.fullmatch(r"the Watchdog alert has not reached Alertmanager after \d+s", detail), detail


def test_a_target_that_is_down_fails_and_is_named(live):
    # Last: node-exporter stays stopped.
    live.processes["node-exporter"].stop()

    def down():
        return any(t["health"] == "down" for t in api(live.urls["prometheus"], "/api/v1/targets")["data"]["activeTargets"])

    wait_for(down, "node-exporter to be down in Prometheus", 10, live.logs)
    detail = only_failure(live, live.argv(FAULT_TIMEOUT_S), "prometheus-targets", emit=Shipper(live.loki).emit)
    assert detail.startswith(f"1 of 3 targets not up: node-exporter {live.node_exporter} (down: "), detail


def test_an_alertmanager_cluster_needs_every_replica_as_a_peer():
    # prod runs three replicas; /api/v2/status lists the members the answering replica sees
    # (itself included), as Alertmanager's cluster status does.
    peers: list[str] = []

    def answer(method, path, headers, body):
        if path == "/-/ready":
            return 200, "OK"
        if path == "/api/v2/status":
            members = [{"name": name, "address": f"10.0.0.{i}:9094"} for i, name in enumerate(peers)]
            return 200, {"cluster": {"name": "a", "status": "ready", "peers": members}}
        return 404, {"message": "not found"}

    three = dataclasses.replace(verify.expected("dev"), alertmanager_replicas=3)
    with serving(answer) as url:
        def check() -> verify.Outcome:
            context = verify.Context("prod", {"alertmanager": url}, "", three, verify.Deadline(0.5), None, time.monotonic())
            return verify.check_alertmanager(context)

        peers[:] = ["a", "b"]
        assert check() == verify.Outcome(False, "cluster ready with 2 peers, expected ready with 3")
        peers[:] = ["a", "b", "c"]
        assert check() == verify.Outcome(True, "ready, cluster ready with 3 peers")


@pytest.mark.parametrize("argv, reason", [
    ([], "the following arguments are required: --stack"),
    (["--stack", "nope"], "no stack file stacks/Pulumi.nope.yaml"),
    (["--stack", "dev", "--timeout", "0"], "argument --timeout: 0 must be more than 0 and at most 3600 seconds"),
    (["--stack", "dev", "--timeout", "soon"], "argument --timeout: 'soon' is not a number of seconds"),
    (["--stack", "dev", "--prometheus", "127.0.0.1:9090"], "argument --prometheus: '127.0.0.1:9090' is not an http(s) URL"),
    (["--stack", "dev", "--grafana-password-file", "/nonexistent/password"],
     "argument --grafana-password-file: /nonexistent/password is not a readable file"),
    (["--stack", "dev", "--bogus"], "unrecognized arguments: --bogus"),
    # prod's collector decides on a trace after 10s: a shorter run could never see one.
    (["--stack", "prod", "--timeout", "10"],
     "--timeout 10 leaves no time after the collector's tail sampling decision_wait (10s)"),
])
def test_bad_arguments_exit_2_with_one_line(argv, reason, capsys):
    assert verify.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"python -m components.tools.verify: error: {reason}\n"


def test_without_pulumi_or_flags_the_run_stops_with_exit_2(capsys, monkeypatch):
    monkeypatch.delenv("GRAFANA_PASSWORD", raising=False)
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)

    def no_outputs(stack, deadline):
        raise verify.UsageError("`pulumi stack output` failed: no stack named 'dev' found")

    assert verify.main(["--stack", "dev", "--timeout", "5"], read_outputs=no_outputs) == 2
    assert capsys.readouterr().err == "python -m components.tools.verify: error: `pulumi stack output` failed: no stack named 'dev' found\n"


def test_the_emitters_run_a_container_that_prints_the_line_and_remove_it():
    calls = []

    def runner(argv, **kwargs):
        calls.append(argv)
        assert kwargs.get("timeout"), "every command is bounded in time"
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    line = '{"level":"warn","msg":"verify-0a1b2c3d4e5f"}'
    with verify.kubernetes_emitter("prod", "observability", "prom/prometheus:v3.14.0", runner)("verify-0a1b2c3d4e5f", line, 90):
        assert calls == [["kubectl", "--context", "prod", "-n", "observability", "run", "verify-0a1b2c3d4e5f",
                          "--restart=Never", "--image=prom/prometheus:v3.14.0", "--override-type=strategic",
                          f"--overrides={verify.restricted_pod('verify-0a1b2c3d4e5f')}", "--command", "--",
                          "/bin/sh", "-c", verify.EMIT_SCRIPT, line, "90"]]
        # The namespace enforces Pod Security's restricted level: the pod meets it, as the stack's own do.
        override = json.loads(verify.restricted_pod("verify-0a1b2c3d4e5f"))["spec"]
        assert override["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65534,
                                               "seccompProfile": {"type": "RuntimeDefault"}}
        assert override["containers"] == [{"name": "verify-0a1b2c3d4e5f", "securityContext": {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}}]
    assert calls[1] == ["kubectl", "--context", "prod", "-n", "observability", "delete", "pod", "verify-0a1b2c3d4e5f",
                        "--now", "--wait=false", "--ignore-not-found"]
    calls.clear()
    with verify.docker_emitter("unix:///var/run/docker.sock", "prom/prometheus:v3.14.0", runner)("verify-0a1b2c3d4e5f", line, 90):
        assert calls == [["docker", "-H", "unix:///var/run/docker.sock", "run", "-d", "--rm", "--name", "verify-0a1b2c3d4e5f",
                          "--entrypoint", "/bin/sh", "prom/prometheus:v3.14.0", "-c", verify.EMIT_SCRIPT, line, "90"]]
    assert calls[1] == ["docker", "-H", "unix:///var/run/docker.sock", "rm", "-f", "verify-0a1b2c3d4e5f"]
    # The script as a shell runs it: the line exactly as given, then the wait.
    done = subprocess.run(["/bin/sh", "-c", verify.EMIT_SCRIPT, line, "0"], capture_output=True, text=True, timeout=10)
    assert (done.returncode, done.stdout) == (0, line + "\n")


def test_otlp_requests_carry_the_collectors_token_and_a_refusal_says_how_to_give_it(tmp_path, monkeypatch):
    seen = []

    def collector(method, path, headers, body):
        seen.append(headers.get("Authorization"))
        if headers.get("Authorization") != "Bearer s3cr3t-t0ken":
            return 401, {"code": 16, "message": "missing or invalid bearer token"}
        return 200, {}

    token_file = tmp_path / "otlp-token"
    token_file.write_text("s3cr3t-t0ken\n")
    with serving(collector) as url:
        def context(argv):
            args = verify.parser().parse_args(["--stack", "dev", *argv])
            return verify.Context("dev", {"otlp_http": url}, "", None, verify.Deadline(10), None, 0.0,
                                  verify.otlp_headers(args))

        logs = {"resourceLogs": []}
        assert verify._send(context(["--otlp-token-file", str(token_file)]), "/v1/logs", logs, "log", "rejectedLogRecords") is None
        monkeypatch.setenv("OTLP_TOKEN", "s3cr3t-t0ken")
        assert verify._send(context([]), "/v1/logs", logs, "log", "rejectedLogRecords") is None
        monkeypatch.delenv("OTLP_TOKEN")
        refused = verify._send(context([]), "/v1/logs", logs, "log", "rejectedLogRecords")
    assert seen == ["Bearer s3cr3t-t0ken", "Bearer s3cr3t-t0ken", None]
    assert not refused.ok and refused.final
    assert "(401): the request carried no token, and it requires one (otel_collector.require_token): " \
           "pass --otlp-token-file or set OTLP_TOKEN" in refused.detail
