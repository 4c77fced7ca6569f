"""Existing stacks upgrade in place: every resource a deployed stack holds keeps its URN.

tests/upgrade/<stack>.urns lists the URNs of each shipped stack as an earlier release deployed
it (the header says which). A URN that disappears is a resource `pulumi up` would delete and
create again: a data volume emptied, a Service with a new address. Restructuring the program
(components, parents, type tokens) must keep each URN, or alias the resource to it.
"""

from __future__ import annotations


import pytest

from conftest import ROOT, STACKS

BASELINE = ROOT / "tests" / "upgrade"


def deployed(stack: str) -> set[str]:
    lines = (BASELINE / f"{stack}.urns").read_text().splitlines()
    return {line for line in lines if line and not line.startswith("#")}


# What a later release removes on purpose, by stack and component type (or one resource's type
# and name), with the reason (each is an upgrade note in CHANGELOG.md). These must be gone;
# everything else must stay.
RETIRED = {
    ("staging", "observability:services:Cadvisor"): "the kubelets serve cAdvisor's metrics; no privileged pod",
    ("prod", "observability:services:Cadvisor"): "the kubelets serve cAdvisor's metrics; no privileged pod",
    # A resource rather than a component: the rest of Grafana's component stays.
    ("prod", "observability:services:Grafana$kubernetes:apps/v1:StatefulSet::grafana"):
        "Grafana keeps its database in PostgreSQL: a Deployment without a volume",
    ("prod", "observability:services:Jaeger$kubernetes:apps/v1:StatefulSet::jaeger"):
        "Jaeger keeps traces in Elasticsearch: its queriers are a Deployment without a volume",
    # Loki in microservices mode: seven roles' workloads replace the one pod and what it mounted.
    **{("prod", f"observability:services:Loki${kind}::{name}"):
       "Loki runs each role as its own pods (loki.mode: microservices)"
       for kind, name in (("kubernetes:apps/v1:StatefulSet", "loki"), ("kubernetes:core/v1:Service", "loki"),
                          ("kubernetes:core/v1:ConfigMap", "loki-etc-loki"), ("kubernetes:core/v1:Secret", "loki-secrets"),
                          ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "loki-network-policy"))},
}


def matches(what: str, urn: str) -> bool:
    # A resource's type and name end its URN; a component's type is anywhere in its children's.
    return urn.endswith(what) if "::" in what else what in urn


def retired(stack: str, urn: str) -> bool:
    return any(s == stack and matches(what, urn) for s, what in RETIRED)


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_of_a_deployed_stack_keeps_its_urn(stack_runs, stack):
    kept = {urn for urn in deployed(stack) if not retired(stack, urn)}
    missing = kept - stack_runs[stack].engine_urns()
    assert not missing, f"{stack}: an upgrade would replace these resources:\n" + "\n".join(sorted(missing))
    # What is retired is really gone, and no other resource is retired with it.
    assert not {urn for urn in deployed(stack) if retired(stack, urn)} & stack_runs[stack].engine_urns()
    # Each entry retires something the stack had: none is stale or misspelt.
    assert all(any(matches(what, urn) for urn in deployed(stack)) for s, what in RETIRED if s == stack)


def test_urns_follow_the_whole_chain_of_parent_types(stack_runs):
    # As the engine writes them: a container inside a service inside the stack names all three.
    assert (
        "urn:pulumi:dev::observability::observability:index:Stack$observability:services:NodeExporter"
        "$docker:index/container:Container::node-exporter"
    ) in stack_runs["dev"].engine_urns()
