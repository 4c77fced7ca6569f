"""A real Alertmanager (Debian's binary) with prod's rendered configuration, on 127.0.0.1: alerts
posted to it are routed and inhibited as the stack intends, and reach stand-in receivers."""

import json
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from conftest import SECRETS, container_files, inline_webhook_url_files, merge, relocate, require_tool, run_program, stack_config, write_files

DEADLINE_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver(ThreadingHTTPServer):
    """Stands in for Slack and PagerDuty: records every notification posted to it, by path."""

    def __init__(self):
        self.received: list[tuple[str, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append((self.path, json.loads(body or b"{}")))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true, "status": "success"}')

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def wait_for(condition, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def api(base: str, path: str, body=None):
    request = urllib.request.Request(
        base + path, data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read()
    return json.loads(text) if text else None


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    binary = require_tool("prometheus-alertmanager")
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    # Prod's configuration; only the waits are shortened, through the stack's own settings.
    fast = {"alertmanager": {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}}
    secrets = {**SECRETS, "slack_webhook_url": f"{receiver.url}/slack", "watchdog_url": f"{receiver.url}/watchdog"}
    run = run_program("prod", merge(stack_config("prod"), fast), secrets)
    root = tmp_path_factory.mktemp("alertmanager")
    files = write_files(container_files(run, "alertmanager"), root)
    config = yaml.safe_load(relocate(files["/etc/alertmanager/alertmanager.yml"].read_text(), root, ("/etc/alertmanager", "/run/secrets")))
    # PagerDuty's events endpoint, pointed at loopback as well.
    config["global"]["pagerduty_url"] = f"{receiver.url}/pagerduty"
    path = root / "alertmanager-live.yml"
    path.write_text(yaml.safe_dump(config))
    inline_webhook_url_files(path)
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--config.file={path}", f"--storage.path={root / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        def ready():
            try:
                return urllib.request.urlopen(f"{base}/-/ready", timeout=1).status == 200
            except OSError:
                return False

        wait_for(ready, "Alertmanager to be ready")
        yield base, receiver
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        receiver.shutdown()
        receiver.server_close()


def alert(name, severity, **labels):
    return {"labels": {"alertname": name, "severity": severity, **labels},
            "annotations": {"summary": f"{name} test", "description": "posted by the test"}}


def state_of(base, name, severity):
    alerts = api(base, f"/api/v2/alerts?filter=alertname%3D%22{name}%22")
    return {a["labels"]["severity"]: a["status"] for a in alerts}.get(severity)


def test_routing_and_inhibition_with_a_real_alertmanager(alertmanager):
    base, receiver = alertmanager
    started = time.monotonic()
    api(base, "/api/v2/alerts", [
        alert("HostDiskSpaceLow", "critical", instance="n1", job="node-exporter"),
        alert("HostDiskSpaceLow", "warning", instance="n1", job="node-exporter"),
        # Another instance: its warning is not silenced by n1's critical.
        alert("HostDiskSpaceLow", "warning", instance="n2", job="node-exporter"),
        # A target down silences everything else its job says.
        alert("ServiceDown", "critical", instance="api:8000", job="api"),
        alert("HttpLatencyP95High", "warning", instance="api:8000", job="api"),
        alert("Watchdog", "info"),
    ])

    def delivered():
        return {path for path, _ in receiver.received} >= {"/slack", "/pagerduty", "/watchdog"} and receiver.received

    wait_for(delivered, "notifications")
    time.sleep(3)  # later groups (warnings) have had their 1s group_wait several times over

    warning_n1 = [a for a in api(base, "/api/v2/alerts?filter=alertname%3D%22HostDiskSpaceLow%22")
                  if a["labels"]["severity"] == "warning" and a["labels"]["instance"] == "n1"][0]
    assert warning_n1["status"]["state"] == "suppressed" and warning_n1["status"]["inhibitedBy"]
    assert state_of(base, "HttpLatencyP95High", "warning")["state"] == "suppressed"
    assert state_of(base, "HostDiskSpaceLow", "critical")["state"] == "active"

    slack = [body for path, body in receiver.received if path == "/slack"]
    pagerduty = [body for path, body in receiver.received if path == "/pagerduty"]
    text = json.dumps(slack)
    # Critical alerts: paged, and posted to the critical channel.
    assert any(body.get("channel") == "#prod-alerts-critical" for body in slack)
    assert any(body.get("routing_key") == SECRETS["pagerduty_routing_key"] for body in pagerduty)
    # The uninhibited warning reaches the warning channel; the inhibited ones and the Watchdog do not.
    assert any(body.get("channel") == "#prod-alerts" for body in slack)
    assert "HttpLatencyP95High" not in text
    assert "Watchdog" not in text and "Watchdog" not in json.dumps(pagerduty)
    # The Watchdog reaches the dead man's switch, and nothing else does.
    watchdog = [body for path, body in receiver.received if path == "/watchdog"]
    assert {a["labels"]["alertname"] for body in watchdog for a in body["alerts"]} == {"Watchdog"}
    warnings = [body for body in slack if body.get("channel") == "#prod-alerts"]
    assert all("n1" not in json.dumps(body) for body in warnings), "n1's warning was delivered despite its critical"
    assert time.monotonic() - started < DEADLINE_S
