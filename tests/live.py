"""Helpers for the live tests: real binaries (Debian's Prometheus, Alertmanager, node-exporter) on
127.0.0.1, a stand-in for Slack, PagerDuty and the dead man's switch, and polling with a deadline.

Every server binds 127.0.0.1 only; nothing leaves the machine. Every process runs inside
`running()`, which stops and reaps it however the test ends, and keeps its output in a log file
whose tail goes into the test's failure messages.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, Optional

import yaml

from conftest import Run, container_files, inline_webhook_url_files, relocate, require_tool, write_files

POLL_S = 0.2


# Below Linux's ephemeral range (32768-60999 by default), from which the kernel takes the port
# of every outgoing connection and of every bind to port 0: a port chosen there could be taken by
# a client of another test before the server started here binds it ("address already in use").
PORTS = range(20000, 32000)


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now, outside the kernel's ephemeral range."""
    for port in random.sample(PORTS, 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


class Receiver(ThreadingHTTPServer):
    """Stands in for Slack, PagerDuty and the dead man's switch: records every notification
    posted to it, by path, and answers as they do."""

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

    def bodies(self, path: str) -> list[dict]:
        """What was posted to `path`, in order."""
        return [body for p, body in list(self.received) if p == path]


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A Receiver serving in a thread, shut down at the end."""
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()


class Deadline:
    """One time budget for a whole module: every wait takes what is left of it."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())


def wait_for(condition: Callable, what: str, timeout: float = 20, details: Callable[[], str] = lambda: ""):
    """Poll `condition` until it returns something true, and return that. A connection error
    counts as not yet (the server may still be starting); on timeout, say what was awaited, the
    last error and `details()` (the processes' output)."""
    deadline = time.monotonic() + timeout
    error: Optional[OSError] = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except OSError as e:
            error = e
        if time.monotonic() >= deadline:
            last = f" (last error: {error})" if error else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{last}\n{details()}")
        time.sleep(POLL_S)


def api(base: str, path: str, body=None):
    """GET (or POST `body` as JSON) and return the decoded JSON answer."""
    request = urllib.request.Request(
        base + path, data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read()
    return json.loads(text) if text else None


class Process:
    """A binary started by `running()`, its output in `log`."""

    def __init__(self, name: str, args: list[str], log: Path):
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        state = "running" if self.popen.poll() is None else f"exited {self.popen.returncode}"
        return f"--- {self.name} ({state}), last lines of {self.log}:\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate and reap; kill if it does not stop in time."""
        if self.popen.poll() is None:
            self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def answers(url: str) -> bool:
    """True once `url` answers 200 (/-/ready of Prometheus and Alertmanager, an exporter's /metrics)."""
    with urllib.request.urlopen(url, timeout=1) as response:
        return response.status == 200


def am_alerts(base: str, alertname: str) -> list[dict]:
    """Alertmanager's alerts of one name, with their status (active, suppressed and why)."""
    return api(base, f"/api/v2/alerts?filter=alertname%3D%22{alertname}%22")


@contextmanager
def running(name: str, args: list[str], logs: Path, is_ready: Callable[[], bool], timeout: float = 20) -> Iterator[Process]:
    """Start `args`, wait until `is_ready()`, yield the process; stop and reap it at the end, even
    when starting it or the test fails."""
    logs.mkdir(parents=True, exist_ok=True)
    process = Process(name, args, logs / f"{name}.log")
    try:
        def started():
            if process.popen.poll() is not None:
                raise AssertionError(f"{name} exited at start:\n{process.tail()}")
            return is_ready()

        wait_for(started, f"{name} to be ready", timeout, process.tail)
        yield process
    finally:
        process.stop()


def local_args(rendered: list[str], changes: dict[str, Optional[str]]) -> list[str]:
    """A container's rendered command line for a process on this machine: each `--flag` in
    `changes` takes the given value, or is dropped where that is None. Every other flag stays as
    rendered. Each changed flag must be in the rendered line, so a renamed flag fails the test."""
    flags = {arg.split("=", 1)[0] for arg in rendered}
    missing = sorted(set(changes) - flags)
    assert not missing, f"flags {missing} are no longer rendered in {rendered}"
    args = []
    for arg in rendered:
        flag = arg.split("=", 1)[0]
        if flag not in changes:
            args.append(arg)
        elif changes[flag] is not None:
            args.append(f"{flag}={changes[flag]}")
    return args


def alertmanager_config(run: Run, root: Path, receiver: Receiver) -> Path:
    """The run's rendered alertmanager.yml and the files it reads, under `root`: container paths
    relocated, webhook URL files inlined for Debian's 0.25, PagerDuty's events endpoint (the
    `pagerduty_url` default, https://events.pagerduty.com/v2/enqueue) at the receiver's /pagerduty."""
    files = write_files(container_files(run, "alertmanager"), root)
    text = relocate(files["/etc/alertmanager/alertmanager.yml"].read_text(), root, ("/etc/alertmanager", "/run/secrets"))
    config = yaml.safe_load(text)
    config["global"]["pagerduty_url"] = f"{receiver.url}/pagerduty"
    path = root / "alertmanager-live.yml"
    path.write_text(yaml.safe_dump(config))
    inline_webhook_url_files(path)
    return path


def receiver_secrets(receiver: Receiver) -> dict[str, str]:
    """The secrets that are URLs, pointed at the receiver: Slack at /slack, the switch at /watchdog."""
    return {"slack_webhook_url": f"{receiver.url}/slack", "watchdog_url": f"{receiver.url}/watchdog"}


@contextmanager
def running_alertmanager(run: Run, root: Path, receiver: Receiver, address: str, timeout: float = 20) -> Iterator[Process]:
    """Debian's Alertmanager with the run's rendered configuration, alone (no cluster), on
    `address` (127.0.0.1:<port>), notifying the receiver."""
    binary = require_tool("prometheus-alertmanager")
    path = alertmanager_config(run, root, receiver)
    args = [binary, f"--config.file={path}", f"--storage.path={root / 'alertmanager-data'}",
            f"--web.listen-address={address}", "--cluster.listen-address="]
    with running("alertmanager", args, root / "logs", lambda: answers(f"http://{address}/-/ready"), timeout) as process:
        yield process
