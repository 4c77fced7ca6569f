"""Every privilege a pod holds, in every Kubernetes stack and variant, is one it needs and says why.

The walk reads each rendered pod template as Kubernetes would and lists what it holds beyond the
`restricted` Pod Security profile (plus a read-only root filesystem): root, added capabilities,
the node's namespaces, host paths, an API token. Anything on that list needs its reason in the
pod's own annotations; the table below is the requirement (docs/platforms.md), written by hand.
"""

from __future__ import annotations

import pytest

from conftest import merge, run_program, stack_config, stack_secrets
from components.tools.render import CONTROLLERS, unwrap

ROOT_BECAUSE = "observability.dev/runs-as-root-because"
HOST_ACCESS_BECAUSE = "observability.dev/host-access-because"

# What each pod may hold, by service; any other service holds nothing. The log shipper, with
# either shipper, and both GPU exporters (DCGM only adds its capability and the kubelet's socket).
NODE_EXPORTER = {"hostNetwork", "hostPID", "hostPath:/"}
SHIPPER = {"root", "hostPath:/var/log/pods", "hostPath:/var/lib/observability-{shipper}", "api-token"}
DCGM = {"root", "capability:SYS_ADMIN", "hostPath:/var/lib/kubelet/pod-resources"}
NVIDIA_SMI = {"root"}
API_READERS = {"prometheus": {"api-token"}, "kube-state-metrics": {"api-token"}}

VARIANTS = {
    "staging": {},
    "prod": {},
    "staging-promtail": {"log_shipper": {"type": "promtail"}},
    "prod-nvidia-smi": {"exporters": {"gpu": {"exporter": "nvidia_smi"}}},
}


@pytest.fixture(scope="module")
def runs(stack_runs) -> dict:
    found = {}
    for variant, override in VARIANTS.items():
        stack = variant.split("-")[0]
        found[variant] = stack_runs[stack] if not override else run_program(
            stack, merge(stack_config(stack), override), stack_secrets(stack))
    return found


def privileges(pod: dict) -> tuple[set[str], list[str]]:
    """What the pod holds beyond restricted, and what no pod of the stack may ever hold."""
    held, forbidden = set(), []
    spec = pod["spec"]
    security = spec.get("securityContext", {})
    if security.get("seccompProfile") != {"type": "RuntimeDefault"}:
        forbidden.append("no RuntimeDefault seccomp profile")
    if security.get("runAsNonRoot") is not True or not security.get("runAsUser"):
        held.add("root")
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            held.add(flag)
    for volume in spec.get("volumes", []):
        if "hostPath" in volume:
            held.add(f"hostPath:{volume['hostPath']['path']}")
    if spec.get("automountServiceAccountToken") is not False:
        held.add("api-token")
    for container in spec["containers"] + spec.get("initContainers", []):
        context = container.get("securityContext", {})
        if context.get("privileged"):
            forbidden.append(f"{container['name']} is privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            forbidden.append(f"{container['name']} may escalate privileges")
        if context.get("readOnlyRootFilesystem") is not True:
            forbidden.append(f"{container['name']} writes its root filesystem")
        if context.get("capabilities", {}).get("drop") != ["ALL"]:
            forbidden.append(f"{container['name']} keeps the runtime's capabilities")
        held |= {f"capability:{c}" for c in context.get("capabilities", {}).get("add", [])}
    return held, forbidden


def expected(variant: str, service: str) -> set[str]:
    shipper = "promtail" if "promtail" in variant else "alloy"
    if service == "node-exporter":
        return NODE_EXPORTER
    if service == shipper:
        return {p.format(shipper=shipper) for p in SHIPPER}
    if service == "gpu-exporter":
        return NVIDIA_SMI if variant in ("staging", "staging-promtail", "prod-nvidia-smi") else DCGM
    return API_READERS.get(service, set())


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_holds_only_the_privileges_it_needs_and_says_why(runs, variant):
    run = runs[variant]
    pods = {r.name: unwrap(r.inputs)["spec"]["template"] for r in run.resources if r.type in CONTROLLERS}
    assert len(pods) >= 12
    for service, pod in pods.items():
        held, forbidden = privileges(pod)
        assert forbidden == [], (variant, service)
        assert held == expected(variant, service), (variant, service)
        annotations = pod["metadata"]["annotations"]
        # Root or a capability: the reason is on the pod; so is the reason for reaching into the node.
        assert bool({"root"} & held or any(p.startswith("capability:") for p in held)) == bool(
            annotations.get(ROOT_BECAUSE)), (variant, service)
        host = any(p.startswith(("hostPath:", "hostNetwork", "hostPID")) for p in held)
        assert host == bool(annotations.get(HOST_ACCESS_BECAUSE)), (variant, service)


def test_the_walk_finds_each_kind_of_privilege():
    restricted = {
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
            "automountServiceAccountToken": False,
            "containers": [{"name": "c", "securityContext": {
                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}}],
        },
    }
    assert privileges(restricted) == (set(), [])
    loose = merge(restricted, {"spec": {
        "securityContext": {"runAsUser": 0, "seccompProfile": {"type": "Unconfined"}},
        "hostNetwork": True, "hostPID": True, "hostIPC": True, "automountServiceAccountToken": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/etc"}}],
    }})
    loose["spec"]["containers"] = [{"name": "c", "securityContext": {
        "privileged": True, "allowPrivilegeEscalation": True, "readOnlyRootFilesystem": False,
        "capabilities": {"add": ["NET_ADMIN"]}}}]
    held, forbidden = privileges(loose)
    assert held == {"root", "hostNetwork", "hostPID", "hostIPC", "hostPath:/etc", "api-token", "capability:NET_ADMIN"}
    assert forbidden == ["no RuntimeDefault seccomp profile", "c is privileged", "c may escalate privileges",
                         "c writes its root filesystem", "c keeps the runtime's capabilities"]
