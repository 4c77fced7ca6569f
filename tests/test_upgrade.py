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


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_of_a_deployed_stack_keeps_its_urn(stack_runs, stack):
    missing = deployed(stack) - stack_runs[stack].engine_urns()
    assert not missing, f"{stack}: an upgrade would replace these resources:\n" + "\n".join(sorted(missing))


def test_urns_follow_the_whole_chain_of_parent_types(stack_runs):
    # As the engine writes them: a container inside a service inside the stack names all three.
    assert (
        "urn:pulumi:dev::observability::observability:index:Stack$observability:services:NodeExporter"
        "$docker:index/container:Container::node-exporter"
    ) in stack_runs["dev"].engine_urns()
