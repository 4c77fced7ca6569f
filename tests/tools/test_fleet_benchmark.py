"""The fleet benchmark (components/tools/fleet_benchmark.py): its fleet feeds every query the stacks
run, grows with the hosts, and a small run through the real promtool and Prometheus measures every
rule group and dashboard."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from components.tools import fleet_benchmark
from conftest import STACKS, container_files, require_tool

ALERT_SERIES = {"ALERTS"}  # written by Prometheus's rule manager, not by any producer


def fleet_metrics(hosts: int = 10) -> set[str]:
    return {f.name for f in fleet_benchmark.fleet(hosts)} | {f.name for f, _ in fleet_benchmark.slo_records()}


def queried_metrics(run) -> dict[str, set[str]]:
    """Where each metric is read: every rule of the stack's rule files, every panel of its dashboards."""
    found: dict[str, set[str]] = {}

    def add(expr: str, where: str) -> None:
        for selector in fleet_benchmark.selectors(expr):
            found.setdefault(selector.split("{", 1)[0], set()).add(where)

    for path, text in container_files(run, "prometheus").items():
        if path.startswith("/etc/prometheus/rules/"):
            for group in yaml.safe_load(text)["groups"]:
                for rule in group["rules"]:
                    add(rule["expr"], f"{path}: {group['name']}")
    for resource in run.of_type(fleet_benchmark.DASHBOARD):
        model = json.loads(resource.inputs["configJson"])
        for panel in model["panels"]:
            for target in panel.get("targets", []):
                if panel["datasource"]["type"] == "prometheus":
                    expr, _ = fleet_benchmark.panel_query(target["expr"], 6 * 3600, {"namespace": ".+", "service": "api",
                                                                                     "slo": "availability"})
                    add(expr, f"{model['uid']}: {panel['title']}")
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_the_fleet_holds_every_metric_the_stacks_rules_and_dashboards_read(stack_runs, stack):
    """A query on a metric the fleet lacks would be timed on nothing and look cheap. The series
    of the stack's recording rules (records.yml) are the benchmark's backfill of those rules over
    the fleet."""
    run = stack_runs[stack]
    records = yaml.safe_load(container_files(run, "prometheus")["/etc/prometheus/rules/records.yml"])
    recorded = {rule["record"] for group in records["groups"] for rule in group["rules"]}
    assert recorded
    missing = {metric: sorted(where) for metric, where in queried_metrics(run).items()
               if metric not in fleet_metrics() | ALERT_SERIES | recorded}
    assert missing == {}


def test_the_fleet_grows_with_its_hosts():
    small = Counter({f.name: len(f.series) for f in fleet_benchmark.fleet(100)})
    large = Counter({f.name: len(f.series) for f in fleet_benchmark.fleet(400)})
    # The fleet at 1000 hosts: 20 containers a host, 64 GPUs, 200 services.
    thousand = {f.name: len(f.series) for f in fleet_benchmark.fleet(1000)}
    assert thousand["container_memory_working_set_bytes"] == 20_000
    assert thousand["DCGM_FI_DEV_GPU_UTIL"] == 64
    assert thousand["http_requests_in_progress"] == 200 * 2
    for name in ("node_cpu_seconds_total", "container_cpu_usage_seconds_total", "kube_pod_status_phase",
                 "http_requests_total", "kube_node_status_condition"):
        assert large[name] == pytest.approx(4 * small[name], rel=0.05), name
    # What does not grow with the fleet: the cluster's API servers, the databases.
    assert large["apiserver_request_total"] == small["apiserver_request_total"]
    assert large["pg_up"] == small["pg_up"] == 3


def test_the_openmetrics_files_keep_to_one_block_each(tmp_path):
    """promtool reads its input once for every 2h block it writes: each file spans one block."""
    end = 1_800_000_000 // 60 * 60
    spans, total = [], 0
    for path, samples in fleet_benchmark.openmetrics_blocks(tmp_path, 2, 3, end, records_hours=5):
        stamps = [int(line.rsplit(" ", 1)[1]) for line in path.read_text().splitlines() if not line.startswith("#")]
        assert max(stamps) // fleet_benchmark.BLOCK_S == min(stamps) // fleet_benchmark.BLOCK_S, path.name
        assert samples == len(stamps)
        spans.append((min(stamps), max(stamps)))
        total += samples
    assert max(s for _, s in spans) == end
    # 5 hours of records up to 1,800,000,000 s touch the 2h blocks that start at 1,799,978,400,
    # 1,799,985,600, 1,799,992,800 and 1,800,000,000: one file each.
    assert [start // fleet_benchmark.BLOCK_S * fleet_benchmark.BLOCK_S for start, _ in spans] == [
        1_799_978_400, 1_799_985_600, 1_799_992_800, 1_800_000_000]
    assert total > 0


def test_a_small_fleet_is_measured_in_a_real_prometheus(tmp_path):
    require_tool("promtool")
    require_tool("prometheus")
    result = fleet_benchmark.run_size(5, 0.25, ["dev"], tmp_path, records_hours=2)
    measured = result["measured"]
    groups = {m["name"] for m in measured if m["kind"] == "group"}
    assert {"catalog.yml: hosts", "catalog.yml: http", "records.yml: hosts", "records.yml: containers-top",
            "slos.yml: slo-api-availability"} <= groups
    hosts = next(m for m in measured if m["name"] == "catalog.yml: hosts")
    # Every host's filesystems and CPUs were read: the rules ran on the fleet, not on nothing.
    assert hosts["samples"] > 0 and hosts["series"] >= 5 * len(fleet_benchmark.MOUNTS)
    dashboards = {m["name"]: m for m in measured if m["kind"] == "dashboard"}
    assert dashboards["slos"]["samples"] > 0
    # Containers and hosts reads recorded series only: their history was backfilled. Each of the
    # host panels' 5 hosts, and the ten containers of each container panel.
    assert dashboards["containers-hosts"]["samples"] > 0 and dashboards["containers-hosts"]["series"] >= 5 + 10
    assert result["records_s"] > 0
    assert all(m["seconds"] >= 0 and m["limit"] > 0 for m in measured)
    report = fleet_benchmark.tables([result])
    assert "| dev | catalog.yml: hosts |" in report and "| dev | containers-hosts |" in report
