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


# What a later release removes on purpose, by stack and component type, with the reason (each is
# an upgrade note in CHANGELOG.md). These must be gone; everything else must stay.
RETIRED = {
    ("staging", "observability:services:Cadvisor"): "the kubelets serve cAdvisor's metrics; no privileged pod",
    ("prod", "observability:services:Cadvisor"): "the kubelets serve cAdvisor's metrics; no privileged pod",
}


def retired(stack: str, urn: str) -> bool:
    return any(s == stack and component in urn for s, component in RETIRED)


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_of_a_deployed_stack_keeps_its_urn(stack_runs, stack):
    kept = {urn for urn in deployed(stack) if not retired(stack, urn)}
    missing = kept - stack_runs[stack].engine_urns()
    assert not missing, f"{stack}: an upgrade would replace these resources:\n" + "\n".join(sorted(missing))
    # What is retired is really gone, and no other resource is retired with it.
    assert not {urn for urn in deployed(stack) if retired(stack, urn)} & stack_runs[stack].engine_urns()
    assert all(any(retired(stack, urn) for urn in deployed(stack)) for s, _ in RETIRED if s == stack)


def test_urns_follow_the_whole_chain_of_parent_types(stack_runs):
    # As the engine writes them: a container inside a service inside the stack names all three.
    assert (
        "urn:pulumi:dev::observability::observability:index:Stack$observability:services:NodeExporter"
        "$docker:index/container:Container::node-exporter"
    ) in stack_runs["dev"].engine_urns()
