"""Prove a deployed stack works end to end, after `pulumi up`:

    python -m components.tools.verify --stack dev
    python -m components.tools.verify --stack prod --prometheus http://127.0.0.1:9090 ...   # port-forwards

What the stack should contain (Grafana folders, datasources, dashboards and rule groups, the number
of Alertmanager replicas, the collector's tail sampling wait) is learnt offline, by running the
program for the stack under the mock engine of components/tools/render.py. Where the services are comes
from `pulumi stack output`, or from flags. Each check prints one line, "ok   <check>: ..." or
"FAIL <check>: ..."; the exit code is 0 when every check passes, 1 when one fails and 2 for bad
arguments or a stack that cannot be read. docs/verify.md is the reference.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Optional

from components import yaml_text
from components.services import otel_collector
from components.tools import render
from components import settings as settings_module

PROG = "python -m components.tools.verify"
DEFAULT_TIMEOUT_S = 120.0
# No single request may take longer than this, nor outlast the run's deadline.
REQUEST_TIMEOUT_S = 10.0
POLL_S = 1.0
# Loki is asked for lines from this long before the marker was sent: clocks differ.
CLOCK_SKEW_S = 300

# Which stack output endpoint each flag overrides (stack.endpoints(): keyed by service, or by
# service and port where a service publishes several).
ENDPOINTS = {
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
    "loki": "loki",
    "otlp_http": "otel-collector-otlp-http",
    "jaeger": "jaeger",
    "grafana": "grafana",
}
# Grafana runs no backend for these datasource plugins, so its health API cannot answer for them
# (the alertmanager plugin.json declares no backend); the verifier only asks that they exist.
FRONTEND_ONLY_DATASOURCES = {"alertmanager"}
# Prints the marked line, then stays up until it is removed (at most its second argument, in
# seconds): a shipper discovers containers and pods only every so often (Alloy's docker discovery
# once a minute) and drops pods that have finished, so a container that exits at once is missed.
EMIT_SCRIPT = 'echo "$0"; exec sleep "$1"'

# emit(name, line, seconds): show `line` on the output of a container called `name` on the stack's
# platform, for as long as the context lasts (and never longer than `seconds`).
Emitter = Callable[[str, str, float], ContextManager[None]]


class UsageError(Exception):
    """Bad arguments, or a stack that cannot be read: exit code 2."""


class RequestFailed(Exception):
    """A request that got no HTTP answer (refused, timed out, name not found), or not the one
    the check needs."""


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())


@dataclass(frozen=True)
class Expected:
    """What the program deploys for the stack, as the mock engine records it."""

    platform: str
    folders: tuple[str, ...]
    datasources: tuple[tuple[str, str], ...]  # (uid, type)
    dashboards: tuple[str, ...]
    rule_groups: tuple[tuple[str, str], ...]  # (folder uid, group name)
    alertmanager_replicas: int
    decision_wait_s: float  # 0 when the collector keeps every trace
    image: str  # Prometheus's image: busybox based, so it has /bin/sh, echo and sleep
    docker_host: str
    kube_context: Optional[str]
    namespace: str
    grafana_user: str


def _replicas(run: render.Run, service: str) -> int:
    containers = [r for r in run.of_type("docker:index/container:Container") if r.name == service]
    if containers:
        return len(containers)
    return int(render.controller(run, service).inputs["spec"].get("replicas", 1))


def _image(run: render.Run, service: str) -> str:
    pulled = [r for r in run.of_type("docker:index/remoteImage:RemoteImage") if r.name == f"{service}-image"]
    if pulled:
        return pulled[0].inputs["name"]
    return render.controller(run, service).inputs["spec"]["template"]["spec"]["containers"][0]["image"]


def _decision_wait_s(run: render.Run) -> float:
    # The collector samples itself, or (scaled out) its sampler tier does.
    sampler = otel_collector.sampler_name()
    service = sampler if sampler in run.outputs.get("services", []) else otel_collector.NAME
    config = yaml_text.load(render.container_files(run, service)[otel_collector.CONFIG])
    wait = (config.get("processors") or {}).get("tail_sampling", {}).get("decision_wait")
    return settings_module.milliseconds(wait) / 1000 if wait else 0.0


@lru_cache(maxsize=None)
def expected(stack: str) -> Expected:
    """Run the program for `stack` with placeholder secrets, as `components.tools.render` does."""
    values = render.stack_config(stack)
    config = {k: v for k, v in values.items() if k != "secrets"}
    placeholders = render.placeholder_secrets(stack, values)
    try:
        settings = settings_module.parse(stack, {**config, "secrets": placeholders}, {"secrets"})
        run = render.run_program(stack, config, placeholders)
    except Exception as error:  # the program's own ConfigError, or anything it raised
        raise UsageError(f"cannot evaluate stack {stack!r}: {' '.join(str(error).split())}") from None
    return Expected(
        platform=settings.platform,
        folders=tuple(sorted(r.inputs["uid"] for r in run.of_type("grafana:oss/folder:Folder"))),
        datasources=tuple(sorted((r.inputs["uid"], r.inputs["type"]) for r in run.of_type("grafana:oss/dataSource:DataSource"))),
        dashboards=tuple(sorted(json.loads(r.inputs["configJson"])["uid"] for r in run.of_type("grafana:oss/dashboard:Dashboard"))),
        rule_groups=tuple(sorted((r.inputs["folderUid"], r.inputs["name"]) for r in run.of_type("grafana:alerting/ruleGroup:RuleGroup"))),
        alertmanager_replicas=_replicas(run, "alertmanager"),
        decision_wait_s=_decision_wait_s(run),
        image=_image(run, "prometheus"),
        docker_host=settings.docker.host,
        kube_context=settings.kubernetes.context,
        namespace=settings.kubernetes.namespace,
        grafana_user=settings.grafana.admin_user,
    )


# --- where the services are ----------------------------------------------------------------------


def stack_outputs(stack: str, deadline: Deadline) -> dict:
    """`pulumi stack output --json --show-secrets` of the stack, run from the project folder."""
    command = ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack]
    try:
        done = subprocess.run(command, cwd=render.ROOT, capture_output=True, text=True,
                              timeout=max(1.0, min(60.0, deadline.remaining())))
    except FileNotFoundError:
        raise UsageError("the pulumi CLI is not installed; pass every endpoint and the Grafana credentials as flags") from None
    except subprocess.TimeoutExpired:
        raise UsageError("`pulumi stack output` did not answer in time") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UsageError(f"`{' '.join(command)}` failed: {last}")
    return json.loads(done.stdout or "{}")


def endpoints(flags: dict[str, Optional[str]], outputs: Optional[dict]) -> dict[str, str]:
    """Every endpoint: the flag where one is given, else the stack output's."""
    published = (outputs or {}).get("endpoints") or {}
    found = {}
    for name, key in ENDPOINTS.items():
        url = flags.get(name) or published.get(key)
        if not url:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"no endpoint for {name}: the stack outputs have no {key!r}; pass {flag} URL")
        found[name] = url.rstrip("/")
    return found


def grafana_auth(args: argparse.Namespace, outputs: Optional[dict], user: str) -> str:
    """The Authorization header for Grafana: a password (flag file, GRAFANA_PASSWORD, the stack
    output) as basic auth for `user`, or a token (GRAFANA_TOKEN) as a bearer."""
    password = None
    if args.grafana_password_file is not None:
        password = args.grafana_password_file.read_text().strip()
    elif os.environ.get("GRAFANA_TOKEN"):
        return f"Bearer {os.environ['GRAFANA_TOKEN']}"
    elif os.environ.get("GRAFANA_PASSWORD"):
        password = os.environ["GRAFANA_PASSWORD"]
    elif outputs is not None and outputs.get("grafana_admin_password"):
        password = str(outputs["grafana_admin_password"])
    if password is None:
        raise UsageError("no Grafana credentials: pass --grafana-password-file, or set GRAFANA_PASSWORD, "
                         "or GRAFANA_TOKEN (an external Grafana has no admin password in the outputs)")
    return "Basic " + base64.b64encode(f"{args.grafana_user or user}:{password}".encode()).decode()


# --- HTTP ----------------------------------------------------------------------------------------


def call(method: str, url: str, deadline: Deadline, body: Any = None, headers: Optional[dict] = None) -> tuple[int, Any]:
    """One request, bounded by REQUEST_TIMEOUT_S and the run's deadline: (status, decoded JSON or
    text). Raises RequestFailed when no HTTP answer comes back."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Accept": "application/json", **({"Content-Type": "application/json"} if data else {}), **(headers or {})})
    timeout = max(0.5, min(REQUEST_TIMEOUT_S, deadline.remaining()))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        host = urllib.parse.urlsplit(url).hostname or ""
        hint = " (an address inside the cluster: point the flag at a port-forward)" if host.endswith(".svc") else ""
        raise RequestFailed(f"no answer from {method} {url}: {reason}{hint}") from None
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text.decode(errors="replace")


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


# --- checks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str
    # A failure that waiting cannot change (a line that came back with the wrong level, a
    # dashboard that is not there): the check stops polling.
    final: bool = False


def poll(attempt: Callable[[], Outcome], deadline: Deadline) -> Outcome:
    """Try until the attempt passes, fails for good or the deadline comes; the last outcome."""
    while True:
        try:
            outcome = attempt()
        except RequestFailed as error:
            outcome = Outcome(False, str(error))
        if outcome.ok or outcome.final or deadline.remaining() <= POLL_S:
            return outcome
        time.sleep(POLL_S)


@dataclass
class Context:
    stack: str
    urls: dict[str, str]
    auth: str
    expected: Expected
    deadline: Deadline
    emit: Emitter
    started: float
    # What every OTLP request carries: the collector's token, where the stack requires one.
    otlp_headers: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, path: str, **kwargs) -> tuple[int, Any]:
        return call("GET", self.urls[name] + path, self.deadline, **kwargs)

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.0f}s"


def _ok_json(status: int, body: Any, what: str) -> Any:
    if status != 200:
        raise RequestFailed(f"{what} answered {status}: {_short(body)}")
    return body


def check_targets(ctx: Context) -> Outcome:
    def attempt() -> Outcome:
        body = _ok_json(*ctx.get("prometheus", "/api/v1/targets"), "Prometheus /api/v1/targets")
        active = body["data"]["activeTargets"]
        if not active:
            return Outcome(False, "Prometheus has no active targets")
        bad = [t for t in active if t["health"] != "up"]
        if bad:
            named = ", ".join(
                f"{t['labels'].get('job', '?')} {t['labels'].get('instance', t.get('scrapeUrl', '?'))} "
                f"({t['health']}{': ' + t['lastError'] if t.get('lastError') else ''})" for t in bad)
            return Outcome(False, f"{len(bad)} of {len(active)} targets not up: {named}")
        return Outcome(True, f"{len(active)} targets up")

    return poll(attempt, ctx.deadline)


def check_rules(ctx: Context) -> Outcome:
    def attempt() -> Outcome:
        body = _ok_json(*ctx.get("prometheus", "/api/v1/rules"), "Prometheus /api/v1/rules")
        groups = body["data"]["groups"]
        rules = [(g["name"], r) for g in groups for r in g["rules"]]
        if not rules:
            return Outcome(False, "Prometheus has loaded no rules")
        failing = [f"{group}/{r['name']}: {r.get('lastError') or r['health']}"
                   for group, r in rules if r["health"] == "err" or r.get("lastError")]
        if failing:
            return Outcome(False, f"{len(failing)} rules failing: {'; '.join(failing)}")
        # Until its group's first evaluation a rule's health is "unknown".
        waiting = [f"{group}/{r['name']}" for group, r in rules if r["health"] != "ok"]
        if waiting:
            return Outcome(False, f"{len(waiting)} rules not evaluated yet: {', '.join(waiting[:5])}")
        return Outcome(True, f"{len(groups)} groups, {len(rules)} rules evaluated, none failing")

    return poll(attempt, ctx.deadline)


def check_alertmanager(ctx: Context) -> Outcome:
    replicas = ctx.expected.alertmanager_replicas

    def attempt() -> Outcome:
        status, body = ctx.get("alertmanager", "/-/ready")
        if status != 200:
            return Outcome(False, f"/-/ready answered {status}: {_short(body)}")
        if replicas == 1:
            return Outcome(True, "ready")
        cluster = _ok_json(*ctx.get("alertmanager", "/api/v2/status"), "Alertmanager /api/v2/status")["cluster"]
        peers = cluster.get("peers") or []
        if cluster.get("status") != "ready" or len(peers) != replicas:
            return Outcome(False, f"cluster {cluster.get('status')} with {len(peers)} peers, expected ready with {replicas}")
        return Outcome(True, f"ready, cluster ready with {len(peers)} peers")

    return poll(attempt, ctx.deadline)


def _loki_line(ctx: Context, marker: str, since_ns: int) -> Optional[dict]:
    """The labels of the stream that holds the line with `marker`, or None."""
    query = {
        "query": f'{{service_name=~".+"}} |= "{marker}"',
        "start": str(since_ns - CLOCK_SKEW_S * 10**9),
        "end": str(time.time_ns() + CLOCK_SKEW_S * 10**9),
        "limit": "10",
        "direction": "backward",
    }
    body = _ok_json(*ctx.get("loki", "/loki/api/v1/query_range?" + urllib.parse.urlencode(query)),
                    "Loki /loki/api/v1/query_range")
    for stream in body["data"]["result"]:
        if any(marker in line for _, line in stream["values"]):
            return stream["stream"]
    return None


def _await_line(ctx: Context, marker: str, level: str, since_ns: int) -> Outcome:
    def attempt() -> Outcome:
        labels = _loki_line(ctx, marker, since_ns)
        if labels is None:
            return Outcome(False, f"{marker} not in Loki after {ctx.elapsed()}")
        found = labels.get("detected_level")
        where = f"service_name={labels.get('service_name')}"
        if found != level:
            seen = f"detected_level={found}" if found else "no detected_level"
            return Outcome(False, f"{marker} arrived ({where}) with {seen}, expected {level}", final=True)
        return Outcome(True, f"{marker} in Loki ({where}, detected_level={found})")

    return poll(attempt, ctx.deadline)


def _failure(error: Exception) -> str:
    """One line about a failed command or call."""
    if isinstance(error, subprocess.CalledProcessError):
        output = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else (error.stderr or "")
        return f"`{' '.join(map(str, error.cmd[:3]))} ...` exited {error.returncode}: {_short(output or '(no output)')}"
    return _short(f"{type(error).__name__}: {error}")


def marker() -> str:
    return f"verify-{secrets.token_hex(6)}"


def check_shipped_logs(ctx: Context) -> Outcome:
    mark = marker()
    line = json.dumps({"level": "warn", "msg": mark}, separators=(",", ":"))
    since = time.time_ns()
    with ExitStack() as cleanup:
        try:
            # The container outlives the run's deadline a little, in case removing it fails.
            cleanup.enter_context(ctx.emit(mark, line, ctx.deadline.remaining() + 30))
        except Exception as error:
            return Outcome(False, f"cannot emit the log line: {_failure(error)}")
        return _await_line(ctx, mark, "warn", since)


def _send(ctx: Context, path: str, payload: dict, what: str, rejected: str) -> Optional[Outcome]:
    """POST one OTLP/HTTP JSON export to the collector, retried while it does not answer (it may
    be starting); None once it took it, else the failure."""

    def attempt() -> Outcome:
        status, body = call("POST", ctx.urls["otlp_http"] + path, ctx.deadline, body=payload, headers=ctx.otlp_headers)
        refused = int(((body.get("partialSuccess") or {}).get(rejected) or 0)) if isinstance(body, dict) else 0
        if status == 200 and not refused:
            return Outcome(True, "")
        if status == 401:
            hint = "a token it refuses" if ctx.otlp_headers else "no token, and it requires one"
            return Outcome(False, f"the collector refused the {what} (401): the request carried {hint} "
                                  "(otel_collector.require_token): pass --otlp-token-file or set OTLP_TOKEN", final=True)
        # A 4xx other than 429 (the collector shedding load), or a partial rejection, says the
        # export itself is wrong: sending it again cannot help.
        wrong = status == 200 or (400 <= status < 500 and status != 429)
        return Outcome(False, f"the collector refused the {what} ({status}): {_short(body)}", final=wrong)

    outcome = poll(attempt, ctx.deadline)
    return None if outcome.ok else outcome


def _resource(service: str) -> dict:
    return {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}


def check_otlp_logs(ctx: Context) -> Outcome:
    mark = marker()
    now = time.time_ns()
    record = {
        "timeUnixNano": str(now), "observedTimeUnixNano": str(now),
        "severityNumber": 17, "severityText": "ERROR", "body": {"stringValue": mark},
    }
    payload = {"resourceLogs": [{
        "resource": _resource("verify"),
        "scopeLogs": [{"scope": {"name": "components.tools.verify"}, "logRecords": [record]}],
    }]}
    failed = _send(ctx, "/v1/logs", payload, "log record", "rejectedLogRecords")
    return failed or _await_line(ctx, mark, "error", now)


def check_traces(ctx: Context) -> Outcome:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    now = time.time_ns()
    span = {
        "traceId": trace_id, "spanId": span_id, "name": "verify", "kind": 1,
        "startTimeUnixNano": str(now - 10**6), "endTimeUnixNano": str(now),
        # An error trace: every stack's tail sampling keeps those.
        "status": {"code": 2, "message": "verify: a deliberate error"},
    }
    payload = {"resourceSpans": [{
        "resource": _resource("verify"),
        "scopeSpans": [{"scope": {"name": "components.tools.verify"}, "spans": [span]}],
    }]}
    failed = _send(ctx, "/v1/traces", payload, "span", "rejectedSpans")
    if failed:
        return failed
    wait = ctx.expected.decision_wait_s
    sampling = f" (tail sampling decides after {wait:g}s)" if wait else ""

    def attempt() -> Outcome:
        status, body = ctx.get("jaeger", f"/api/traces/{trace_id}")
        if status == 404:
            return Outcome(False, f"trace {trace_id} not in Jaeger after {ctx.elapsed()}{sampling}")
        traces = _ok_json(status, body, "Jaeger /api/traces")["data"] or []
        if not any(int(t.get("traceID", "0"), 16) == int(trace_id, 16) for t in traces):
            return Outcome(False, f"trace {trace_id} not in Jaeger's answer: {_short(body)}")
        return Outcome(True, f"trace {trace_id} in Jaeger")

    return poll(attempt, ctx.deadline)


def check_grafana(ctx: Context) -> Outcome:
    headers = {"Authorization": ctx.auth}

    def attempt() -> Outcome:
        status, body = ctx.get("grafana", "/api/health")
        if status != 200:
            return Outcome(False, f"/api/health answered {status}: {_short(body)}")
        problems, healthy, present = [], [], []
        for uid, kind in ctx.expected.datasources:
            if kind in FRONTEND_ONLY_DATASOURCES:
                status, body = ctx.get("grafana", f"/api/datasources/uid/{uid}", headers=headers)
                if status != 200:
                    problems.append(f"datasource {uid}: {status} {_short(body, 100)}")
                else:
                    present.append(uid)
                continue
            status, body = ctx.get("grafana", f"/api/datasources/uid/{uid}/health", headers=headers)
            if status != 200 or not isinstance(body, dict) or body.get("status") != "OK":
                message = body.get("message") if isinstance(body, dict) else body
                problems.append(f"datasource {uid}: {status} {_short(message, 150)}")
            else:
                healthy.append(uid)
        if problems:
            return Outcome(False, "; ".join(problems))
        exists = f"; {', '.join(present)} exists" if present else ""
        return Outcome(True, f"healthy; datasources {', '.join(healthy)} pass their health checks{exists}")

    return poll(attempt, ctx.deadline)


def check_grafana_content(ctx: Context) -> Outcome:
    headers = {"Authorization": ctx.auth}
    e = ctx.expected
    wanted = (
        [(f"folder {uid}", f"/api/folders/{uid}") for uid in e.folders]
        + [(f"dashboard {uid}", f"/api/dashboards/uid/{uid}") for uid in e.dashboards]
        + [(f"rule group {folder}/{group}", f"/api/v1/provisioning/folder/{folder}/rule-groups/{urllib.parse.quote(group)}")
           for folder, group in e.rule_groups]
    )

    def attempt() -> Outcome:
        missing, other = [], []
        for what, path in wanted:
            status, body = ctx.get("grafana", path, headers=headers)
            if status == 404:
                missing.append(what)
            elif status != 200:
                other.append(f"{what}: {status} {_short(body, 100)}")
        if other:  # authentication, a server error: may pass on a later try
            return Outcome(False, "; ".join(other + [f"{m}: missing" for m in missing]))
        if missing:
            return Outcome(False, "missing: " + ", ".join(missing), final=True)
        return Outcome(True, f"all exist: folders {len(e.folders)}, dashboards {len(e.dashboards)}, rule groups {len(e.rule_groups)}")

    return poll(attempt, ctx.deadline)


def check_watchdog(ctx: Context) -> Outcome:
    query = urllib.parse.urlencode({"filter": 'alertname="Watchdog"'})

    def attempt() -> Outcome:
        alerts = _ok_json(*ctx.get("alertmanager", f"/api/v2/alerts?{query}"), "Alertmanager /api/v2/alerts")
        if not alerts:
            return Outcome(False, f"the Watchdog alert has not reached Alertmanager after {ctx.elapsed()}")
        states = sorted({a.get("status", {}).get("state", "?") for a in alerts})
        return Outcome(True, f"Watchdog in Alertmanager ({', '.join(states)})")

    return poll(attempt, ctx.deadline)


CHECKS: list[tuple[str, Callable[[Context], Outcome]]] = [
    ("prometheus-targets", check_targets),
    ("prometheus-rules", check_rules),
    ("alertmanager", check_alertmanager),
    ("logs-shipper", check_shipped_logs),
    ("logs-otlp", check_otlp_logs),
    ("traces", check_traces),
    ("grafana", check_grafana),
    ("grafana-content", check_grafana_content),
    ("watchdog", check_watchdog),
]


def _guarded(check: Callable[[Context], Outcome], ctx: Context) -> Outcome:
    try:
        return check(ctx)
    except Exception as error:  # an answer of an unexpected shape: say so, on one line
        return Outcome(False, f"{type(error).__name__}: {_short(str(error))}")


# --- emitting a log line on the platform ---------------------------------------------------------


Runner = Callable[..., subprocess.CompletedProcess]


def docker_emitter(host: str, image: str, runner: Runner = subprocess.run) -> Emitter:
    @contextmanager
    def emit(name: str, line: str, seconds: float) -> Iterator[None]:
        docker = ["docker", "-H", host]
        runner([*docker, "run", "-d", "--rm", "--name", name, "--entrypoint", "/bin/sh", image,
                "-c", EMIT_SCRIPT, line, str(int(seconds))], check=True, capture_output=True, timeout=min(60.0, seconds))
        try:
            yield
        finally:
            runner([*docker, "rm", "-f", name], capture_output=True, timeout=30)

    return emit


def restricted_pod(name: str) -> str:
    """kubectl run's override for a pod the namespace's Pod Security level (restricted) admits:
    as nobody, no token, no escalation, no capabilities, the runtime's seccomp profile."""
    return json.dumps({"apiVersion": "v1", "spec": {
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": name, "securityContext": {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}}],
    }}, separators=(",", ":"))


def kubernetes_emitter(context: Optional[str], namespace: str, image: str, runner: Runner = subprocess.run) -> Emitter:
    @contextmanager
    def emit(name: str, line: str, seconds: float) -> Iterator[None]:
        kubectl = ["kubectl", *(["--context", context] if context else []), "-n", namespace]
        runner([*kubectl, "run", name, "--restart=Never", f"--image={image}",
                "--override-type=strategic", f"--overrides={restricted_pod(name)}", "--command", "--",
                "/bin/sh", "-c", EMIT_SCRIPT, line, str(int(seconds))], check=True, capture_output=True, timeout=min(60.0, seconds))
        try:
            yield
        finally:
            runner([*kubectl, "delete", "pod", name, "--now", "--wait=false", "--ignore-not-found"],
                   capture_output=True, timeout=30)

    return emit


def platform_emitter(e: Expected) -> Emitter:
    if e.platform == "kubernetes":
        return kubernetes_emitter(e.kube_context, e.namespace, e.image)
    return docker_emitter(e.docker_host, e.image)


# --- command line --------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line, not argparse's usage block: CI logs show the reason at a glance.
        self.exit(2, f"{self.prog}: error: {message}\n")


def _url(value: str) -> str:
    if urllib.parse.urlsplit(value).scheme not in ("http", "https") or not urllib.parse.urlsplit(value).netloc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an http(s) URL")
    return value


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError(f"{value} must be more than 0 and at most 3600 seconds")
    return seconds


def _readable(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value} is not a readable file")
    return path


def parser() -> Parser:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--stack", required=True, help="the stack: a file stacks/Pulumi.<stack>.yaml")
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, help="seconds for the whole run (default 120)")
    for name in ENDPOINTS:
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, dest=name, type=_url, help=f"URL of {name}, instead of the stack output's")
    p.add_argument("--grafana-user", help="Grafana user for basic auth (default: the stack's grafana.admin_user)")
    p.add_argument("--grafana-password-file", type=_readable, help="file holding the Grafana password")
    p.add_argument("--otlp-token-file", type=_readable,
                   help="file holding the collector's token (otel_collector.require_token); or set OTLP_TOKEN")
    return p


def otlp_headers(args: argparse.Namespace) -> dict[str, str]:
    """The Authorization header OTLP requests carry: the token file's, or OTLP_TOKEN's, if any."""
    token = args.otlp_token_file.read_text().strip() if args.otlp_token_file else os.environ.get("OTLP_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def main(argv: Optional[list[str]] = None, emit: Optional[Emitter] = None,
         read_outputs: Callable[[str, Deadline], dict] = stack_outputs) -> int:
    started = time.monotonic()
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    deadline = Deadline(args.timeout)
    try:
        if args.stack not in render.stack_names():
            raise UsageError(f"no stack file stacks/Pulumi.{args.stack}.yaml")
        e = expected(args.stack)
        if args.timeout <= e.decision_wait_s:
            raise UsageError(f"--timeout {args.timeout:g} leaves no time after the collector's tail sampling "
                             f"decision_wait ({e.decision_wait_s:g}s)")
        flags = {name: getattr(args, name) for name in ENDPOINTS}
        credentials = args.grafana_password_file or os.environ.get("GRAFANA_TOKEN") or os.environ.get("GRAFANA_PASSWORD")
        # The Pulumi CLI only when a flag leaves something to look up.
        outputs = None if all(flags.values()) and credentials else read_outputs(args.stack, deadline)
        urls = endpoints(flags, outputs)
        auth = grafana_auth(args, outputs, e.grafana_user)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2

    ctx = Context(args.stack, urls, auth, e, deadline, emit or platform_emitter(e), started, otlp_headers(args))
    failed = 0
    # Every check runs at once, each polling until it passes or the deadline comes, so a check
    # that waits for a log line does not eat the others' time. Lines print in a fixed order.
    with ThreadPoolExecutor(max_workers=len(CHECKS)) as pool:
        futures = [(name, pool.submit(_guarded, check, ctx)) for name, check in CHECKS]
        for name, future in futures:
            outcome = future.result()
            failed += not outcome.ok
            print(f"{'ok  ' if outcome.ok else 'FAIL'} {name}: {_short(outcome.detail, 600)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
