"""Every built-in dashboard panel computes what its title, description and unit promise.

Each PromQL query of a built-in panel, as each shipped stack renders it, becomes a recording rule,
and promtool (the real Prometheus query engine) evaluates it over synthetic series whose true
answer follows from what the panel promises: a histogram whose 95th percentile sits exactly on a
bucket boundary, counters growing at known rates, memory in use against memory available. The
answer is written in the case as a quantity (a ratio, bytes, requests a second, ...) and shown in
the panel's unit before promtool compares it, so a ratio under `percent`, or MiB under `bytes`,
fails too. Every PromQL panel must have a case (COVERAGE); the logs panels query Loki (LogQL) and
are listed in LOGQL_PANELS instead. A few plausible mistakes (MUTANTS) show the cases can fail.

Grafana's interval variables ($__rate_interval and the like) stand for WINDOW; the series carry
one sample a minute, and promtool evaluates at EVAL, where a WINDOW range holds whole minutes.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, replace

import pytest
import yaml

from components.alerting import recording_rules, user_rules
from components.grafana import dashboards, kubernetes_dashboard
from components.settings import parse
from conftest import STACKS, require_tool, stack_config, stack_secrets

DASHBOARD = "grafana:oss/dashboard:Dashboard"
WINDOW = "5m"  # what $__rate_interval, $__interval, $__range and $__auto stand for
STEP = "1m"  # one sample a minute, one rule evaluation a minute
EVAL = "10m"
SAMPLES = 15  # samples after the first: the series run from 0 to 15m
GRAFANA_VARIABLES = re.compile(r"\$\{?(__rate_interval|__interval|__range|__auto)\}?")
ANY_VARIABLE = re.compile(r"\$\{?[A-Za-z_]\w*|\[\[\w+")  # not $1, label_replace's group
# The dashboards' own variables, as a choice on the dashboard fills them in: two namespaces, which
# Grafana writes into a regex matcher as (a|b) (the Prometheus datasource's interpolateQueryExpr).
# The SLO dashboard's objective, chosen by service and name (single values, written as they are).
DASHBOARD_VARIABLES = {"namespace": "(shop|payments)", "service": "api", "slo": "availability"}
DASHBOARD_VARIABLE = re.compile(r"\$\{?(" + "|".join(DASHBOARD_VARIABLES) + r")\b\}?")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
ANY = "*"  # the key of a panel's only query, whatever its legend

# Quantity -> {Grafana unit that shows it: factor from the quantity's base (ratio, seconds, bytes,
# ...) to the number the unit expects}. A panel whose unit is not listed for its case's quantity
# shows something else.
UNITS: dict[str, dict[str, float]] = {
    "ratio": {"percentunit": 1, "percent": 100},  # percentunit shows 0.25 as 25%; percent shows 25 as 25%
    "seconds": {"s": 1, "ms": 1000},
    "bytes": {"bytes": 1},
    "bytes per second": {"Bps": 1},
    "requests per second": {"reqps": 1},
    "events per second": {"ops": 1, "short": 1},
    "count": {"short": 1, "none": 1},
    "CPU cores": {"short": 1},
    "degrees Celsius": {"celsius": 1},
    "watts": {"watt": 1},
    "US dollars per hour": {"currencyUSD": 1},
    "1 up, 0 down": {"bool": 1},
    "score": {"short": 1},
    "events per hour": {"short": 1},
    "burn rate": {"short": 1, "none": 1},  # times the rate the objective allows
}


# --- synthetic series --------------------------------------------------------------------------


def num(value: float) -> str:
    """A number as promtool reads it back exactly."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def counter(per_second: float) -> str:
    """A counter growing by `per_second` every second, sampled once a minute."""
    return f"0+{num(per_second * 60)}x{SAMPLES}"


def gauge(value: float) -> str:
    return f"{num(value)}+0x{SAMPLES}"


def histogram(metric: str, labels: str, at_or_below: dict[str, float]) -> dict[str, str]:
    """Bucket counters: `at_or_below[le]` observations a second no larger than each bound."""
    return {f'{metric}{{{labels}, le="{le}"}}': counter(rate) for le, rate in at_or_below.items()}


def buckets(bounds: list[str], cumulative: list[float]) -> dict[str, float]:
    return dict(zip(bounds, cumulative, strict=True))


@dataclass(frozen=True)
class Case:
    """A situation, its series, and the true answer for each of a panel's queries (by legend)."""

    story: str
    quantity: str  # a key of UNITS
    series: dict[str, str]  # promtool series -> values
    expect: dict[str, dict[str, float]]  # legend (ANY: the panel's only query) -> {labels: true value}
    wrong: str = ""  # why the panel fails this case today (the case is a strict xfail)


# --- HTTP: one service world, several panels -----------------------------------------------------
# api: /checkout 2.5 ok + 0.5 5xx, /search 0.5 ok + 0.5 404 a second (4/s, 1/8 of them 5xx);
# web: / 1 ok + 1 503 a second (2/s, half of them 5xx). All: 6/s, 1.5/s of them 5xx (1/4).


def http(job: str, instance: int, endpoint: str, status: str) -> str:
    return (f'http_requests_total{{job="{job}", instance="{job}-{instance}:8000", method="GET", '
            f'endpoint="{endpoint}", status="{status}"}}')


TRAFFIC = {
    http("api", 0, "/checkout", "200"): counter(1.5),
    http("api", 1, "/checkout", "200"): counter(1),
    http("api", 0, "/checkout", "500"): counter(0.5),
    http("api", 0, "/search", "200"): counter(0.5),
    http("api", 1, "/search", "404"): counter(0.5),  # a client error, not a 5xx
    http("web", 0, "/", "200"): counter(1),
    http("web", 0, "/", "503"): counter(1),
}

LATENCY_BOUNDS = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"]
# Observations a second at or below each bound. /checkout (40/s, on two instances): 38 of 40,
# its 95th percentile, within 1 s. /search (60/s): 57 of 60 within 0.25 s. Together (100/s): 50
# within 0.1 s, 95 within 1 s, 99 within 2.5 s: p50 0.1 s, p95 1 s, p99 2.5 s.
CHECKOUT = [5, 15, 23, 30, 38, 39, 40, 40]
SEARCH = [10, 35, 57, 57, 57, 60, 60, 60]
LATENCY = {
    **histogram("http_request_duration_seconds_bucket", 'job="api", instance="api-0:8000", endpoint="/checkout"',
                buckets(LATENCY_BOUNDS, [n / 2 for n in CHECKOUT])),
    **histogram("http_request_duration_seconds_bucket", 'job="api", instance="api-1:8000", endpoint="/checkout"',
                buckets(LATENCY_BOUNDS, [n / 2 for n in CHECKOUT])),
    **histogram("http_request_duration_seconds_bucket", 'job="api", instance="api-0:8000", endpoint="/search"',
                buckets(LATENCY_BOUNDS, SEARCH)),
}

# Eleven endpoints, the i-th with 19 of its 20 requests a second (its 95th percentile) within
# the i-th bound and all 20 within the next: the ten slowest are all but /op00.
TOP_BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"]


def one_slow_endpoint(i: int) -> dict[str, str]:
    cumulative = [0 if j < i else 19 if j == i else 20 for j in range(len(TOP_BOUNDS))] + [20]
    return histogram("http_request_duration_seconds_bucket", f'job="api", instance="api-0:8000", endpoint="/op{i:02d}"',
                     buckets([*TOP_BOUNDS, "+Inf"], cumulative))


ELEVEN_ENDPOINTS = {k: v for i in range(len(TOP_BOUNDS)) for k, v in one_slow_endpoint(i).items()}

# Five targets: api-1 fails its scrapes.
TARGETS = {
    'up{job="api", instance="api-0:8000"}': gauge(1),
    'up{job="api", instance="api-1:8000"}': gauge(0),
    'up{job="web", instance="web-0:8000"}': gauge(1),
    'up{job="prometheus", instance="prometheus-0:9090"}': gauge(1),
    'up{job="prometheus", instance="prometheus-1:9090"}': gauge(1),
}
ALL_UP = {name: gauge(1) for name in TARGETS}

# --- hosts and containers -------------------------------------------------------------------------
NODE_A = 'job="node-exporter", instance="node-a"'
NODE_B = 'job="node-exporter", instance="node-b"'
GiB = 1024 ** 3
MiB = 1024 ** 2

# node-a: cpu0 idle half the time, cpu1 a quarter: busy 1 - (0.5 + 0.25) / 2 = 0.625. node-b idles.
CPU = {
    f'node_cpu_seconds_total{{{NODE_A}, cpu="0", mode="idle"}}': counter(0.5),
    f'node_cpu_seconds_total{{{NODE_A}, cpu="0", mode="user"}}': counter(0.25),
    f'node_cpu_seconds_total{{{NODE_A}, cpu="0", mode="system"}}': counter(0.125),
    f'node_cpu_seconds_total{{{NODE_A}, cpu="0", mode="iowait"}}': counter(0.125),
    f'node_cpu_seconds_total{{{NODE_A}, cpu="1", mode="idle"}}': counter(0.25),
    f'node_cpu_seconds_total{{{NODE_A}, cpu="1", mode="user"}}': counter(0.5),
    f'node_cpu_seconds_total{{{NODE_A}, cpu="1", mode="system"}}': counter(0.25),
    f'node_cpu_seconds_total{{{NODE_B}, cpu="0", mode="idle"}}': counter(1),
    f'node_cpu_seconds_total{{{NODE_B}, cpu="0", mode="user"}}': counter(0),
}
# node-a: 8 GiB, 2 GiB available (6 GiB in use); node-b: 4 GiB, 3 GiB available (1 GiB in use).
MEMORY = {
    f"node_memory_MemTotal_bytes{{{NODE_A}}}": gauge(8 * GiB),
    f"node_memory_MemAvailable_bytes{{{NODE_A}}}": gauge(2 * GiB),
    f"node_memory_MemTotal_bytes{{{NODE_B}}}": gauge(4 * GiB),
    f"node_memory_MemAvailable_bytes{{{NODE_B}}}": gauge(3 * GiB),
}
ROOT_FS = f'{NODE_A}, device="/dev/sda1", fstype="ext4", mountpoint="/"'
DATA_FS = f'{NODE_A}, device="/dev/sdb1", fstype="xfs", mountpoint="/data"'
RUN_FS = f'{NODE_A}, device="tmpfs", fstype="tmpfs", mountpoint="/run"'
OVERLAY_FS = f'{NODE_A}, device="overlay", fstype="overlay", mountpoint="/var/lib/docker/overlay2/x/merged"'
SNAP_FS = f'{NODE_A}, device="/dev/loop0", fstype="squashfs", mountpoint="/snap/core/1"'
# / has 25 of 100 GiB free (3/4 in use), /data 768 of 1024 GiB (1/4); the rest are no disks.
DISK = {
    f"node_filesystem_size_bytes{{{ROOT_FS}}}": gauge(100 * GiB),
    f"node_filesystem_avail_bytes{{{ROOT_FS}}}": gauge(25 * GiB),
    f"node_filesystem_size_bytes{{{DATA_FS}}}": gauge(1024 * GiB),
    f"node_filesystem_avail_bytes{{{DATA_FS}}}": gauge(768 * GiB),
    **{f"node_filesystem_size_bytes{{{fs}}}": gauge(GiB) for fs in (RUN_FS, OVERLAY_FS, SNAP_FS)},
    **{f"node_filesystem_avail_bytes{{{fs}}}": gauge(0) for fs in (RUN_FS, OVERLAY_FS, SNAP_FS)},
}


def nic(node: str, device: str, received: float, sent: float) -> dict[str, str]:
    return {f'node_network_receive_bytes_total{{{node}, device="{device}"}}': counter(received),
            f'node_network_transmit_bytes_total{{{node}, device="{device}"}}': counter(sent)}


# node-a takes 1024 + 512 B/s in and sends 256 + 128 B/s on its two NICs; loopback is no traffic.
NETWORK = {**nic(NODE_A, "eth0", 1024, 256), **nic(NODE_A, "eth1", 512, 128), **nic(NODE_A, "lo", 4096, 4096),
           **nic(NODE_B, "eth0", 64, 32)}
# node-a runs a container that receives 512 B/s and sends 128 B/s of node-a's 1024 in and 256
# out on eth0. Linux counts that traffic again on the container's veth and on the bridge: the
# host still receives 1024 B/s and sends 256 B/s.
CONTAINER_HOST_NETWORK = {**nic(NODE_A, "eth0", 1024, 256), **nic(NODE_A, "lo", 4096, 4096),
                          **nic(NODE_A, "docker0", 128, 512), **nic(NODE_A, "veth3f2a1b", 128, 512)}


def cadvisor(metric: str, name: str, extra: str = "") -> str:
    cgroup = f"/docker/{name}" if name else "/system.slice/docker.service"
    return f'{metric}{{job="cadvisor", instance="node-a", id="{cgroup}", name="{name}"{extra}}}'


# api uses 1.5 cores, worker a quarter; a cgroup with no container name is no container.
CONTAINER_CPU = {
    cadvisor("container_cpu_usage_seconds_total", "api", ', cpu="total"'): counter(1.5),
    cadvisor("container_cpu_usage_seconds_total", "worker", ', cpu="total"'): counter(0.25),
    cadvisor("container_cpu_usage_seconds_total", "", ', cpu="total"'): counter(2),
}
CONTAINER_MEMORY = {
    cadvisor("container_memory_working_set_bytes", "api"): gauge(256 * MiB),
    cadvisor("container_memory_working_set_bytes", "worker"): gauge(64 * MiB),
    cadvisor("container_memory_working_set_bytes", ""): gauge(GiB),
}
# api writes to two devices: 1 GiB + 512 MiB.
CONTAINER_DISK = {
    cadvisor("container_fs_usage_bytes", "api", ', device="/dev/sda1"'): gauge(GiB),
    cadvisor("container_fs_usage_bytes", "api", ', device="/dev/sdb1"'): gauge(512 * MiB),
    cadvisor("container_fs_usage_bytes", "worker", ', device="/dev/sda1"'): gauge(4096),
    cadvisor("container_fs_usage_bytes", "", ', device="/dev/sda1"'): gauge(GiB),
}
CONTAINER_NETWORK = {
    cadvisor("container_network_receive_bytes_total", "api", ', interface="eth0"'): counter(2048),
    cadvisor("container_network_receive_bytes_total", "api", ', interface="eth1"'): counter(1024),
    cadvisor("container_network_transmit_bytes_total", "api", ', interface="eth0"'): counter(512),
    cadvisor("container_network_transmit_bytes_total", "api", ', interface="eth1"'): counter(0),
    cadvisor("container_network_receive_bytes_total", "worker", ', interface="eth0"'): counter(64),
    cadvisor("container_network_transmit_bytes_total", "worker", ', interface="eth0"'): counter(32),
    cadvisor("container_network_receive_bytes_total", "", ', interface="eth0"'): counter(9999),
    cadvisor("container_network_transmit_bytes_total", "", ', interface="eth0"'): counter(9999),
}

# --- databases -----------------------------------------------------------------------------------
PG = 'job="postgres-exporter", instance="postgres-exporter:9187"'
APP_DB = f'{PG}, datid="16384", datname="app"'
ADMIN_DB = f'{PG}, datid="5", datname="postgres"'


def per_database(metric: str, app: float, admin: float, kind=counter) -> dict[str, str]:
    return {f"{metric}{{{APP_DB}}}": kind(app), f"{metric}{{{ADMIN_DB}}}": kind(admin)}


POSTGRES = {
    **per_database("pg_stat_database_numbackends", 12, 3, gauge),  # 15 connections
    f"pg_settings_max_connections{{{PG}}}": gauge(100),
    **per_database("pg_stat_database_xact_commit", 40, 8),  # 48 commits a second
    **per_database("pg_stat_database_xact_rollback", 1, 0.5),  # 1.5 rollbacks a second
    **per_database("pg_database_size_bytes", 12 * GiB, 8 * MiB, gauge),
    **per_database("pg_stat_database_tup_fetched", 1000, 24),  # 1024 rows a second
    **per_database("pg_stat_database_tup_inserted", 30, 2),  # 32
    **per_database("pg_stat_database_tup_updated", 15, 1),  # 16
    **per_database("pg_stat_database_tup_deleted", 8, 0),  # 8
    **per_database("pg_stat_database_blks_hit", 700, 68),  # 768 blocks a second from shared buffers
    **per_database("pg_stat_database_blks_read", 250, 6),  # 256 from disk: 3/4 hit
}
REDIS_LABELS = 'job="redis-exporter", instance="redis-exporter:9121"'
REDIS = {
    f"redis_connected_clients{{{REDIS_LABELS}}}": gauge(42),
    f"redis_memory_used_bytes{{{REDIS_LABELS}}}": gauge(768 * MiB),
    f"redis_memory_max_bytes{{{REDIS_LABELS}}}": gauge(GiB),
    f"redis_commands_processed_total{{{REDIS_LABELS}}}": counter(2048),
    f"redis_keyspace_hits_total{{{REDIS_LABELS}}}": counter(96),
    f"redis_keyspace_misses_total{{{REDIS_LABELS}}}": counter(32),  # 96 of 128 lookups hit
    f'redis_db_keys{{{REDIS_LABELS}, db="db0"}}': gauge(1000),
    f'redis_db_keys{{{REDIS_LABELS}, db="db1"}}': gauge(24),
    f"redis_evicted_keys_total{{{REDIS_LABELS}}}": counter(4),
}

# --- GPUs: two GPUs as both exporters report them, each in its own units --------------------------
# The DCGM exporter: utilisation in percent, framebuffer in MiB (etc/default-counters.csv);
# profiling counters as ratios. The nvidia-smi exporter: "[%]" fields as *_ratio (x 0.01) and
# "[MiB]" fields as *_bytes (x 1048576) (internal/exporter/exporter.go). The same labels on both,
# with the pod that holds each GPU (the DCGM exporter's kubernetes mode), so one case serves both.
GPU0 = 'job="gpu-exporter", instance="gpu-node-1", gpu="0", uuid="GPU-5f3a0c2e", namespace="ml", pod="trainer-0"'
GPU1 = 'job="gpu-exporter", instance="gpu-node-1", gpu="1", uuid="GPU-9d41b7a6", namespace="ml", pod="trainer-1"'


def per_gpu(metric: str, first: float, second: float) -> dict[str, str]:
    return {f"{metric}{{{GPU0}}}": gauge(first), f"{metric}{{{GPU1}}}": gauge(second)}


GPUS = {
    **per_gpu("DCGM_FI_DEV_GPU_UTIL", 75, 25), **per_gpu("nvidia_smi_utilization_gpu_ratio", 0.75, 0.25),
    **per_gpu("DCGM_FI_DEV_FB_USED", 6144, 512), **per_gpu("nvidia_smi_memory_used_bytes", 6 * GiB, 512 * MiB),
    **per_gpu("DCGM_FI_DEV_GPU_TEMP", 65, 40), **per_gpu("nvidia_smi_temperature_gpu", 65, 40),
    **per_gpu("DCGM_FI_DEV_POWER_USAGE", 250.5, 70), **per_gpu("nvidia_smi_power_draw_watts", 250.5, 70),
    **per_gpu("DCGM_FI_PROF_SM_ACTIVE", 0.5, 0.125),
    **per_gpu("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", 0.25, 0),
}
BY_GPU = (f"{{{GPU0}}}", f"{{{GPU1}}}")
# ranker runs on two instances that disagree; the worse score is the model's.
DRIFT = {
    'ml_model_drift_score{job="ranker", instance="ranker-0:8000", model="ranker"}': gauge(0.125),
    'ml_model_drift_score{job="ranker", instance="ranker-1:8000", model="ranker"}': gauge(0.375),
    'ml_model_drift_score{job="classifier", instance="classifier-0:8000", model="classifier"}': gauge(0.0625),
}

# --- LLM and retrieval ----------------------------------------------------------------------------
LLM = 'job="llm-gateway", instance="llm-gateway-0:8000"'
LLM_TRAFFIC = {
    f'llm_requests_total{{{LLM}, model="gpt-4o", status="ok"}}': counter(2),
    f'llm_requests_total{{{LLM}, model="gpt-4o", status="error"}}': counter(0.5),
    f'llm_requests_total{{{LLM}, model="llama3", status="ok"}}': counter(1),
    f'llm_tokens_total{{{LLM}, model="gpt-4o", type="prompt"}}': counter(512),
    f'llm_tokens_total{{{LLM}, model="gpt-4o", type="completion"}}': counter(128),
    f'llm_tokens_total{{{LLM}, model="llama3", type="prompt"}}': counter(64),
    f'llm_tokens_total{{{LLM}, model="llama3", type="completion"}}': counter(32),
    # $0.0625 and $0.015625 a second: $225 and $56.25 an hour.
    f'llm_cost_usd_total{{{LLM}, model="gpt-4o"}}': counter(0.0625),
    f'llm_cost_usd_total{{{LLM}, model="llama3"}}': counter(0.015625),
    f"llm_cache_hits_total{{{LLM}}}": counter(3),
    f"llm_cache_requests_total{{{LLM}}}": counter(4),  # 3 of 4 calls from the cache
    f"rag_cache_hits_total{{{LLM}}}": counter(1),
    f"rag_cache_requests_total{{{LLM}}}": counter(8),  # 1 of 8 retrievals
}
# gpt-4o: 19 of 20 calls a second within 2.5 s; llama3: 19 of 20 within 10 s.
LLM_LATENCY = {
    **histogram("llm_request_duration_seconds_bucket", f'{LLM}, model="gpt-4o"',
                buckets(["0.5", "1", "2.5", "5", "10", "+Inf"], [2, 10, 19, 20, 20, 20])),
    **histogram("llm_request_duration_seconds_bucket", f'{LLM}, model="llama3"',
                buckets(["0.5", "1", "2.5", "5", "10", "+Inf"], [0, 1, 5, 12, 19, 20])),
}
# 20 retrievals a second: 10 within 0.1 s (the median), 19 within 0.5 s (the 95th percentile).
RETRIEVAL = histogram("rag_retrieval_duration_seconds_bucket", LLM,
                      buckets(["0.05", "0.1", "0.25", "0.5", "1", "+Inf"], [4, 10, 16, 19, 20, 20]))
# 20 documents a second: 2 score at most 0.5 (the 10th percentile), 10 at most 0.75 (the median).
SIMILARITY = histogram("rag_similarity_score_bucket", LLM,
                       buckets(["0.25", "0.5", "0.75", "0.9", "1", "+Inf"], [0, 2, 10, 18, 20, 20]))

# --- the stack itself -----------------------------------------------------------------------------
PROMETHEUS_0 = 'job="prometheus", instance="prometheus-0:9090"'
PROMETHEUS_1 = 'job="prometheus", instance="prometheus-1:9090"'
COLLECTOR = 'job="otel-collector", instance="otel-collector:8888"'
JAEGER = 'job="jaeger", instance="jaeger-0:8888"'


def rule_failures(prometheus: str, group: str) -> str:
    where = f"/etc/prometheus/rules/{group}.yml;{group}"
    return f'prometheus_rule_evaluation_failures_total{{{prometheus}, rule_group="{where}"}}'


def notify_failures(replica: int, integration: str, reason: str) -> str:
    return (f'alertmanager_notifications_failed_total{{job="alertmanager", instance="alertmanager-{replica}:9093", '
            f'integration="{integration}", reason="{reason}"}}')


def loki_requests(method: str, route: str, status: str) -> str:
    return (f'loki_request_duration_seconds_count{{job="loki", instance="loki-0:3100", method="{method}", '
            f'route="{route}", status_code="{status}", ws="false"}}')


STACK_SELF = {
    f"prometheus_tsdb_head_series{{{PROMETHEUS_0}}}": gauge(123456),
    f"prometheus_tsdb_head_series{{{PROMETHEUS_1}}}": gauge(120000),
    rule_failures(PROMETHEUS_0, "a"): counter(0.5),
    rule_failures(PROMETHEUS_0, "b"): counter(0.25),
    rule_failures(PROMETHEUS_1, "a"): counter(0),
    f"prometheus_notifications_dropped_total{{{PROMETHEUS_0}}}": counter(0.125),
    f"prometheus_notifications_dropped_total{{{PROMETHEUS_1}}}": counter(0),
    notify_failures(0, "slack", "clientError"): counter(0.25),
    notify_failures(1, "slack", "serverError"): counter(0.125),
    notify_failures(0, "pagerduty", "other"): counter(0),
    notify_failures(2, "webhook", "other"): counter(0.0625),
    'loki_distributor_lines_received_total{job="loki", instance="loki-0:3100", tenant="fake"}': counter(96),
    'loki_distributor_lines_received_total{job="loki", instance="loki-0:3100", tenant="team-a"}': counter(32),
    loki_requests("POST", "loki_api_v1_push", "500"): counter(0.5),
    loki_requests("POST", "loki_api_v1_push", "503"): counter(0.25),
    loki_requests("POST", "loki_api_v1_push", "204"): counter(50),
    loki_requests("GET", "loki_api_v1_query_range", "500"): counter(0.125),
    loki_requests("GET", "loki_api_v1_query_range", "429"): counter(1),
    # The collector accepts 64 + 32 spans a second and refuses 2; Jaeger accepts 48 of its own.
    f'otelcol_receiver_accepted_spans{{{COLLECTOR}, receiver="otlp", transport="grpc"}}': counter(64),
    f'otelcol_receiver_accepted_spans{{{COLLECTOR}, receiver="otlp", transport="http"}}': counter(32),
    f'otelcol_receiver_refused_spans{{{COLLECTOR}, receiver="otlp", transport="grpc"}}': counter(2),
    f'otelcol_receiver_accepted_spans{{{JAEGER}, receiver="otlp", transport="grpc"}}': counter(48),
    f'otelcol_receiver_refused_spans{{{JAEGER}, receiver="otlp", transport="grpc"}}': counter(0),
    f'otelcol_exporter_send_failed_spans{{{COLLECTOR}, exporter="otlp/jaeger"}}': counter(1),
    f'otelcol_exporter_send_failed_log_records{{{COLLECTOR}, exporter="otlphttp/loki"}}': counter(0.5),
    f'otelcol_exporter_send_failed_metric_points{{{COLLECTOR}, exporter="prometheus"}}': counter(0.25),
}


def alertmanagers(replicas: int) -> dict[str, str]:
    """Each replica holds the same alerts (Prometheus sends every alert to every replica):
    4 firing, 1 silenced, none waiting."""
    return {f'alertmanager_alerts{{job="alertmanager", instance="alertmanager-{i}:9093", state="{state}"}}': gauge(n)
            for i in range(replicas) for state, n in (("active", 4), ("suppressed", 1), ("unprocessed", 0))}


ALERT_STATES = {ANY: {'{state="active"}': 4, '{state="suppressed"}': 1, '{state="unprocessed"}': 0}}

# --- Kubernetes ------------------------------------------------------------------------------------
# Three namespaces: shop and payments are the ones chosen (DASHBOARD_VARIABLES), kube-system is
# not. Every series of the namespace panels also exists in kube-system, so a panel that ignores
# the choice shows it.
KSM = 'job="kube-state-metrics", instance="10.0.0.5:8080"'
STATUSES = ("true", "false", "unknown")


def node_conditions(node: str, **conditions: str) -> dict[str, str]:
    """kube-state-metrics' three series per condition: 1 on the status the node reports."""
    return {f'kube_node_status_condition{{{KSM}, node="{node}", condition="{c}", status="{s}"}}': gauge(s == status)
            for c, status in conditions.items() for s in STATUSES}


# node-a and node-d are ready; node-b is not, node-c stopped reporting (unknown). Memory pressure
# on node-b; disk pressure on node-b and node-d; node-c's pressures are unknown, not true.
NODES = {
    **node_conditions("node-a", Ready="true", MemoryPressure="false", DiskPressure="false", PIDPressure="false"),
    **node_conditions("node-b", Ready="false", MemoryPressure="true", DiskPressure="true", PIDPressure="false"),
    **node_conditions("node-c", Ready="unknown", MemoryPressure="unknown", DiskPressure="unknown",
                      PIDPressure="unknown"),
    **node_conditions("node-d", Ready="true", MemoryPressure="false", DiskPressure="true", PIDPressure="false"),
}
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


def pod_phase(namespace: str, pod: str, phase: str) -> dict[str, str]:
    return {f'kube_pod_status_phase{{{KSM}, namespace="{namespace}", pod="{pod}", uid="{pod}-uid", phase="{p}"}}':
            gauge(p == phase) for p in PHASES}


PODS = {
    **pod_phase("shop", "web-1", "Running"), **pod_phase("shop", "web-2", "Running"),
    **pod_phase("shop", "web-3", "Pending"), **pod_phase("shop", "migrate-1", "Succeeded"),
    **pod_phase("payments", "api-1", "Pending"), **pod_phase("payments", "batch-1", "Failed"),
    **pod_phase("kube-system", "coredns-1", "Running"),
}


def container(namespace: str, pod: str, name: str) -> str:
    return f'{KSM}, namespace="{namespace}", pod="{pod}", uid="{pod}-uid", container="{name}"'


def waiting(namespace: str, pod: str, name: str, reason: str) -> dict[str, str]:
    """kube-state-metrics writes a series only for a container that waits, 1, with its reason."""
    return {f'kube_pod_container_status_waiting_reason{{{container(namespace, pod, name)}, reason="{reason}"}}': gauge(1)}


def restarts(namespace: str, pod: str, name: str, per_minute: float) -> dict[str, str]:
    return {f"kube_pod_container_status_restarts_total{{{container(namespace, pod, name)}}}": counter(per_minute / 60)}


# Restarts an hour: shop 60 (web-1/app) + 120 (web-2/app) + 60 (web-2/sidecar), payments 0,
# kube-system 180. web-2's app and kube-system's coredns crash-loop; payments' api waits for its
# image, which is no crash. At 10 minutes web-2's app has restarted 20 times.
RESTARTS = {
    **restarts("shop", "web-1", "app", 1), **restarts("shop", "web-2", "app", 2),
    **restarts("shop", "web-2", "sidecar", 1), **restarts("payments", "api-1", "api", 0),
    **restarts("kube-system", "coredns-1", "coredns", 3),
    **waiting("shop", "web-2", "app", "CrashLoopBackOff"), **waiting("payments", "api-1", "api", "ContainerCreating"),
    **waiting("kube-system", "coredns-1", "coredns", "CrashLoopBackOff"),
}
NO_CRASH_LOOP = {**restarts("shop", "web-1", "app", 1), **waiting("payments", "api-1", "api", "ContainerCreating")}


def workload(metric: str, label: str, values: dict[tuple[str, str], float]) -> dict[str, str]:
    return {f'{metric}{{{KSM}, namespace="{ns}", {label}="{name}"}}': gauge(v) for (ns, name), v in values.items()}


# shop/web wants 3 and has 3; payments/api wants 2 and has 1 (a rollout stuck); shop/db wants 3
# and has 2; payments/agent runs on all 4 nodes. kube-system's are not chosen.
WORKLOADS = {
    **workload("kube_deployment_spec_replicas", "deployment",
               {("shop", "web"): 3, ("payments", "api"): 2, ("kube-system", "coredns"): 2}),
    **workload("kube_deployment_status_replicas_available", "deployment",
               {("shop", "web"): 3, ("payments", "api"): 1, ("kube-system", "coredns"): 2}),
    **workload("kube_statefulset_replicas", "statefulset", {("shop", "db"): 3, ("kube-system", "etcd"): 1}),
    **workload("kube_statefulset_status_replicas_available", "statefulset", {("shop", "db"): 2, ("kube-system", "etcd"): 1}),
    **workload("kube_daemonset_status_desired_number_scheduled", "daemonset",
               {("payments", "agent"): 4, ("kube-system", "kube-proxy"): 4}),
    **workload("kube_daemonset_status_number_available", "daemonset",
               {("payments", "agent"): 4, ("kube-system", "kube-proxy"): 3}),
}


def job_failed(namespace: str, job: str, status: str) -> dict[str, str]:
    return {f'kube_job_failed{{{KSM}, namespace="{namespace}", job_name="{job}", condition="{s}"}}': gauge(s == status)
            for s in STATUSES}


# shop/migrate gave up; payments/report's Failed condition is false; kube-system/backup failed,
# outside the namespaces chosen.
JOBS = {**job_failed("shop", "migrate", "true"), **job_failed("payments", "report", "false"),
        **job_failed("kube-system", "backup", "true")}


def apiserver(instance: int, verb: str, code: str, per_second: float) -> dict[str, str]:
    return {(f'apiserver_request_total{{job="apiserver", instance="10.0.0.{instance}:6443", verb="{verb}", '
             f'code="{code}", group="", version="v1", resource="pods", subresource="", scope="namespace", '
             f'component="apiserver", dry_run=""}}'): counter(per_second)}


# Two API servers, 20 requests a second: GET 10 (0.5 of them 500), LIST 4 (1 of them 429, no
# server error), WATCH 1, POST 5 (0.5 of them 503). 1 of the 20 a second is a 5xx.
API_REQUESTS = {
    **apiserver(1, "GET", "200", 4.5), **apiserver(2, "GET", "200", 5), **apiserver(1, "GET", "500", 0.5),
    **apiserver(1, "LIST", "200", 3), **apiserver(2, "LIST", "429", 1), **apiserver(1, "WATCH", "200", 1),
    **apiserver(1, "POST", "201", 4.5), **apiserver(2, "POST", "503", 0.5),
}
API_BOUNDS = ["0.05", "0.1", "0.2", "0.4", "1", "+Inf"]


def api_latency(instance: int, verb: str, cumulative: list[float]) -> dict[str, str]:
    labels = f'job="apiserver", instance="10.0.0.{instance}:6443", verb="{verb}", resource="pods", component="apiserver"'
    return histogram("apiserver_request_duration_seconds_bucket", labels, buckets(API_BOUNDS, cumulative))


# GET: 99 of 100 a second (over both servers) within 0.1 s; LIST: 99 of 100 within 0.4 s. WATCH
# and CONNECT last as long as their streams stay open: all beyond a second.
API_LATENCY = {
    **api_latency(1, "GET", [25, 49.5, 50, 50, 50, 50]), **api_latency(2, "GET", [25, 49.5, 50, 50, 50, 50]),
    **api_latency(1, "LIST", [10, 40, 80, 99, 100, 100]),
    **api_latency(1, "WATCH", [0, 0, 0, 0, 0, 10]), **api_latency(2, "CONNECT", [0, 0, 0, 0, 0, 2]),
}


def dns(instance: int, metric: str, labels: str, per_second: float) -> dict[str, str]:
    return {(f'{metric}{{job="coredns", instance="coredns-{instance}", server="dns://:53", zone=".", view="", '
             f'{labels}}}'): counter(per_second)}


# A queries: 30 a second over UDP and 10 over TCP; AAAA 20. Responses: 48 NOERROR, 14 NXDOMAIN
# (a name that does not exist is an answer, not a failure) and 2 SERVFAIL a second, over two pods.
COREDNS = {
    **dns(1, "coredns_dns_requests_total", 'proto="udp", family="1", type="A"', 30),
    **dns(2, "coredns_dns_requests_total", 'proto="tcp", family="1", type="A"', 10),
    **dns(1, "coredns_dns_requests_total", 'proto="udp", family="1", type="AAAA"', 20),
    **dns(1, "coredns_dns_responses_total", 'rcode="NOERROR", plugin="kubernetes"', 48),
    **dns(1, "coredns_dns_responses_total", 'rcode="NXDOMAIN", plugin="kubernetes"', 14),
    **dns(1, "coredns_dns_responses_total", 'rcode="SERVFAIL", plugin="forward"', 1.5),
    **dns(2, "coredns_dns_responses_total", 'rcode="SERVFAIL", plugin="forward"', 0.5),
}


def kubelet_cadvisor(metric: str, namespace: str, pod: str, name: str, cgroup: str) -> str:
    return (f'{metric}{{job="cadvisor", instance="node-a", id="{cgroup}", image="", name="", namespace="{namespace}", '
            f'pod="{pod}", container="{name}"}}')


def containers(metric: str, kind, values: dict[tuple[str, str, str], float]) -> dict[str, str]:
    """The kubelet's cAdvisor series: a pod's cgroup (container ""), its containers and its pause
    container (POD); the node's own cgroups, outside any pod, carry no namespace."""
    found = {}
    for (namespace, pod, name), value in values.items():
        cgroup = "/" if not pod else f"/kubepods/{pod}" + (f"/{name}" if name else "")
        found[kubelet_cadvisor(metric, namespace, pod, name, cgroup)] = kind(value)
    return found


# shop's web-1 runs app (0.5 cores) and sidecar (0.125); its pod cgroup holds both (0.625) and its
# pause container a little. payments' api-1 uses 0.25 cores. Chosen: shop 0.625, payments 0.25.
POD_CPU = containers("container_cpu_usage_seconds_total", counter, {
    ("shop", "web-1", "app"): 0.5, ("shop", "web-1", "sidecar"): 0.125, ("shop", "web-1", ""): 0.625,
    ("shop", "web-1", "POD"): 0.015625, ("payments", "api-1", "api"): 0.25, ("payments", "api-1", ""): 0.25,
    ("kube-system", "coredns-1", "coredns"): 0.125, ("", "", ""): 4,
})
# Working sets: shop 256 + 64 MiB, payments 128 MiB.
POD_MEMORY = containers("container_memory_working_set_bytes", gauge, {
    ("shop", "web-1", "app"): 256 * MiB, ("shop", "web-1", "sidecar"): 64 * MiB, ("shop", "web-1", ""): 320 * MiB,
    ("shop", "web-1", "POD"): MiB, ("payments", "api-1", "api"): 128 * MiB, ("payments", "api-1", ""): 128 * MiB,
    ("kube-system", "coredns-1", "coredns"): 32 * MiB, ("", "", ""): 8 * GiB,
})


def claim(node: str, namespace: str, name: str) -> str:
    return f'job="kubelet", instance="{node}", namespace="{namespace}", persistentvolumeclaim="{name}"'


def volume(namespace: str, name: str, nodes=("node-a",), **values: str) -> dict[str, str]:
    return {f"kubelet_volume_stats_{what}{{{claim(node, namespace, name)}}}": series
            for node in nodes for what, series in values.items()}


def shrinking(at_eval: float, per_minute: float) -> str:
    """A gauge falling by `per_minute` every minute, at `at_eval` when promtool evaluates (EVAL)."""
    start = at_eval + per_minute * 10
    return f"{num(start)}-{num(per_minute)}x{SAMPLES}"


# shop's data-db-0 (mounted on two nodes, reported by both kubelets) has 25 of 100 GiB available
# (70 GiB used: the filesystem keeps 5 back), and loses 1 GiB a minute: full in 25 minutes. A
# quarter of its inodes are used. payments' reports has 7.5 of 10 GiB available, steady, and
# three quarters of its inodes used. kube-system's are not chosen.
VOLUMES = {
    **volume("shop", "data-db-0", ("node-a", "node-b"), capacity_bytes=gauge(100 * GiB),
             available_bytes=shrinking(25 * GiB, GiB), used_bytes=gauge(70 * GiB),
             inodes=gauge(4096), inodes_used=gauge(1024), inodes_free=gauge(3072)),
    **volume("payments", "reports", capacity_bytes=gauge(10 * GiB), available_bytes=gauge(7.5 * GiB),
             used_bytes=gauge(2.5 * GiB), inodes=gauge(2048), inodes_used=gauge(1536), inodes_free=gauge(512)),
    **volume("kube-system", "etcd", capacity_bytes=gauge(GiB), available_bytes=shrinking(GiB / 2, MiB),
             used_bytes=gauge(GiB / 2), inodes=gauge(1024), inodes_used=gauge(1000), inodes_free=gauge(24)),
}
SHOP_CLAIM, PAYMENTS_CLAIM = ('{namespace="shop", persistentvolumeclaim="data-db-0"}',
                              '{namespace="payments", persistentvolumeclaim="reports"}')

# --- service level objectives: what the rules of components/alerting/slos.py record -------------
# api/availability (a budget of 1/64, so every burn rate is exact in binary) is the objective
# chosen; api/latency and web/availability must stay out of its panels.
API_AVAILABILITY = 'service="api", slo="availability"'
SLO_WINDOW_RATIOS = {"5m": 20, "30m": 10, "1h": 5, "2h": 4, "6h": 3, "1d": 2, "3d": 1}  # burn rates


def objective(service: str, slo: str, target: float, window_ratio: float, remaining: float) -> dict[str, str]:
    labels = f'service="{service}", slo="{slo}"'
    return {f"slo:objective:ratio{{{labels}}}": gauge(target),
            f"slo:sli_error:ratio_window{{{labels}}}": gauge(window_ratio),
            f"slo:error_budget:remaining_ratio{{{labels}}}": gauge(remaining)}


def burn_alert(service: str, slo: str, severity: str, state: str = "firing") -> str:
    return (f'ALERTS{{alertname="ErrorBudgetBurn", alertstate="{state}", severity="{severity}", '
            f'service="{service}", slo="{slo}"}}')


OBJECTIVES = {
    **objective("api", "availability", 1 - 1 / 64, 1 / 128, 0.5),
    **objective("api", "latency", 0.99, 0.02, -1),
    **objective("web", "availability", 0.99, 0.0025, 0.75),
    **{f"slo:sli_error:ratio_rate{w}{{{API_AVAILABILITY}}}": gauge(burn / 64) for w, burn in SLO_WINDOW_RATIOS.items()},
    **{f'slo:sli_error:ratio_rate{w}{{service="api", slo="latency"}}': gauge(0.5) for w in SLO_WINDOW_RATIOS},
    burn_alert("api", "availability", "critical"): gauge(1),
    burn_alert("api", "availability", "warning"): gauge(1),
    burn_alert("api", "latency", "warning", "pending"): gauge(1),
    burn_alert("web", "availability", "warning"): gauge(1),
}


# --- the cases ------------------------------------------------------------------------------------
CASES: dict[str, Case] = {
    "targets up": Case("4 of 5 targets answer", "count", TARGETS, {ANY: {"": 4}}),
    "targets down": Case("1 of 5 targets fails its scrape", "count", TARGETS, {ANY: {"": 1}}),
    "no target down": Case("every target answers: 0, not an empty panel", "count", ALL_UP, {ANY: {"": 0}}),
    "health by job": Case("a job is down as soon as one of its targets is", "1 up, 0 down", TARGETS,
                          {ANY: {'{job="api"}': 0, '{job="web"}': 1, '{job="prometheus"}': 1}}),
    "targets up by job": Case("answering targets per job", "count", TARGETS,
                              {ANY: {'{job="api"}': 1, '{job="web"}': 1, '{job="prometheus"}': 2}}),
    "request rate": Case("6 requests a second in all", "requests per second", TRAFFIC, {ANY: {"": 6}}),
    "request rate by job": Case("api 4/s, web 2/s", "requests per second", TRAFFIC,
                                {ANY: {'{job="api"}': 4, '{job="web"}': 2}}),
    "request rate by endpoint": Case("/checkout 3/s over two instances, /search 1/s, / 2/s", "requests per second",
                                     TRAFFIC,
                                     {ANY: {'{endpoint="/checkout"}': 3, '{endpoint="/search"}': 1, '{endpoint="/"}': 2}}),
    "request rate by status": Case("by status code, 4xx and 5xx apart", "requests per second", TRAFFIC,
                                   {ANY: {'{status="200"}': 4, '{status="404"}': 0.5, '{status="500"}': 0.5,
                                          '{status="503"}': 1}}),
    "error ratio": Case("1.5 of 6 requests a second end in a 5xx (a 404 is no server error)", "ratio", TRAFFIC,
                        {ANY: {"": 0.25}}),
    "error ratio by job": Case("api: 0.5 of 4 a second are 5xx; web: 1 of 2", "ratio", TRAFFIC,
                               {ANY: {'{job="api"}': 0.125, '{job="web"}': 0.5}}),
    "p95 by endpoint": Case("95% of /checkout within 1 s, of /search within 0.25 s", "seconds", LATENCY,
                            {ANY: {'{endpoint="/checkout"}': 1, '{endpoint="/search"}': 0.25}}),
    "latency percentiles": Case("all requests: half within 0.1 s, 95% within 1 s, 99% within 2.5 s", "seconds", LATENCY,
                                {"p50": {"": 0.1}, "p95": {"": 1}, "p99": {"": 2.5}}),
    "ten slowest endpoints": Case("eleven endpoints: the ten with the highest p95, not the fastest", "seconds",
                                  ELEVEN_ENDPOINTS,
                                  {ANY: {f'{{endpoint="/op{i:02d}"}}': float(TOP_BOUNDS[i]) for i in range(1, 11)}}),
    "requests in progress": Case("api 3 + 2 on two instances, web 7", "count",
                                 {'http_requests_in_progress{job="api", instance="api-0:8000"}': gauge(3),
                                  'http_requests_in_progress{job="api", instance="api-1:8000"}': gauge(2),
                                  'http_requests_in_progress{job="web", instance="web-0:8000"}': gauge(7)},
                                 {ANY: {'{job="api"}': 5, '{job="web"}': 7}}),
    "uptime": Case("at 600 s, a process started at 120 s has run 480 s", "seconds",
                   {f"process_start_time_seconds{{{PROMETHEUS_0}}}": gauge(120),
                    'process_start_time_seconds{job="api", instance="api-0:8000"}': gauge(360)},
                   {ANY: {f"{{{PROMETHEUS_0}}}": 480, '{job="api", instance="api-0:8000"}': 240}}),
    "uptime, replicas": Case(
        "prod's two Prometheus replicas, started at 120 s and 540 s, each with its own line", "seconds",
        {f"process_start_time_seconds{{{PROMETHEUS_0}}}": gauge(120),
         f"process_start_time_seconds{{{PROMETHEUS_1}}}": gauge(540)},
        {ANY: {f"{{{PROMETHEUS_0}}}": 480, f"{{{PROMETHEUS_1}}}": 60}}),
    "host cpu": Case("node-a's CPUs idle a half and a quarter of the time; node-b idles", "ratio", CPU,
                     {ANY: {'{instance="node-a"}': 0.625, '{instance="node-b"}': 0}}),
    "host memory": Case("node-a uses 6 of 8 GiB, node-b 1 of 4 GiB", "ratio", MEMORY,
                        {ANY: {f"{{{NODE_A}}}": 0.75, f"{{{NODE_B}}}": 0.25}}),
    "host disk": Case("/ is 3/4 full, /data 1/4; tmpfs, overlay and squashfs are no disks", "ratio", DISK,
                      {ANY: {f"{{{ROOT_FS}}}": 0.75, f"{{{DATA_FS}}}": 0.25}}),
    "host network": Case("bytes in (+) and out (-) on the NICs, without loopback", "bytes per second", NETWORK,
                         {"{{instance}} in": {'{instance="node-a"}': 1536, '{instance="node-b"}': 64},
                          "{{instance}} out": {'{instance="node-a"}': -384, '{instance="node-b"}': -32}}),
    "host network with containers": Case(
        "a container's traffic crosses the NIC once, however many virtual devices it passes", "bytes per second",
        CONTAINER_HOST_NETWORK, {"{{instance}} in": {'{instance="node-a"}': 1024},
                                 "{{instance}} out": {'{instance="node-a"}': -256}}),
    "container cpu": Case("api uses 1.5 cores, worker 0.25; unnamed cgroups are no containers", "CPU cores",
                          CONTAINER_CPU, {ANY: {'{name="api"}': 1.5, '{name="worker"}': 0.25}}),
    "container memory": Case("working sets of 256 and 64 MiB", "bytes", CONTAINER_MEMORY,
                             {ANY: {'{name="api"}': 256 * MiB, '{name="worker"}': 64 * MiB}}),
    "container disk": Case("api uses 1.5 GiB over two devices", "bytes", CONTAINER_DISK,
                           {ANY: {'{name="api"}': 1536 * MiB, '{name="worker"}': 4096}}),
    "container network": Case("bytes in (+) and out (-) per container", "bytes per second", CONTAINER_NETWORK,
                              {"{{name}} in": {'{name="api"}': 3072, '{name="worker"}': 64},
                               "{{name}} out": {'{name="api"}': -512, '{name="worker"}': -32}}),
    "postgres connections": Case("15 backends over two databases, a limit of 100", "count", POSTGRES,
                                 {"in use": {"": 15}, "max": {"": 100}}),
    "postgres transactions": Case("48 commits and 1.5 rollbacks a second", "events per second", POSTGRES,
                                  {"commits": {"": 48}, "rollbacks": {"": 1.5}}),
    "postgres size": Case("app holds 12 GiB, postgres 8 MiB", "bytes", POSTGRES,
                          {ANY: {f"{{{APP_DB}}}": 12 * GiB, f"{{{ADMIN_DB}}}": 8 * MiB}}),
    "postgres tuples": Case("rows a second by operation", "events per second", POSTGRES,
                            {"fetched": {"": 1024}, "inserted": {"": 32}, "updated": {"": 16}, "deleted": {"": 8}}),
    "postgres cache hits": Case("768 of 1024 block reads a second come from shared buffers", "ratio", POSTGRES,
                                {ANY: {"": 0.75}}),
    "redis clients": Case("42 clients", "count", REDIS, {ANY: {"": 42}}),
    "redis memory": Case("768 MiB used of 1 GiB", "bytes", REDIS, {"used": {"": 768 * MiB}, "max": {"": GiB}}),
    "redis commands": Case("2048 commands a second", "events per second", REDIS, {ANY: {"": 2048}}),
    "redis hits": Case("96 of 128 lookups a second find their key", "ratio", REDIS, {ANY: {"": 0.75}}),
    "redis keys": Case("1000 keys in db0, 24 in db1", "count", REDIS, {ANY: {'{db="db0"}': 1000, '{db="db1"}': 24}}),
    "redis evictions": Case("4 keys evicted a second", "events per second", REDIS, {ANY: {"": 4}}),
    "gpu utilisation": Case("GPU 0 busy 75% of the time, GPU 1 25%", "ratio", GPUS, {ANY: dict(zip(BY_GPU, (0.75, 0.25)))}),
    "gpu memory": Case("GPU 0 holds 6 GiB, GPU 1 512 MiB", "bytes", GPUS, {ANY: dict(zip(BY_GPU, (6 * GiB, 512 * MiB)))}),
    "gpu temperature": Case("65 and 40 degrees", "degrees Celsius", GPUS, {ANY: dict(zip(BY_GPU, (65, 40)))}),
    "gpu power": Case("250.5 and 70 W", "watts", GPUS, {ANY: dict(zip(BY_GPU, (250.5, 70)))}),
    "gpu sm activity": Case("SMs busy half and an eighth of the cycles", "ratio", GPUS, {ANY: dict(zip(BY_GPU, (0.5, 0.125)))}),
    "gpu tensor activity": Case("tensor pipes busy a quarter of the cycles, and idle", "ratio", GPUS,
                                {ANY: dict(zip(BY_GPU, (0.25, 0)))}),
    "model drift": Case("a model's score is its worst instance's", "score", DRIFT,
                        {ANY: {'{model="ranker"}': 0.375, '{model="classifier"}': 0.0625}}),
    "llm requests": Case("gpt-4o 2.5 calls a second (errors too), llama3 1", "requests per second", LLM_TRAFFIC,
                         {ANY: {'{model="gpt-4o"}': 2.5, '{model="llama3"}': 1}}),
    "llm p95": Case("95% of gpt-4o calls within 2.5 s, of llama3 within 10 s", "seconds", LLM_LATENCY,
                    {ANY: {'{model="gpt-4o"}': 2.5, '{model="llama3"}': 10}}),
    "llm tokens": Case("tokens a second by model and type", "events per second", LLM_TRAFFIC,
                       {ANY: {'{model="gpt-4o", type="prompt"}': 512, '{model="gpt-4o", type="completion"}': 128,
                              '{model="llama3", type="prompt"}': 64, '{model="llama3", type="completion"}': 32}}),
    "llm cost": Case("$0.0625 a second is $225 an hour", "US dollars per hour", LLM_TRAFFIC,
                     {ANY: {'{model="gpt-4o"}': 225, '{model="llama3"}': 56.25}}),
    "llm cache hits": Case("3 of 4 calls answered from the cache", "ratio", LLM_TRAFFIC, {ANY: {"": 0.75}}),
    "rag cache hits": Case("1 of 8 retrievals answered from the cache", "ratio", LLM_TRAFFIC, {ANY: {"": 0.125}}),
    "retrieval latency": Case("half the retrievals within 0.1 s, 95% within 0.5 s", "seconds", RETRIEVAL,
                              {"p50": {"": 0.1}, "p95": {"": 0.5}}),
    "similarity": Case("half the documents score at most 0.75, a tenth at most 0.5", "score", SIMILARITY,
                       {"median": {"": 0.75}, "p10": {"": 0.5}}),
    "head series": Case("each Prometheus's series in memory", "count", STACK_SELF,
                        {ANY: {f"{{{PROMETHEUS_0}}}": 123456, f"{{{PROMETHEUS_1}}}": 120000}}),
    "rule failures": Case("0.75 failed evaluations a second on prometheus-0, over two groups", "events per second",
                          STACK_SELF, {ANY: {'{instance="prometheus-0:9090"}': 0.75, '{instance="prometheus-1:9090"}': 0}}),
    "notifications dropped": Case("an alert dropped every 8 s on prometheus-0", "events per second", STACK_SELF,
                                  {ANY: {'{instance="prometheus-0:9090"}': 0.125, '{instance="prometheus-1:9090"}': 0}}),
    "notifications failed": Case("failed notifications by integration, over replicas and reasons", "events per second",
                                 STACK_SELF, {ANY: {'{integration="slack"}': 0.375, '{integration="pagerduty"}': 0,
                                                    '{integration="webhook"}': 0.0625}}),
    "alerts, one replica": Case("one Alertmanager holds 4 firing alerts and 1 silenced", "count", alertmanagers(1),
                                ALERT_STATES),
    "alerts, three replicas": Case(
        "a cluster of three (prod) holds the same 4 firing alerts and 1 silenced", "count", alertmanagers(3),
        ALERT_STATES),
    "loki lines": Case("128 lines a second over two tenants", "events per second", STACK_SELF, {ANY: {"": 128}}),
    "loki errors": Case("5xx answers a second by route; 2xx and 429 are no server errors", "requests per second",
                        STACK_SELF, {ANY: {'{route="loki_api_v1_push"}': 0.75, '{route="loki_api_v1_query_range"}': 0.125}}),
    "collector spans": Case("the collector accepts 96 spans a second, refuses 2; Jaeger's are its own",
                            "events per second", STACK_SELF, {"accepted": {"": 96}, "refused": {"": 2}}),
    "collector export failures": Case("failures a second by signal", "events per second", STACK_SELF,
                                      {"spans": {"": 1}, "log records": {"": 0.5}, "metric points": {"": 0.25}}),
    "jaeger spans": Case("Jaeger accepts 48 spans a second; the collector's are not Jaeger's", "events per second",
                         STACK_SELF, {ANY: {"": 48}}),
    "nodes ready": Case("node-a and node-d are ready", "count", NODES, {ANY: {"": 2}}),
    "nodes not ready": Case("node-b is not ready, node-c unknown: neither is ready", "count", NODES, {ANY: {"": 2}}),
    "node conditions": Case("nodes under each condition that is true; unknown is not true", "count", NODES,
                            {ANY: {'{condition="MemoryPressure"}': 1, '{condition="DiskPressure"}': 2,
                                   '{condition="PIDPressure"}': 0}}),
    "pods pending": Case("shop/web-3 and payments/api-1 wait to run", "count", PODS, {ANY: {"": 2}}),
    "pods by phase": Case("pods in each phase, across namespaces", "count", PODS,
                          {ANY: {'{phase="Running"}': 3, '{phase="Pending"}': 2, '{phase="Succeeded"}': 1,
                                 '{phase="Failed"}': 1, '{phase="Unknown"}': 0}}),
    "crash loops": Case("two containers in CrashLoopBackOff, in any namespace; waiting for an image is no crash",
                        "count", RESTARTS, {ANY: {"": 2}}),
    "no crash loop": Case("no container crash-loops: 0, not an empty panel", "count", NO_CRASH_LOOP, {ANY: {"": 0}}),
    "api requests": Case("requests a second by verb, over both API servers and every code", "requests per second",
                         API_REQUESTS, {ANY: {'{verb="GET"}': 10, '{verb="LIST"}': 4, '{verb="WATCH"}': 1,
                                              '{verb="POST"}': 5}}),
    "api errors": Case("1 of 20 requests a second is a 5xx; a 429 is no server error", "ratio", API_REQUESTS,
                       {ANY: {"": 0.05}}),
    "api p99": Case("99% of GETs within 0.1 s, of LISTs within 0.4 s; streams (WATCH, CONNECT) left out", "seconds",
                    API_LATENCY, {ANY: {'{verb="GET"}': 0.1, '{verb="LIST"}': 0.4}}),
    "dns requests": Case("DNS queries a second by record type, over both protocols and pods", "requests per second",
                         COREDNS, {ANY: {'{type="A"}': 40, '{type="AAAA"}': 20}}),
    "dns servfail": Case("2 of 64 responses a second are SERVFAIL; NXDOMAIN is an answer", "ratio", COREDNS,
                         {ANY: {"": 0.03125}}),
    "namespace cpu": Case("cores of the chosen namespaces' containers: no pod cgroup, pause container or "
                          "kube-system", "CPU cores", POD_CPU, {ANY: {'{namespace="shop"}': 0.625,
                                                                       '{namespace="payments"}': 0.25}}),
    "namespace memory": Case("working sets of the chosen namespaces' containers, each counted once", "bytes",
                             POD_MEMORY, {ANY: {'{namespace="shop"}': 320 * MiB, '{namespace="payments"}': 128 * MiB}}),
    "namespace restarts": Case("restarts an hour in the chosen namespaces", "events per hour", RESTARTS,
                               {ANY: {'{namespace="shop"}': 240, '{namespace="payments"}': 0}}),
    "namespace running pods": Case("running pods in the chosen namespaces; payments runs none", "count", PODS,
                                   {ANY: {'{namespace="shop"}': 2, '{namespace="payments"}': 0}}),
    "deployments": Case("shop/web has its 3 pods; payments/api 1 of 2", "count", WORKLOADS, {
        "desired": {'{namespace="shop", deployment="web"}': 3, '{namespace="payments", deployment="api"}': 2},
        "available": {'{namespace="shop", deployment="web"}': 3, '{namespace="payments", deployment="api"}': 1}}),
    "statefulsets": Case("shop/db has 2 of its 3 pods", "count", WORKLOADS, {
        "desired": {'{namespace="shop", statefulset="db"}': 3},
        "available": {'{namespace="shop", statefulset="db"}': 2}}),
    "daemonsets": Case("payments/agent runs on all 4 nodes", "count", WORKLOADS, {
        "desired": {'{namespace="payments", daemonset="agent"}': 4},
        "available": {'{namespace="payments", daemonset="agent"}': 4}}),
    "crash-looping containers": Case("shop/web-2's app crash-loops, 20 restarts so far; kube-system is not chosen",
                                     "count", RESTARTS,
                                     {ANY: {'{namespace="shop", pod="web-2", container="app"}': 20}}),
    "pod restarts": Case("restarts an hour of each pod that restarts, in the chosen namespaces", "events per hour",
                         RESTARTS, {ANY: {'{namespace="shop", pod="web-1"}': 60, '{namespace="shop", pod="web-2"}': 180}}),
    "failed jobs": Case("shop/migrate gave up; payments/report did not fail", "count", JOBS,
                        {ANY: {'{namespace="shop", job_name="migrate"}': 1}}),
    "volume used": Case("data-db-0 has a quarter of its space available, reports three quarters", "ratio", VOLUMES,
                        {ANY: {SHOP_CLAIM: 0.75, PAYMENTS_CLAIM: 0.25}}),
    "volume inodes": Case("a quarter of data-db-0's inodes used, three quarters of reports'", "ratio", VOLUMES,
                          {ANY: {SHOP_CLAIM: 0.25, PAYMENTS_CLAIM: 0.75}}),
    "volume free": Case("25 GiB available in data-db-0, 7.5 GiB in reports", "bytes", VOLUMES,
                        {ANY: {SHOP_CLAIM: 25 * GiB, PAYMENTS_CLAIM: 7.5 * GiB}}),
    "volume full in": Case("data-db-0 loses 1 GiB a minute with 25 GiB left: full in 25 minutes; reports is steady",
                           "seconds", VOLUMES, {ANY: {SHOP_CLAIM: 25 * 60}}),
    "objectives paging": Case("api/availability's page fires", "count", OBJECTIVES, {ANY: {"": 1}}),
    "objectives with a ticket": Case("two tickets fire (api/availability's, web's); api/latency's is pending",
                                     "count", OBJECTIVES, {ANY: {"": 2}}),
    "budget by objective": Case("every objective's budget, overspent api/latency's too", "ratio", OBJECTIVES,
                                {ANY: {f"{{{API_AVAILABILITY}}}": 0.5, '{service="api", slo="latency"}': -1,
                                       '{service="web", slo="availability"}': 0.75}}),
    "service level": Case("1/128 of api's requests bad over the window: 127/128 good", "ratio", OBJECTIVES,
                          {ANY: {f"{{{API_AVAILABILITY}}}": 127 / 128}}),
    "objective": Case("api/availability asks for 63/64 good", "ratio", OBJECTIVES,
                      {ANY: {f"{{{API_AVAILABILITY}}}": 63 / 64}}),
    "budget remaining": Case("half of api/availability's budget is left", "ratio", OBJECTIVES,
                             {ANY: {f"{{{API_AVAILABILITY}}}": 0.5}}),
    "burn rate 1h": Case("5/64 bad over the hour against 1/64 allowed: 5 times", "burn rate", OBJECTIVES,
                         {ANY: {f"{{{API_AVAILABILITY}}}": 5}}),
    "burn rates": Case("each window's share of bad requests over the 1/64 allowed", "burn rate", OBJECTIVES,
                       {w: {f"{{{API_AVAILABILITY}}}": burn} for w, burn in SLO_WINDOW_RATIOS.items()}),
    "alert states": Case("api/availability pages and has a ticket; the other objectives' alerts stay out",
                         "count", OBJECTIVES, {ANY: {'{severity="critical"}': 1, '{severity="warning"}': 1}}),
}

# Built-in PromQL panel (dashboard uid, title) -> the cases that cover it.
COVERAGE: dict[tuple[str, str], tuple[str, ...]] = {
    ("system-overview", "Targets up"): ("targets up",),
    ("system-overview", "Targets down"): ("targets down", "no target down"),
    ("system-overview", "Request rate"): ("request rate",),
    ("system-overview", "Error rate"): ("error ratio",),
    ("system-overview", "Service health"): ("health by job",),
    ("system-overview", "Request rate by service"): ("request rate by job",),
    ("system-overview", "Error rate by service"): ("error ratio by job",),
    ("system-overview", "p95 latency by endpoint"): ("p95 by endpoint",),
    ("system-overview", "Uptime"): ("uptime", "uptime, replicas"),
    ("api-performance", "Request rate by endpoint"): ("request rate by endpoint",),
    ("api-performance", "Latency percentiles"): ("latency percentiles",),
    ("api-performance", "Status codes"): ("request rate by status",),
    ("api-performance", "Error rate"): ("error ratio",),
    ("api-performance", "Top 10 slowest endpoints"): ("ten slowest endpoints",),
    ("api-performance", "Requests in progress"): ("requests in progress",),
    ("containers-hosts", "Host CPU"): ("host cpu",),
    ("containers-hosts", "Host memory"): ("host memory",),
    ("containers-hosts", "Host disk"): ("host disk",),
    ("containers-hosts", "Host network"): ("host network", "host network with containers"),
    ("containers-hosts", "Container CPU"): ("container cpu",),
    ("containers-hosts", "Container memory"): ("container memory",),
    ("containers-hosts", "Container disk"): ("container disk",),
    ("containers-hosts", "Container network"): ("container network",),
    ("databases", "PostgreSQL connections"): ("postgres connections",),
    ("databases", "PostgreSQL transactions"): ("postgres transactions",),
    ("databases", "PostgreSQL database size"): ("postgres size",),
    ("databases", "PostgreSQL tuple operations"): ("postgres tuples",),
    ("databases", "PostgreSQL cache hit ratio"): ("postgres cache hits",),
    ("databases", "Redis clients"): ("redis clients",),
    ("databases", "Redis memory"): ("redis memory",),
    ("databases", "Redis commands"): ("redis commands",),
    ("databases", "Redis keyspace hit rate"): ("redis hits",),
    ("databases", "Redis keys"): ("redis keys",),
    ("databases", "Redis evictions"): ("redis evictions",),
    ("gpu-ml", "GPU utilisation"): ("gpu utilisation",),
    ("gpu-ml", "GPU memory"): ("gpu memory",),
    ("gpu-ml", "GPU temperature"): ("gpu temperature",),
    ("gpu-ml", "GPU power"): ("gpu power",),
    ("gpu-ml", "GPU SM activity"): ("gpu sm activity",),
    ("gpu-ml", "GPU tensor core activity"): ("gpu tensor activity",),
    ("gpu-ml", "Model drift"): ("model drift",),
    ("llm-rag", "LLM requests by model"): ("llm requests",),
    ("llm-rag", "LLM latency p95 by model"): ("llm p95",),
    ("llm-rag", "Tokens"): ("llm tokens",),
    ("llm-rag", "Cost per hour"): ("llm cost",),
    ("llm-rag", "LLM cache hit rate"): ("llm cache hits",),
    ("llm-rag", "Retrieval cache hit rate"): ("rag cache hits",),
    ("llm-rag", "Retrieval latency"): ("retrieval latency",),
    ("llm-rag", "Similarity scores"): ("similarity",),
    ("observability-stack", "Targets up by job"): ("targets up by job",),
    ("observability-stack", "Prometheus head series"): ("head series",),
    ("observability-stack", "Rule evaluation failures"): ("rule failures",),
    ("observability-stack", "Notifications dropped"): ("notifications dropped",),
    ("observability-stack", "Alertmanager notifications failed"): ("notifications failed",),
    ("observability-stack", "Active alerts"): ("alerts, one replica", "alerts, three replicas"),
    ("observability-stack", "Loki lines received"): ("loki lines",),
    ("observability-stack", "Loki request errors"): ("loki errors",),
    ("observability-stack", "Collector spans accepted and refused"): ("collector spans",),
    ("observability-stack", "Collector export failures"): ("collector export failures",),
    ("observability-stack", "Jaeger spans received"): ("jaeger spans",),
    ("kubernetes", "Nodes ready"): ("nodes ready",),
    ("kubernetes", "Nodes not ready"): ("nodes not ready",),
    ("kubernetes", "Pods pending"): ("pods pending",),
    ("kubernetes", "Containers crash-looping"): ("crash loops", "no crash loop"),
    ("kubernetes", "Node conditions"): ("node conditions",),
    ("kubernetes", "Pods by phase"): ("pods by phase",),
    ("kubernetes", "API server requests"): ("api requests",),
    ("kubernetes", "API server error ratio"): ("api errors",),
    ("kubernetes", "API server p99 latency"): ("api p99",),
    ("kubernetes", "CoreDNS requests"): ("dns requests",),
    ("kubernetes", "CoreDNS SERVFAIL share"): ("dns servfail",),
    ("kubernetes", "CPU by namespace"): ("namespace cpu",),
    ("kubernetes", "Memory by namespace"): ("namespace memory",),
    ("kubernetes", "Restarts by namespace"): ("namespace restarts",),
    ("kubernetes", "Running pods by namespace"): ("namespace running pods",),
    ("kubernetes", "Deployments: desired and available"): ("deployments",),
    ("kubernetes", "StatefulSets: desired and available"): ("statefulsets",),
    ("kubernetes", "DaemonSets: desired and available"): ("daemonsets",),
    ("kubernetes", "Crash-looping containers"): ("crash-looping containers",),
    ("kubernetes", "Restarts by pod"): ("pod restarts",),
    ("kubernetes", "Failed jobs"): ("failed jobs",),
    ("kubernetes", "Volume space used"): ("volume used",),
    ("kubernetes", "Volume inodes used"): ("volume inodes",),
    ("kubernetes", "Volume space free"): ("volume free",),
    ("kubernetes", "Predicted time until full"): ("volume full in",),
    ("slos", "Objectives paging"): ("objectives paging",),
    ("slos", "Objectives with a ticket"): ("objectives with a ticket",),
    ("slos", "Error budget remaining by objective"): ("budget by objective",),
    ("slos", "Service level"): ("service level",),
    ("slos", "Objective"): ("objective",),
    ("slos", "Error budget remaining"): ("budget remaining",),
    ("slos", "Burn rate over 1h"): ("burn rate 1h",),
    ("slos", "Burn rate by alert window"): ("burn rates",),
    ("slos", "Burn-rate alerts"): ("alert states",),
}
# LogQL panels: Loki evaluates them, not Prometheus; out of this file's reach.
LOGQL_PANELS = {("logs", "Log volume by service"), ("logs", "Log volume by level"), ("logs", "Error lines")}


@dataclass(frozen=True)
class Mutant:
    """A plausible one-line mistake in a panel, or in a record it reads; its case must then fail
    in promtool."""

    panel: tuple[str, str]
    case: str
    mistake: str
    old: str  # in the query (or, with unit=True, the unit) of the panel's first variant that holds it
    new: str
    unit: bool = False
    record: bool = False  # old is in the recording rules the panel's stack renders, not in the panel


MUTANTS = [
    Mutant(("system-overview", "p95 latency by endpoint"), "p95 by endpoint", "the median in place of the p95",
           "histogram_quantile(0.95,", "histogram_quantile(0.5,"),
    Mutant(("api-performance", "Latency percentiles"), "latency percentiles", "p95's legend on the p99 query",
           "histogram_quantile(0.95,", "histogram_quantile(0.99,"),
    Mutant(("containers-hosts", "Host memory"), "host memory", "memory available in place of memory in use",
           "1 - node_memory_MemAvailable_bytes", "node_memory_MemAvailable_bytes", record=True),
    Mutant(("containers-hosts", "Host CPU"), "host cpu", "idle time in place of busy time",
           "1 - avg by", "avg by", record=True),
    Mutant(("system-overview", "Error rate"), "error ratio", "a 0-1 ratio under the percent unit",
           "percentunit", "percent", unit=True),
    Mutant(("system-overview", "Error rate by service"), "error ratio by job", "a percentage under percentunit",
           '{status=~"5.."})', '{status=~"5.."}) * 100'),
    Mutant(("system-overview", "Error rate"), "error ratio", "4xx counted as errors",
           '{status=~"5.."}', '{status=~"[45].."}'),
    Mutant(("gpu-ml", "GPU memory"), "gpu memory", "DCGM's MiB shown as bytes", " * 1048576", ""),
    Mutant(("llm-rag", "Cost per hour"), "llm cost", "dollars a second shown as dollars an hour", " * 3600", ""),
    Mutant(("system-overview", "Request rate"), "request rate", "requests per window, not per second",
           "(rate(http_requests_total", "(increase(http_requests_total", record=True),
    Mutant(("databases", "PostgreSQL cache hit ratio"), "postgres cache hits", "hits over misses, not over lookups",
           "(sum(rate(pg_stat_database_blks_hit[$__rate_interval])) + ", "("),
    Mutant(("api-performance", "Top 10 slowest endpoints"), "ten slowest endpoints", "the fastest, not the slowest",
           "topk(", "bottomk("),
    Mutant(("containers-hosts", "Host network"), "host network", "bytes sent drawn above the axis, as received",
           "-topk(", "topk("),
    Mutant(("llm-rag", "Similarity scores"), "similarity", "p90 in place of p10",
           "histogram_quantile(0.1,", "histogram_quantile(0.9,"),
    Mutant(("kubernetes", "CPU by namespace"), "namespace cpu", "pod cgroups counted beside their containers",
           'container!="", ', "", record=True),
    Mutant(("kubernetes", "Memory by namespace"), "namespace memory", "the namespace chosen ignored",
           '{namespace=~"$namespace"}', ""),
    Mutant(("kubernetes", "Restarts by namespace"), "namespace restarts", "restarts a second shown as an hour's",
           " * 3600", ""),
    Mutant(("kubernetes", "Nodes not ready"), "nodes not ready", "a node that stopped reporting counted as ready",
           'status!="true"', 'status="false"'),
    Mutant(("kubernetes", "API server p99 latency"), "api p99", "watches counted as slow requests",
           '{verb!~"WATCH|CONNECT"}', ""),
    Mutant(("kubernetes", "Volume space used"), "volume used", "space available shown as space used",
           "(1 - kubelet_volume_stats_available_bytes", "(kubelet_volume_stats_available_bytes"),
    Mutant(("kubernetes", "Predicted time until full"), "volume full in", "growing free space taken for shrinking",
           "< 0))", "> 0))"),
    Mutant(("slos", "Service level"), "service level", "the share of bad events shown as the service level",
           "1 - slo:sli_error", "slo:sli_error"),
    Mutant(("slos", "Burn rate by alert window"), "burn rates", "the share of bad events shown as the burn rate",
           ' / (1 - slo:objective:ratio{service="$service", slo="$slo"})', ""),
    Mutant(("slos", "Objectives with a ticket"), "objectives with a ticket", "pending alerts counted as firing",
           ', alertstate="firing"', ""),
]


# --- the rendered panels -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    ref: str
    legend: str
    expr: str


@dataclass(frozen=True)
class Variant:
    """One panel as one or more stacks render it."""

    uid: str
    title: str
    unit: str
    targets: tuple[Target, ...]
    kind: str = "timeseries"  # the panel's type


def settings_of(stack: str):
    secrets = stack_secrets(stack)
    values = {**stack_config(stack), **({"secrets": secrets} if secrets else {})}
    return parse(stack, values, {"secrets"} if secrets else set())


def built_in_uids(stack: str) -> set[str]:
    settings = settings_of(stack)
    return {d.uid for d in (build(settings) for build in dashboards.BUILT_IN) if d is not None}


# The Kubernetes dashboard with every producer it reads (kube-state-metrics, the kubelets, their
# cAdvisor, the API server, CoreDNS), whether or not a shipped stack deploys them all: each of its
# panels has its case all the same.
KUBERNETES_PRODUCERS = {"kube-state-metrics", "kubelet", "cadvisor", "apiserver", "coredns"}
EVERY_PRODUCER = "kubernetes (every producer)"


@pytest.fixture(scope="module")
def rendered(stack_runs) -> dict[str, dict]:
    """Every built-in panel of every stack: {"promql": {key: {variant: [stacks]}}, "logql": {key}}."""
    promql: dict[tuple[str, str], dict[Variant, list[str]]] = {}
    logql: set[tuple[str, str]] = set()

    def add(model: dict, stack: str) -> None:
        for panel in model["panels"]:
            if panel["type"] == "row":
                continue  # a row runs no query
            key = (model["uid"], panel["title"])
            if any((t.get("datasource") or panel["datasource"])["type"] == "loki" for t in panel["targets"]):
                logql.add(key)
                continue
            variant = Variant(model["uid"], panel["title"], panel["fieldConfig"]["defaults"].get("unit", ""), tuple(
                Target(t["refId"], t.get("legendFormat", ""), t["expr"]) for t in panel["targets"]), panel["type"])
            promql.setdefault(key, {}).setdefault(variant, []).append(stack)

    for stack in STACKS:
        uids = built_in_uids(stack)
        for resource in stack_runs[stack].of_type(DASHBOARD):
            model = json.loads(resource.inputs["configJson"])
            if model["uid"] in uids:
                add(model, stack)
    every = kubernetes_dashboard.kubernetes(settings_of("staging"), KUBERNETES_PRODUCERS)
    add(json.loads(every.json()), EVERY_PRODUCER)
    return {"promql": promql, "logql": logql}


# --- promtool ------------------------------------------------------------------------------------


class Mismatch(Exception):
    """The case cannot even be put to promtool: a unit or a legend the case does not know."""


def fill_variables(expr: str) -> str:
    expr = GRAFANA_VARIABLES.sub(WINDOW, expr)
    expr = DASHBOARD_VARIABLE.sub(lambda m: DASHBOARD_VARIABLES[m.group(1)], expr)
    if ANY_VARIABLE.search(expr):
        raise Mismatch(f"a dashboard variable this file gives no value: {expr}")
    return expr


def labels_of(selector: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', selector))


def records_of(stack: str) -> str:
    """The recording rules `stack` renders (configs/prometheus/records.yml), which its panels read."""
    if stack == EVERY_PRODUCER:
        settings = settings_of("staging")
        return recording_rules.render(settings, user_rules.deployed_producers(settings) | KUBERNETES_PRODUCERS)
    settings = settings_of(stack)
    return recording_rules.render(settings, user_rules.deployed_producers(settings))


def promtool_files(variant: Variant, case: Case, rule_file_name: str = "panel.rules.yml",
                   records_file_name: str = "") -> tuple[str, str]:
    """(rule file, test file): each query recorded as panel_<refId>, checked at EVAL; with the
    stack's recording rules (`records_file_name`) evaluated first at every step."""
    factor = UNITS[case.quantity].get(variant.unit)
    if factor is None:
        raise Mismatch(f"unit {variant.unit!r} does not show {case.quantity} "
                       f"(it takes one of {', '.join(UNITS[case.quantity])})")
    rules, checks = [], []
    for target in variant.targets:
        if target.legend in case.expect:
            expected = case.expect[target.legend]
        elif ANY in case.expect and len(variant.targets) == 1:
            expected = case.expect[ANY]
        else:
            raise Mismatch(f"query {target.ref} has legend {target.legend!r}; the case knows {sorted(case.expect)}")
        names = []
        for labels in expected:
            values = labels_of(labels)
            missing = set(LEGEND_LABEL.findall(target.legend)) - set(values)
            if missing:
                raise Mismatch(f"query {target.ref}'s legend {target.legend!r} names {sorted(missing)}, "
                               f"which its result {labels or '{}'} does not carry")
            names.append(LEGEND_LABEL.sub(lambda m: values[m.group(1)], target.legend))
        if target.legend and variant.kind != "table" and len(set(names)) < len(names):
            # Grafana draws each series under its legend: two series of one name cannot be told
            # apart. (A table shows each series' labels as columns, and no legend.)
            raise Mismatch(f"query {target.ref}'s legend {target.legend!r} names two series alike: {sorted(names)}")
        record = f"panel_{target.ref}"
        rules.append({"record": record, "expr": fill_variables(target.expr)})
        checks.append({"expr": record, "eval_time": EVAL, "exp_samples": [
            {"labels": f"{record}{labels}", "value": value * factor} for labels, value in expected.items()]})
    rule_file = {"groups": [{"name": "panel", "interval": STEP, "rules": rules}]}
    rule_files = [records_file_name, rule_file_name] if records_file_name else [rule_file_name]
    test_file = {"rule_files": rule_files, "evaluation_interval": STEP, "tests": [{
        "name": case.story, "interval": STEP,
        "input_series": [{"series": name, "values": values} for name, values in case.series.items()],
        "promql_expr_test": checks}]}
    return yaml.safe_dump(rule_file, sort_keys=False), yaml.safe_dump(test_file, sort_keys=False)


def slug(*parts: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def mutate(variant: Variant, mutant: Mutant) -> Variant | None:
    """The variant with the mistake made, or None where it has no place for it (a mistake in the
    recording rules: see mutate_records)."""
    if mutant.record:
        return None
    if mutant.unit:
        return replace(variant, unit=mutant.new) if variant.unit == mutant.old else None
    targets = tuple(replace(t, expr=t.expr.replace(mutant.old, mutant.new, 1)) for t in variant.targets)
    return replace(variant, targets=targets) if targets != variant.targets else None


def mutate_records(records: str, variant: Variant, mutant: Mutant) -> str | None:
    """The recording rules with the mistake made, where the panel reads the record that holds it."""
    if not mutant.record or mutant.old not in records:
        return None
    mutated = records.replace(mutant.old, mutant.new, 1)

    def rules(text: str) -> list[dict]:
        return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]

    changed = {before["record"] for before, after in zip(rules(records), rules(mutated)) if before != after}
    return mutated if any(name in t.expr for name in changed for t in variant.targets) else None


@pytest.fixture(scope="module")
def verdicts(rendered, tmp_path_factory) -> dict[str, tuple[bool, str]]:
    """Every (variant, case) and every mutant in one promtool run: {job: (passed, output)}."""
    promtool = require_tool("promtool")
    directory = tmp_path_factory.mktemp("dashboard-semantics")
    jobs: dict[str, tuple[Variant, Case, str]] = {}  # job -> (variant, case, recording rules)
    for key, variants in rendered["promql"].items():
        for number, (variant, stacks) in enumerate(variants.items()):
            for name in COVERAGE.get(key, ()):
                jobs[slug(*key, str(number), name)] = (variant, CASES[name], records_of(stacks[0]))
    for mutant in MUTANTS:
        for variant, stacks in rendered["promql"].get(mutant.panel, {}).items():
            records = records_of(stacks[0])
            mutated = (variant, mutate_records(records, variant, mutant)) if mutant.record else (mutate(variant, mutant), records)
            if all(mutated):
                jobs[slug("mutant", *mutant.panel, mutant.mistake)] = (mutated[0], CASES[mutant.case], mutated[1])
                break
    found: dict[str, tuple[bool, str]] = {}
    files = []
    for job, (variant, case, records) in jobs.items():
        try:
            rules, test = promtool_files(variant, case, f"{job}.rules.yml", f"{job}.records.yml")
        except Mismatch as problem:
            found[job] = (False, str(problem))
            continue
        (directory / f"{job}.records.yml").write_text(records)
        (directory / f"{job}.rules.yml").write_text(rules)
        (directory / f"{job}.test.yml").write_text(test)
        files.append(f"{job}.test.yml")
    if files:
        # stdout and stderr in one pipe keep each file's verdict next to its name.
        result = subprocess.run([promtool, "test", "rules", *files], cwd=directory,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for block in re.split(r"^Unit Testing:\s+", result.stdout, flags=re.MULTILINE)[1:]:
            name, _, body = block.partition("\n")
            found[name.strip().removesuffix(".test.yml")] = ("SUCCESS" in body and "FAILED" not in body, body.strip())
        assert set(jobs) <= set(found), result.stdout
    return found


# --- tests ---------------------------------------------------------------------------------------


def test_every_built_in_panel_has_a_semantic_case(rendered):
    """A new panel cannot ship without a case, and a case cannot outlive its panel."""
    promql = set(rendered["promql"])
    assert promql - set(COVERAGE) == set(), "PromQL panels with no case in COVERAGE"
    assert set(COVERAGE) - promql == set(), "COVERAGE lists panels no stack renders"
    assert rendered["logql"] == LOGQL_PANELS
    assert not promql & LOGQL_PANELS


def test_every_case_and_mutant_is_used():
    used = {name for names in COVERAGE.values() for name in names}
    assert set(CASES) == used
    for mutant in MUTANTS:
        assert mutant.case in COVERAGE[mutant.panel]


COVERED = [
    pytest.param(key, name, id=f"{key[0]}/{key[1]}/{name}",
                 marks=[pytest.mark.xfail(strict=True, reason=CASES[name].wrong)] if CASES[name].wrong else [])
    for key, names in COVERAGE.items() for name in names
]


@pytest.mark.parametrize(("key", "name"), COVERED)
def test_the_panel_computes_what_it_promises(rendered, verdicts, key, name):
    variants = rendered["promql"].get(key)
    assert variants, f"no stack renders {key}"
    failures = []
    for number, (variant, stacks) in enumerate(variants.items()):
        passed, output = verdicts[slug(*key, str(number), name)]
        if not passed:
            queries = "; ".join(f"{t.ref}: {t.expr}" for t in variant.targets)
            failures.append(f"{'/'.join(stacks)} (unit {variant.unit}; {queries}):\n{output}")
    assert failures == [], f"{CASES[name].story}\n" + "\n".join(failures)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[f"{m.panel[1]}: {m.mistake}" for m in MUTANTS])
def test_a_plausible_mistake_fails_its_case(rendered, verdicts, mutant):
    """The same case, on the panel with one plausible mistake made, fails in promtool on the values."""
    variants = rendered["promql"][mutant.panel]
    assert any(mutate(v, mutant) or mutate_records(records_of(stacks[0]), v, mutant) for v, stacks in variants.items()), \
        f"no variant of {mutant.panel} holds {mutant.old!r}, nor any record it reads"
    passed, output = verdicts[slug("mutant", *mutant.panel, mutant.mistake)]
    assert not passed, output
    assert "exp:" in output and "got:" in output, output  # a wrong value, not a broken file
    original = [verdicts[slug(*mutant.panel, str(n), mutant.case)] for n in range(len(variants))]
    assert all(ok for ok, _ in original), original


def test_the_unit_table_rejects_a_unit_that_shows_something_else():
    variant = Variant("d", "GPU temperature", "fahrenheit", (Target("A", "", "DCGM_FI_DEV_GPU_TEMP"),))
    with pytest.raises(Mismatch, match="does not show degrees Celsius"):
        promtool_files(variant, CASES["gpu temperature"])


def test_a_legend_must_name_labels_the_result_carries():
    variant = Variant("d", "Redis keys", "short", (Target("A", "{{database}}", "sum by (db) (redis_db_keys)"),))
    with pytest.raises(Mismatch, match="names \\['database'\\]"):
        promtool_files(variant, CASES["redis keys"])


def test_a_legend_must_tell_its_series_apart():
    variant = Variant("d", "Redis keys", "short", (Target("A", "keys", "sum by (db) (redis_db_keys)"),))
    with pytest.raises(Mismatch, match="names two series alike"):
        promtool_files(variant, CASES["redis keys"])


def test_a_variable_without_a_value_is_refused():
    assert fill_variables("rate(x[$__rate_interval]) + rate(y[${__interval}])") == f"rate(x[{WINDOW}]) + rate(y[{WINDOW}])"
    with pytest.raises(Mismatch):
        fill_variables('up{job="$job"}')
