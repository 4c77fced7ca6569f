"""The docker platform: what the dev stack (and variants of it) registers on one Docker engine."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from conftest import ROOT, SECRETS, is_secret, merge, require_tool, run_program, stack_config

from components import images
from components.platforms.docker import cpus, health_command, memory_megabytes
from components.workload import HealthCheck

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"
NETWORK = "docker:index/network:Network"
PROVIDER = "pulumi:providers:docker"

HEALTHCHECKED = {
    "prometheus": 9090,
    "alertmanager": 9093,
    "node-exporter": 9100,
    "cadvisor": 8080,
    "postgres-exporter": 9187,
    "redis-exporter": 9121,
}

# dev plus the two database exporters, their secrets and a Slack receiver.
EXPORTERS = {
    "exporters": {
        "postgres": {"enabled": True, "host": "db.internal", "user": "exporter"},
        "redis": {"enabled": True, "address": "redis://cache.internal:6379"},
    },
    "alertmanager": {"receivers": {"slack": {"enabled": True}}},
}
EXPORTER_SECRETS = {
    name: SECRETS[name] for name in ("postgres_password", "redis_password", "slack_webhook_url")
}

CUSTOM = {
    "docker": {"bind_address": "0.0.0.0", "host": "ssh://deploy@builder.internal", "network": "team-a"},
    "prometheus": {"discovery": False, "resources": {"limits": {"cpu": "250m", "memory": "1G"}}},
}


@pytest.fixture(scope="module")
def dev():
    return run_program("dev", stack_config("dev"))


@pytest.fixture(scope="module")
def full():
    return run_program("dev", merge(stack_config("dev"), EXPORTERS), EXPORTER_SECRETS)


@pytest.fixture(scope="module")
def custom():
    return run_program("dev", merge(stack_config("dev"), CUSTOM))


def containers(run) -> dict:
    return {c.name: c.inputs for c in run.of_type(CONTAINER)}


def uploads(run, name) -> dict[str, str]:
    return {u["file"]: u["content"] for u in containers(run)[name].get("uploads") or []}


def secret_along(value, *keys) -> bool:
    """Whether the value at keys, or anything that encloses it, is marked secret."""
    for key in keys:
        if is_secret(value):
            return True
        if isinstance(key, str) and not isinstance(value, dict):
            return False
        value = value[key]
    return is_secret(value)


# --- published ports -----------------------------------------------------------------------------


def test_only_user_facing_ports_are_published_and_on_loopback(full):
    published = {name: c.get("ports") or [] for name, c in containers(full).items()}
    assert published.pop("prometheus") == [{"internal": 9090, "external": 9090, "ip": "127.0.0.1"}]
    assert published.pop("alertmanager") == [{"internal": 9093, "external": 9093, "ip": "127.0.0.1"}]
    assert published.pop("loki") == [{"internal": 3100, "external": 3100, "ip": "127.0.0.1"}]
    assert published.pop("jaeger") == [{"internal": 16686, "external": 16686, "ip": "127.0.0.1"}]
    assert published.pop("grafana") == [{"internal": 3000, "external": 3000, "ip": "127.0.0.1"}]
    # Applications on the host send OTLP to the collector.
    assert published.pop("otel-collector") == [
        {"internal": 4317, "external": 4317, "ip": "127.0.0.1"},
        {"internal": 4318, "external": 4318, "ip": "127.0.0.1"},
    ]
    assert set(published) == {"node-exporter", "cadvisor", "postgres-exporter", "redis-exporter", "alloy"}
    assert all(ports == [] for ports in published.values())


def test_published_ports_bind_to_the_configured_address(custom):
    found = containers(custom)
    assert [p["ip"] for p in found["prometheus"]["ports"]] == ["0.0.0.0"]
    assert [p["ip"] for p in found["alertmanager"]["ports"]] == ["0.0.0.0"]


def test_ports_on_every_interface_are_reached_on_the_hosts_loopback_address(custom):
    """docs/architecture.md, Stack outputs, and docs/configuration.md, `docker.bind_address`: `endpoints` holds host addresses on docker,
    `127.0.0.1` when `docker.bind_address` is `0.0.0.0`, and so does the default `grafana.url`."""
    assert custom.outputs["endpoints"] == {
        "prometheus": "http://127.0.0.1:9090",
        "alertmanager": "http://127.0.0.1:9093",
        "loki": "http://127.0.0.1:3100",
        "jaeger": "http://127.0.0.1:16686",
        "otel-collector-otlp-grpc": "http://127.0.0.1:4317",
        "otel-collector-otlp-http": "http://127.0.0.1:4318",
        "grafana": "http://127.0.0.1:3000",
    }


# --- images --------------------------------------------------------------------------------------


def test_every_container_runs_its_pulled_image_by_id(full):
    pulled = full.names(IMAGE)
    for name, container in containers(full).items():
        assert f"{name}-image" in pulled
        assert container["image"] == f"sha256:{name}-image"


def test_images_are_the_pinned_tags(full):
    pulled = {r.inputs["name"] for r in full.of_type(IMAGE)}
    assert pulled == {
        images.PROMETHEUS,
        images.ALERTMANAGER,
        images.NODE_EXPORTER,
        images.CADVISOR,
        images.POSTGRES_EXPORTER,
        images.REDIS_EXPORTER,
        images.LOKI,
        images.ALLOY,
        images.OTEL_COLLECTOR,
        images.JAEGER,
        images.GRAFANA,
    }
    for ref in pulled:
        repository, _, tag = ref.rpartition(":")
        assert repository and "/" not in tag, f"{ref} has no tag"
        assert tag and tag != "latest", ref


# --- names, restart, network ---------------------------------------------------------------------


def test_containers_have_fixed_network_prefixed_names(dev, custom):
    assert {c["name"] for c in containers(dev).values()} == {
        "observability-prometheus",
        "observability-alertmanager",
        "observability-node-exporter",
        "observability-cadvisor",
        "observability-loki",
        "observability-alloy",
        "observability-otel-collector",
        "observability-jaeger",
        "observability-grafana",
    }
    assert containers(custom)["prometheus"]["name"] == "team-a-prometheus"


def test_containers_are_deleted_before_replacement(full):
    assert all(c.delete_before_replace for c in full.of_type(CONTAINER))


def test_containers_restart_unless_stopped(full):
    assert {c["restart"] for c in containers(full).values()} == {"unless-stopped"}


def test_containers_join_the_stack_network_under_their_service_name(full, custom):
    assert full.one(NETWORK, "network").inputs["name"] == "observability"
    for name, container in containers(full).items():
        assert container["networksAdvanced"] == [{"name": "observability", "aliases": [name]}]
    assert custom.one(NETWORK, "network").inputs["name"] == "team-a"
    assert containers(custom)["cadvisor"]["networksAdvanced"] == [{"name": "team-a", "aliases": ["cadvisor"]}]


# --- health --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HEALTHCHECKED))
def test_containers_with_a_health_tool_are_waited_on_until_healthy(full, name):
    container = containers(full)[name]
    tests = container["healthcheck"]["tests"]
    assert tests[:2] == ["CMD", "wget"]
    assert tests[-1].startswith(f"http://127.0.0.1:{HEALTHCHECKED[name]}/")
    assert container["wait"] is True


# What each pinned image holds that can run a health check, read from the Dockerfile that builds
# it at the pinned tag (tests/upstream/images.json).
IMAGE_TOOLS = {ref: entry["tools"] for ref, entry in
               json.loads((ROOT / "tests/upstream/images.json").read_text())["images"].items()}


def test_every_pinned_image_says_what_it_can_run():
    pinned = {value for name, value in vars(images).items() if name.isupper()}
    assert pinned == set(IMAGE_TOOLS), "take tests/upstream/images.json again for the bumped images"


def gpu_variants():
    return [run_program("dev", merge(stack_config("dev"), {"exporters": {"gpu": {"enabled": True, "exporter": e}}}))
            for e in ("dcgm", "nvidia_smi")]


def test_each_health_check_runs_a_tool_its_image_has(full):
    """A check that calls a tool the image lacks never passes, and `pulumi up` waits on it until
    it gives up: Loki's 3.7 image is distroless (no busybox), the nvidia-smi exporter's too."""
    runs = [full, run_program("dev", merge(stack_config("dev"), {"log_shipper": {"type": "promtail"}})), *gpu_variants()]
    seen = set()
    for run in runs:
        pulled = {r.name.removesuffix("-image"): r.inputs["name"] for r in run.of_type(IMAGE)}
        for name, container in containers(run).items():
            tools = IMAGE_TOOLS[pulled[name]]
            check = container.get("healthcheck")
            if not tools:
                assert check is None and container["wait"] is False, name
                continue
            command = check["tests"]
            tool = {"wget": "wget", "bash": "bash", "/usr/bin/loki": "loki", "curl": "curl"}[command[1]]
            assert command[0] == "CMD" and tool in tools, (name, command)
            assert container["wait"] is True, name
            seen.add(name)
    assert {"loki", "alloy", "promtail", "jaeger", "grafana", "gpu-exporter"} <= seen


def test_loki_checks_itself_with_its_own_health_command(full):
    # Loki 3.7's -health asks the URL it is given and exits 0 on a 200.
    assert containers(full)["loki"]["healthcheck"]["tests"] == [
        "CMD", "/usr/bin/loki", "-health", "-health.url=http://127.0.0.1:3100/ready"]


def test_the_dcgm_exporter_is_checked_with_bash_and_the_nvidia_smi_exporter_not_at_all():
    dcgm, nvidia_smi = (containers(run)["gpu-exporter"] for run in gpu_variants())
    assert dcgm["healthcheck"]["tests"][:3] == ["CMD", "bash", "-c"]
    assert "healthcheck" not in nvidia_smi and nvidia_smi["wait"] is False


class Status(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ready" else 503)
        self.end_headers()
        self.wfile.write(b"ready" if self.path == "/ready" else b"not ready")

    def log_message(self, *args):
        pass


def test_the_bash_health_check_passes_on_2xx_only(full):
    """Run the rendered command with the real bash against a server on 127.0.0.1."""
    bash = shutil.which("bash")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]

        def healthy(path: str, port: int = port) -> bool:
            command = health_command(HealthCheck("http", path, docker_tool="bash"), port)
            assert command[:3] == ["CMD", "bash", "-c"]
            return subprocess.run([bash, "-c", command[3]], timeout=10).returncode == 0

        assert healthy("/ready")
        assert not healthy("/not-ready")
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            assert not healthy("/ready", closed.getsockname()[1])
        # The shipper's own command is the same, for its port and path.
        rendered = containers(full)["alloy"]["healthcheck"]["tests"]
        assert rendered == health_command(HealthCheck("http", "/-/ready", docker_tool="bash"), 12345)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_the_curl_and_wget_health_checks_pass_on_2xx_only(tool):
    """Docker runs the check as it is (exec form): here with the real tool, against a server on
    127.0.0.1. A check that passes on an error status would mark a failing service healthy."""
    require_tool(tool)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        def healthy(path: str) -> bool:
            command = health_command(HealthCheck("http", path, docker_tool=tool), server.server_address[1])
            assert command[:2] == ["CMD", tool]
            return subprocess.run(command[1:], capture_output=True, timeout=10).returncode == 0

        assert healthy("/ready")
        assert not healthy("/not-ready")
    finally:
        server.shutdown()
        server.server_close()


def test_the_collector_has_no_healthcheck_and_is_not_waited_on(full):
    # Its image is built FROM scratch: nothing in it can make a request. Every other has a check.
    found = containers(full)
    assert [name for name, c in found.items() if "healthcheck" not in c] == ["otel-collector"]
    assert not found["otel-collector"].get("wait")


def test_redis_exporter_runs_the_alpine_build_for_its_wget(full):
    assert full.one(IMAGE, "redis-exporter-image").inputs["name"].endswith("-alpine")


# --- data, files, secrets ------------------------------------------------------------------------


@pytest.mark.parametrize("name, path", [("prometheus", "/prometheus"), ("alertmanager", "/alertmanager")])
def test_data_lives_in_a_named_volume(dev, name, path):
    volume = dev.one(VOLUME, f"{name}-data").inputs["name"]
    assert volume == f"observability-{name}-data"
    assert {"volumeName": volume, "containerPath": path} in containers(dev)[name]["volumes"]


def test_prometheus_config_and_rules_are_uploaded(dev):
    files = uploads(dev, "prometheus")
    # The stack's rendered alert catalog, its recording rules, the rules of dev's objectives, and
    # the user's own rule files.
    rules = {"/etc/prometheus/rules/catalog.yml", "/etc/prometheus/rules/records.yml", "/etc/prometheus/rules/slos.yml"}
    rules |= {f"/etc/prometheus/rules/{p.name}" for p in (ROOT / "configs/prometheus/rules").glob("*.yml")}
    assert set(files) == {"/etc/prometheus/prometheus.yml", *rules}
    config = yaml.safe_load(files["/etc/prometheus/prometheus.yml"])
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    for path in rules:
        assert yaml.safe_load(files[path])["groups"]


def test_alertmanager_config_is_uploaded(dev):
    config = yaml.safe_load(uploads(dev, "alertmanager")["/etc/alertmanager/alertmanager.yml"])
    assert config["route"]["receiver"] == "null"


def test_slack_webhook_is_uploaded_only_as_a_secret_file(full):
    alertmanager = full.one(CONTAINER, "alertmanager")
    files = [u["file"] for u in alertmanager.inputs["uploads"]]
    index = files.index("/run/secrets/slack_webhook_url")
    assert alertmanager.inputs["uploads"][index]["content"] == SECRETS["slack_webhook_url"]
    assert secret_along(alertmanager.raw_inputs, "uploads", index, "content")
    others = [u for i, u in enumerate(alertmanager.inputs["uploads"]) if i != index]
    assert SECRETS["slack_webhook_url"] not in json.dumps(others)
    config = yaml.safe_load(uploads(full, "alertmanager")["/etc/alertmanager/alertmanager.yml"])
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["slack-critical"]["slack_configs"][0]["api_url_file"] == "/run/secrets/slack_webhook_url"


def test_slack_webhook_appears_in_no_other_input(full):
    url = SECRETS["slack_webhook_url"]
    for resource in full.resources:
        inputs = dict(resource.inputs)
        if resource.type == CONTAINER and resource.name == "alertmanager":
            inputs.pop("uploads")
        assert url not in json.dumps(inputs), f"{resource.type} {resource.name}"
    assert url not in json.dumps(full.outputs)


# --- resources -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quantity, megabytes", [("512Mi", 512), ("1Gi", 1024), ("1G", 953), ("1.5Gi", 1536), ("64Mi", 64)]
)
def test_memory_megabytes(quantity, megabytes):
    assert memory_megabytes(quantity) == megabytes


@pytest.mark.parametrize("quantity, value", [("250m", "0.25"), ("2", "2"), ("1500m", "1.5"), ("0.5", "0.5")])
def test_cpus(quantity, value):
    assert cpus(quantity) == value


def test_containers_are_limited_by_the_resource_settings(dev, custom):
    # dev: prometheus limits {cpu: "1", memory: 1Gi}; node-exporter default limits 200m / 64Mi.
    assert (containers(dev)["prometheus"]["memory"], containers(dev)["prometheus"]["cpus"]) == (1024, "1")
    node = containers(dev)["node-exporter"]
    assert (node["memory"], node["cpus"]) == (64, "0.2")
    prometheus = containers(custom)["prometheus"]
    assert (prometheus["memory"], prometheus["cpus"]) == (953, "0.25")


# --- provider, discovery, host access ------------------------------------------------------------


def test_provider_talks_to_the_configured_docker_host(dev, custom):
    assert dev.one(PROVIDER, "docker").inputs["host"] == "unix:///var/run/docker.sock"
    assert custom.one(PROVIDER, "docker").inputs["host"] == "ssh://deploy@builder.internal"


def test_discovery_mounts_the_docker_socket_read_only_and_runs_as_root(dev):
    found = containers(dev)
    socket = {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock", "readOnly": True}
    # Prometheus discovers scrape targets, the log shipper the containers whose logs it reads.
    for name in ("prometheus", "alloy"):
        assert socket in found[name]["volumes"], name
        assert found[name]["user"] == "0", name
    for name, container in found.items():
        if name not in ("prometheus", "alloy"):
            assert "docker.sock" not in json.dumps(container.get("volumes")), name


def test_containers_run_as_the_user_their_pods_run_as(full):
    # The same unprivileged user as on kubernetes, whatever user the image names (the
    # redis_exporter image names none). cAdvisor runs privileged as its image's root.
    users = {name: container.get("user") for name, container in containers(full).items()}
    assert users == {
        "prometheus": "0", "alloy": "0",  # they read the docker socket: see above
        "alertmanager": "65534", "node-exporter": "65534", "postgres-exporter": "65534",
        "redis-exporter": "65534", "loki": "10001", "jaeger": "10001", "otel-collector": "10001",
        "grafana": "472", "cadvisor": None,
    }


def test_without_discovery_prometheus_has_no_socket_and_runs_as_nobody(custom):
    prometheus = containers(custom)["prometheus"]
    assert "docker.sock" not in json.dumps(prometheus["volumes"])
    assert prometheus["user"] == "65534"
    jobs = yaml.safe_load(uploads(custom, "prometheus")["/etc/prometheus/prometheus.yml"])["scrape_configs"]
    assert not any("docker_sd_configs" in job for job in jobs)


def test_node_exporter_shares_the_host_pid_namespace_and_reads_its_root(dev):
    node = containers(dev)["node-exporter"]
    assert node["pidMode"] == "host"
    assert node["volumes"] == [{"hostPath": "/", "containerPath": "/host", "readOnly": True}]


def test_only_cadvisor_is_privileged(full):
    privileged = {name for name, c in containers(full).items() if c.get("privileged")}
    assert privileged == {"cadvisor"}


def test_host_docker_internal_resolves_to_the_host_gateway(full):
    for container in containers(full).values():
        assert container["hosts"] == [{"host": "host.docker.internal", "ip": "host-gateway"}]


# --- config changes show in the preview ------------------------------------------------------------


def config_labels(run) -> dict[str, str]:
    return {
        name: {label["label"]: label["value"] for label in inputs["labels"]}["observability.dev/config-hash"]
        for name, inputs in containers(run).items()
    }


def test_a_config_change_relabels_exactly_the_containers_that_carry_it(dev):
    changed = run_program("dev", merge(stack_config("dev"), {"alertmanager": {"repeat_interval": "12h"}}))
    before, after = config_labels(dev), config_labels(changed)
    assert before["alertmanager"] != after["alertmanager"]
    assert {name: value for name, value in before.items() if name != "alertmanager"} == {
        name: value for name, value in after.items() if name != "alertmanager"
    }


def test_the_config_label_stays_readable_when_uploads_hold_a_secret(full):
    alertmanager = next(c for c in full.of_type(CONTAINER) if c.name == "alertmanager")
    assert is_secret(alertmanager.raw_inputs["uploads"]) or any(is_secret(u) for u in alertmanager.raw_inputs["uploads"])
    assert not is_secret(alertmanager.raw_inputs["labels"])
    assert not any(is_secret(label) for label in alertmanager.raw_inputs["labels"])


def test_data_volumes_are_protected_where_the_stack_asks(dev):
    assert not dev.one(VOLUME, "prometheus-data").protect
    protected = run_program("dev", merge(stack_config("dev"), {"protect_data": True}))
    for volume in protected.of_type(VOLUME):
        assert volume.protect and volume.retain_on_delete, volume.name


def test_ports_opened_to_every_interface_are_labelled_as_such(dev, custom):
    def labels(run, name):
        return {label["label"]: label["value"] for label in containers(run)[name]["labels"]}

    assert labels(custom, "prometheus")["observability.dev/public-ports"] == "0.0.0.0"
    assert "observability.dev/public-ports" not in labels(dev, "prometheus")
    # Nothing published, nothing to label.
    assert "observability.dev/public-ports" not in labels(custom, "node-exporter")


def test_the_dev_stack_fits_in_four_gibibytes(dev):
    total = sum(container["memory"] for container in containers(dev).values())
    assert total <= 4096, f"dev's containers may use {total} MiB together"


def test_no_container_gains_privileges_and_each_holds_only_the_capabilities_it_needs(full):
    """docs/platforms.md, docker: every container runs with no-new-privileges and drops every
    capability, as its pod does on kubernetes. Added back: DAC_OVERRIDE for the two that run as
    root to read the engine's socket and write a data directory their image gives to another
    user, SYS_ADMIN for DCGM's profiling fields. Privileged cAdvisor keeps its privilege."""
    added = {}
    for name, c in containers(full).items():
        assert c["securityOpts"] == ["no-new-privileges:true"], name
        if c.get("privileged"):
            assert name == "cadvisor" and "capabilities" not in c
            continue
        assert c["capabilities"]["drops"] == ["ALL"], name
        added[name] = c["capabilities"].get("adds", [])
    # The GPU exporter's SYS_ADMIN: tests/services/test_gpu_exporter.py (dev runs none).
    assert {name: adds for name, adds in added.items() if adds} == {
        "prometheus": ["DAC_OVERRIDE"], "alloy": ["DAC_OVERRIDE"],
    }
