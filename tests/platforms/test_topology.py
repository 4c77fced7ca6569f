"""Prod's topology: losing any one pod, or any one node of three, stops no path from ingestion to
query, and a node drain is never blocked by a disruption budget.

Read from what the program renders: each controller's replicas (or its autoscaler's minimum),
its spread constraints, its disruption budget, and Loki's replication settings. The scheduler's
part is simulated: with maxSkew 1 on kubernetes.io/hostname and whenUnsatisfiable DoNotSchedule,
pods are placed on the least loaded node, so no node holds more than its even share."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import yaml

from conftest import Resource, Run, container_args, container_files, controller

NODES = 3
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"


@dataclass(frozen=True)
class Hop:
    """A workload a path goes through, and how many of its pods the path needs alive."""

    workload: str
    needs: int = 1


# Every path from where data comes in to where a person reads it, as far as the stack runs it:
# Loki's bucket, Jaeger's Elasticsearch, Grafana's PostgreSQL and the long-term store are the
# user's, with their own redundancy. Per-node agents (the log shipper, node-exporter) are left
# out: a lost node takes only its own telemetry with it.
# Loki's ingesters hold each stream three times and write or read it once two copies answer.
INGESTERS = Hop("loki-ingester", needs=2)
PATHS = {
    "logs in": (Hop("loki-distributor"), INGESTERS),
    "logs out": (Hop("grafana"), Hop("loki-query-frontend"), Hop("loki-query-scheduler"), Hop("loki-querier"),
                 INGESTERS, Hop("loki-index-gateway")),
    "traces in": (Hop("otel-collector"), Hop("otel-collector-sampler"), Hop("jaeger-collector")),
    "traces out": (Hop("grafana"), Hop("jaeger")),
    # Applications' metrics over OTLP reach every Prometheus replica through the gateways.
    "metrics in and out": (Hop("otel-collector"), Hop("prometheus"), Hop("grafana")),
    "alerts": (Hop("prometheus"), Hop("alertmanager")),
}


def minimum_pods(run: Run, workload: str) -> int:
    """The pods a workload runs when all is well: its autoscaler's minimum, or its replicas."""
    for scaler in run.of_type(HPA):
        if scaler.inputs["spec"]["scaleTargetRef"]["name"] == workload:
            return scaler.inputs["spec"]["minReplicas"]
    return controller(run, workload).inputs["spec"].get("replicas", 1)


def spread_evenly_over_nodes(run: Run, workload: str) -> bool:
    """Whether the scheduler must keep the workload's pods even over nodes, and may move a drained
    node's pods onto the others (a cordoned node counts for nothing)."""
    spec = controller(run, workload).inputs["spec"]
    selector = spec["selector"]["matchLabels"]
    return any(c["topologyKey"] == "kubernetes.io/hostname" and c["maxSkew"] == 1
               and c["whenUnsatisfiable"] == "DoNotSchedule" and c.get("nodeTaintsPolicy") == "Honor"
               and c["labelSelector"] == {"matchLabels": selector}
               for c in spec["template"]["spec"].get("topologySpreadConstraints", []))


def placement(run: Run, workload: str) -> list[int]:
    """Pods per node, as the scheduler must place them: evenly where spread, else the worst case,
    every pod on one node."""
    pods = minimum_pods(run, workload)
    if not spread_evenly_over_nodes(run, workload):
        return [pods] + [0] * (NODES - 1)
    nodes = [0] * NODES
    for _ in range(pods):
        nodes[nodes.index(min(nodes))] += 1
    return nodes


def budget(run: Run, workload: str) -> dict | None:
    selector = controller(run, workload).inputs["spec"]["selector"]
    found = [b.inputs["spec"] for b in run.of_type(PDB) if b.inputs["spec"]["selector"] == selector]
    assert len(found) <= 1, workload
    return found[0] if found else None


def single_points_of_failure(run: Run, paths: dict[str, tuple[Hop, ...]]) -> list[str]:
    """Every way one lost pod or one lost node stops a path, in words."""
    problems = []
    for path, hops in paths.items():
        for hop in hops:
            pods = placement(run, hop.workload)
            if sum(pods) - 1 < hop.needs:
                problems.append(f"{path}: losing one pod of {hop.workload} leaves fewer than {hop.needs}")
            if sum(pods) - max(pods) < hop.needs:
                problems.append(f"{path}: losing the node with {max(pods)} of {hop.workload}'s pods leaves "
                                f"fewer than {hop.needs}")
    return problems


def drain_blockers(run: Run) -> list[str]:
    """Disruption budgets that would stop `kubectl drain` for good: none may forbid every eviction,
    and each must let one pod go while the rest are up."""
    problems = []
    for b in run.of_type(PDB):
        spec = b.inputs["spec"]
        (workload,) = [w for w in run.outputs["services"]
                       if controller(run, w).inputs["spec"]["selector"] == spec["selector"]]
        pods = minimum_pods(run, workload)
        allowed = spec["maxUnavailable"] if "maxUnavailable" in spec else pods - spec["minAvailable"]
        if not isinstance(allowed, int) or allowed < 1:
            problems.append(f"{b.name} lets no pod of {workload} go")
        if not spread_evenly_over_nodes(run, workload):
            problems.append(f"{workload}'s evicted pods may not fit on the nodes that are left")
    return problems


def test_losing_any_one_pod_or_node_of_three_stops_no_path_in_prod(stack_runs):
    run = stack_runs["prod"]
    assert single_points_of_failure(run, PATHS) == []
    # The paths name every workload they pass through, as the stack deploys it.
    assert {hop.workload for hops in PATHS.values() for hop in hops} <= set(run.outputs["services"])


def test_every_disruption_budget_lets_a_node_drain_in_prod(stack_runs):
    run = stack_runs["prod"]
    assert drain_blockers(run) == []
    # Every replicated workload on a path has one: a drain or an upgrade takes one pod at a time.
    for hops in PATHS.values():
        for hop in hops:
            assert budget(run, hop.workload) == {"maxUnavailable": 1, "selector": controller(
                run, hop.workload).inputs["spec"]["selector"]}, hop.workload


def test_a_stream_keeps_two_copies_when_an_ingester_or_its_node_is_lost(stack_runs):
    """Why INGESTERS needs two of three: Loki writes every stream to three ingesters in three
    zones, each ingester's zone being its node, so one lost pod or node takes one copy."""
    run = stack_runs["prod"]
    config = yaml.safe_load(container_files(run, "loki-ingester")["/etc/loki/loki.yml"])
    assert config["common"]["replication_factor"] == 3
    assert config["ingester"]["lifecycler"]["ring"]["zone_awareness_enabled"] is True
    assert "-ingester.availability-zone=$(NODE_NAME)" in container_args(run, "loki-ingester")
    assert minimum_pods(run, "loki-ingester") >= 3


def test_the_checks_find_staging_single_pods_and_a_budget_that_blocks_a_drain(stack_runs):
    # Staging keeps its small shape: the checks must see its single points of failure.
    staging = stack_runs["staging"]
    found = single_points_of_failure(staging, {"logs": (Hop("loki"),), "metrics": (Hop("prometheus"),)})
    assert found == ["logs: losing one pod of loki leaves fewer than 1",
                     "logs: losing the node with 1 of loki's pods leaves fewer than 1",
                     "metrics: losing one pod of prometheus leaves fewer than 1",
                     "metrics: losing the node with 1 of prometheus's pods leaves fewer than 1"]


def test_pods_the_scheduler_may_stack_on_one_node_count_as_one_node(stack_runs):
    # Kube-state-metrics is not spread: were it replicated, all its pods could share a node.
    run = stack_runs["prod"]
    assert not spread_evenly_over_nodes(run, "kube-state-metrics")
    assert placement(run, "kube-state-metrics") == [1, 0, 0]
    assert placement(run, "loki-ingester") == [1, 1, 1]
    assert placement(run, "loki-querier") == [1, 1, 1]  # prod's minimum of three


@pytest.mark.parametrize("spec, blocked", [
    ({"maxUnavailable": 0}, True), ({"maxUnavailable": 1}, False), ({"minAvailable": 3}, True),
    ({"minAvailable": 2}, False),
])
def test_the_drain_check_knows_a_budget_that_forbids_every_eviction(stack_runs, spec, blocked):
    run = stack_runs["prod"]
    selector = controller(run, "alertmanager").inputs["spec"]["selector"]
    fake = Run("prod")
    fake.resources = [r for r in run.resources if r.type != PDB] + [
        Resource(type=PDB, name="x", raw_inputs={"spec": {**spec, "selector": selector}})]
    fake.outputs = run.outputs
    assert bool(drain_blockers(fake)) is blocked
