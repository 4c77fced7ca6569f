"""The CrossGuard policy pack (components/tools/policy): each policy on hand-made resources, every shipped
stack's resources as the program registers them, and the pack served the way the engine runs it."""

from __future__ import annotations

import select
import subprocess
import sys

import grpc
import pytest
from conftest import ROOT, STACKS, merge, run_program, stack_config, stack_secrets
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel, PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs
from pulumi_policy.proxy import unknown_checking_proxy

from components.platforms import PUBLIC_PORTS_LABEL
from components.tools.policy import policies as p

REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"


def resource(type_, props, name="svc", stack="dev", protect=False) -> ResourceValidationArgs:
    """Arguments as the engine builds them: inputs behind the SDK's unknown-checking proxy."""
    urn = f"urn:pulumi:{stack}::observability::observability:index:Stack${type_}::{name}"
    opts = PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    return ResourceValidationArgs(type_, unknown_checking_proxy(props), urn, name, opts, None)


def violations(policy, args) -> list[str]:
    found: list[str] = []
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def container(name="app", image="grafana/grafana:12.3.6", **extra) -> dict:
    limits = {"cpu": "1", "memory": "1Gi"}
    return {"name": name, "image": image, "resources": {"requests": dict(limits), "limits": limits}, **extra}


def workload(*containers, init=(), name="svc", replicas=None) -> dict:
    spec = {"template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": list(containers)}}}
    if init:
        spec["template"]["spec"]["initContainers"] = list(init)
    if replicas is not None:
        spec["replicas"] = replicas
    return {"metadata": {"name": name, "labels": {"app": name}}, "spec": spec}


def docker_container(ports=(), labels=(), envs=()) -> dict:
    return {
        "image": "sha256:0a1b",
        "ports": list(ports),
        "labels": [{"label": k, "value": v} for k, v in labels],
        "envs": list(envs),
    }


# The pack ----------------------------------------------------------------------------------------


def test_the_pack_has_the_eight_policies_all_mandatory():
    assert [policy.name for policy in p.POLICIES] == [
        "images-pinned",
        "kubernetes-requests-and-limits",
        "no-secrets-in-plain-places",
        "prod-high-availability",
        "prod-data-protected",
        "no-public-ports-without-setting",
        "kubernetes-pods-least-privilege",
        "grafana-https-cookies-and-hsts",
    ]
    assert all(policy.enforcement_level == EnforcementLevel.MANDATORY for policy in p.POLICIES)
    assert all(len(policy.description) > 60 for policy in p.POLICIES)


def test_importing_the_policies_starts_no_server():
    result = subprocess.run(
        [sys.executable, "-c", "import components.tools.policy.policies as p; print(len(p.POLICIES))"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "8\n"


def test_the_entry_point_serves_the_pack_to_the_engine(tmp_path):
    # Started from elsewhere, as the engine may: __main__.py must find the repository itself.
    server = subprocess.Popen(
        [sys.executable, "-u", str(ROOT / "components" / "tools" / "policy" / "__main__.py")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        ready, _, _ = select.select([server.stdout], [], [], 60)
        assert ready, "the pack printed no port within 60s"
        line = server.stdout.readline()
        if not line.strip().isdigit():
            server.kill()
            pytest.fail(f"the pack did not start: {line!r} {server.communicate()[1].decode()[-2000:]}")
        port = int(line)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            analyzer = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
            properties = struct_pb2.Struct()
            properties.update({"name": "grafana/grafana:latest"})
            analysis = analyzer.Analyze(
                proto.AnalyzeRequest(
                    type=REMOTE_IMAGE, properties=properties, name="grafana-image",
                    urn="urn:pulumi:dev::observability::docker:index/remoteImage:RemoteImage::grafana-image",
                ),
                timeout=30,
            )
    finally:
        server.kill()
        server.wait()
    assert info.name == "observability-policies"
    assert [policy.name for policy in info.policies] == [policy.name for policy in p.POLICIES]
    assert {policy.enforcementLevel for policy in info.policies} == {proto.MANDATORY}
    assert [d.policyName for d in analysis.diagnostics] == ["images-pinned"]
    assert "grafana-image" in analysis.diagnostics[0].message
    assert analysis.diagnostics[0].enforcementLevel == proto.MANDATORY


def test_the_stack_is_read_from_the_urn():
    assert p.stack_of("urn:pulumi:prod::observability::a:b:C$kubernetes:apps/v1:StatefulSet::x") == "prod"
    assert p.stack_of("urn:pulumi:staging::observability::docker:index/volume:Volume::x") == "staging"


# images-pinned -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        "grafana/grafana:12.3.6",
        "localhost:5000/team/app:1.2",
        "prom/prometheus@sha256:" + "a" * 64,
        "prom/prometheus:v3.13.3@sha256:" + "0" * 64,
    ],
)
def test_tagged_or_digested_images_pass(image):
    assert violations(p.images_pinned, resource(REMOTE_IMAGE, {"name": image})) == []


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("grafana/grafana:latest", "latest"),
        ("grafana/grafana", "no tag"),
        ("localhost:5000/team/app", "no tag"),
        ("prom/prometheus@sha256:abc", "malformed digest"),
    ],
)
def test_unpinned_remote_images_are_flagged(image, problem):
    found = violations(p.images_pinned, resource(REMOTE_IMAGE, {"name": image}, name="grafana-image"))
    assert len(found) == 1
    assert "RemoteImage 'grafana-image'" in found[0] and problem in found[0]


def test_an_init_container_on_latest_is_flagged():
    props = workload(container(), init=[container("setup", "busybox:latest")])
    found = violations(p.images_pinned, resource(DAEMON_SET, props, name="alloy"))
    assert found == ["DaemonSet 'alloy': init container 'setup' image 'busybox:latest' uses the moving tag latest"]


def test_pinned_workload_containers_pass():
    props = workload(container(), container("sidecar", "otel/opentelemetry-collector-contrib:0.155.0"))
    assert violations(p.images_pinned, resource(DEPLOYMENT, props)) == []


# kubernetes-requests-and-limits --------------------------------------------------------------------


def test_containers_with_requests_and_limits_pass():
    props = workload(container(), init=[container("setup")])
    assert violations(p.kubernetes_requests_and_limits, resource(STATEFUL_SET, props)) == []


def test_a_missing_memory_limit_is_flagged():
    app = container()
    del app["resources"]["limits"]["memory"]
    found = violations(p.kubernetes_requests_and_limits, resource(DEPLOYMENT, workload(app), name="grafana"))
    assert found == ["Deployment 'grafana': container 'app' has no resources.limits.memory"]


def test_an_init_container_without_resources_is_flagged():
    props = workload(container(), init=[{"name": "setup", "image": "busybox:1.37"}])
    found = violations(p.kubernetes_requests_and_limits, resource(DAEMON_SET, props, name="promtail"))
    assert len(found) == 1
    assert "DaemonSet 'promtail': init container 'setup'" in found[0]
    assert "resources.requests.cpu" in found[0] and "resources.limits.memory" in found[0]


def test_requests_and_limits_ignore_other_kinds():
    assert violations(p.kubernetes_requests_and_limits, resource(CONFIG_MAP, {"data": {}})) == []


# no-secrets-in-plain-places ------------------------------------------------------------------------


def test_a_password_in_configmap_data_is_flagged_without_repeating_it():
    props = {"metadata": {}, "data": {"app.ini": "[db]\npassword = hunter2-secret\n"}}
    found = violations(p.no_secrets_in_plain_places, resource(CONFIG_MAP, props, name="grafana-config"))
    assert len(found) == 1
    assert "ConfigMap 'grafana-config'" in found[0] and "'app.ini'" in found[0] and "key-value secrets" in found[0]
    assert "hunter2" not in found[0]


def test_configmap_data_pointing_at_secret_files_passes():
    data = {
        "prometheus.yml": "basic_auth:\n  username: prom\n  password_file: /run/secrets/remote_write_password\n",
        "app.ini": "password = ${DB_PASSWORD}\nclient_secret: /run/secrets/client_secret\n",
    }
    assert violations(p.no_secrets_in_plain_places, resource(CONFIG_MAP, {"data": data})) == []


def test_an_aws_key_in_an_annotation_is_flagged():
    props = {"metadata": {"name": "loki", "annotations": {"note": "key AKIAABCDEFGHIJKLMNOP"}}}
    found = violations(p.no_secrets_in_plain_places, resource("kubernetes:core/v1:Service", props, name="loki"))
    assert found == ["Service 'loki': annotation 'note' holds what looks like a secret (AWS access key ids)"]


def test_a_token_in_a_pod_template_label_is_flagged():
    props = workload(container())
    props["spec"]["template"]["metadata"]["labels"]["api-token"] = "abc123"
    found = violations(p.no_secrets_in_plain_places, resource(DEPLOYMENT, props, name="api"))
    assert found == ["Deployment 'api': pod template label 'api-token' holds what looks like a secret (key-value secrets)"]


def test_a_literal_env_var_with_a_secret_name_is_flagged():
    app = container(env=[{"name": "DATA_SOURCE_PASS", "value": "pw"}, {"name": "PWD", "value": "/app"},
                         {"name": "PASSTHROUGH", "value": "yes"}])
    found = violations(p.no_secrets_in_plain_places, resource(DEPLOYMENT, workload(app), name="postgres-exporter"))
    assert len(found) == 1
    assert found[0].startswith("Deployment 'postgres-exporter': container 'app': environment variable DATA_SOURCE_PASS")
    assert "secret-looking name" in found[0]


def test_a_password_inside_a_url_env_var_is_flagged():
    app = container(env=[{"name": "DATA_SOURCE_URI", "value": "postgres://u:pw123@db:5432/app"}])
    found = violations(p.no_secrets_in_plain_places, resource(DEPLOYMENT, workload(app), name="pg"))
    assert len(found) == 1 and "DATA_SOURCE_URI" in found[0] and "passwords in URLs" in found[0]


def test_file_pointers_and_secret_refs_pass():
    app = container(env=[
        {"name": "GF_SECURITY_ADMIN_PASSWORD__FILE", "value": "/run/secrets/grafana_admin_password"},
        {"name": "REDIS_PASSWORD_FILE", "value": "/run/secrets/redis_password"},
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
    ])
    assert violations(p.no_secrets_in_plain_places, resource(STATEFUL_SET, workload(app))) == []


def test_a_docker_env_var_with_a_secret_name_is_flagged():
    props = docker_container(envs=["GF_SERVER_ROOT_URL=http://127.0.0.1:3000", "GF_SECURITY_ADMIN_PASSWORD=admin"])
    found = violations(p.no_secrets_in_plain_places, resource(CONTAINER, props, name="grafana"))
    assert len(found) == 1
    assert found[0].startswith("Container 'grafana': environment variable GF_SECURITY_ADMIN_PASSWORD ")


def test_a_bearer_token_in_a_docker_label_is_flagged():
    props = docker_container(labels=[("observability.service", "api"), ("auth", "Bearer abcdefgh12345678")])
    found = violations(p.no_secrets_in_plain_places, resource(CONTAINER, props, name="api"))
    assert found == ["Container 'api': label 'auth' holds what looks like a secret (bearer tokens)"]


def test_a_docker_env_var_pointing_at_a_file_passes():
    props = docker_container(envs=["REDIS_PASSWORD_FILE=/run/secrets/redis_password", "REDIS_ADDR=redis://r:6379"])
    assert violations(p.no_secrets_in_plain_places, resource(CONTAINER, props)) == []


# prod-high-availability ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "replicas"), [("prometheus", 2), ("alertmanager", 3.0), ("loki", 1)])
def test_prod_statefulsets_with_enough_replicas_pass(name, replicas):
    args = resource(STATEFUL_SET, workload(container(), name=name, replicas=replicas), name=name, stack="prod")
    assert violations(p.prod_high_availability, args) == []


@pytest.mark.parametrize(("name", "replicas", "shown"), [("prometheus", 1, "1"), ("alertmanager", 2.0, "2"), ("alertmanager", None, "1")])
def test_prod_statefulsets_short_of_replicas_are_flagged(name, replicas, shown):
    args = resource(STATEFUL_SET, workload(container(), name=name, replicas=replicas), name=name, stack="prod")
    found = violations(p.prod_high_availability, args)
    assert len(found) == 1
    assert found[0].startswith(f"StatefulSet '{name}': {name} runs {shown} replica(s)")
    assert f"at least {p.PROD_MIN_REPLICAS[name]}" in found[0]


def test_single_replicas_outside_prod_pass():
    args = resource(STATEFUL_SET, workload(container(), name="alertmanager", replicas=1), stack="staging")
    assert violations(p.prod_high_availability, args) == []


# prod-data-protected -------------------------------------------------------------------------------


def test_description_says_only_protect_is_checked():
    assert "retain_on_delete" in p.prod_data_protected.description
    assert not hasattr(PolicyResourceOptions(True, [], None, [], PolicyCustomTimeouts(0, 0, 0), []), "retain_on_delete")


@pytest.mark.parametrize(("type_", "kind"), [(STATEFUL_SET, "StatefulSet"), (VOLUME, "Volume")])
def test_unprotected_data_in_prod_is_flagged(type_, kind):
    found = violations(p.prod_data_protected, resource(type_, {"name": "x"}, name="loki-data", stack="prod"))
    assert len(found) == 1
    assert found[0].startswith(f"{kind} 'loki-data' holds data but is not protected")


@pytest.mark.parametrize("type_", [STATEFUL_SET, VOLUME])
def test_protected_data_in_prod_passes(type_):
    assert violations(p.prod_data_protected, resource(type_, {}, stack="prod", protect=True)) == []


def test_unprotected_data_outside_prod_and_stateless_kinds_pass():
    assert violations(p.prod_data_protected, resource(VOLUME, {}, stack="dev")) == []
    assert violations(p.prod_data_protected, resource(DEPLOYMENT, workload(container()), stack="prod")) == []


# no-public-ports-without-setting -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "shown"),
    [
        ({"internal": 3000.0, "external": 3000.0, "ip": "0.0.0.0"}, "port 3000->3000 is published on every interface (ip 0.0.0.0)"),
        ({"internal": 9090.0, "external": 9091.0}, "port 9091->9090 is published on every interface (ip unset)"),
        ({"internal": 4317.0, "ip": "::"}, "port 4317 is published on every interface (ip ::)"),
    ],
)
def test_ports_on_every_interface_without_the_label_are_flagged(port, shown):
    props = docker_container(ports=[port], labels=[("observability.service", "grafana")])
    found = violations(p.no_public_ports_without_setting, resource(CONTAINER, props, name="grafana"))
    assert len(found) == 1
    assert found[0].startswith(f"Container 'grafana': {shown} without the label {PUBLIC_PORTS_LABEL}")


def test_loopback_ports_pass():
    props = docker_container(ports=[{"internal": 3000.0, "external": 3000.0, "ip": "127.0.0.1"}])
    assert violations(p.no_public_ports_without_setting, resource(CONTAINER, props)) == []


def test_public_ports_with_the_label_pass():
    props = docker_container(ports=[{"internal": 3000.0, "external": 3000.0, "ip": "0.0.0.0"}],
                             labels=[(PUBLIC_PORTS_LABEL, "0.0.0.0")])
    assert violations(p.no_public_ports_without_setting, resource(CONTAINER, props)) == []


# The program ---------------------------------------------------------------------------------------


def check(run, edit=lambda r, inputs: inputs) -> list[str]:
    """Every policy on every resource the run registered: "<policy> <message>" per violation."""
    found = []
    for r in run.resources:
        args = resource(r.type, edit(r, r.inputs), r.name, protect=r.protect)
        args.urn = r.urn
        for policy in p.POLICIES:
            found += [f"{policy.name} {message}" for message in violations(policy, args)]
    return found


# kubernetes-pods-least-privilege ------------------------------------------------------------------

LOCKED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


def pod(containers=None, annotations=None, **spec) -> dict:
    props = workload(*(containers or [container(securityContext=dict(LOCKED))]))
    template = props["spec"]["template"]
    template["metadata"]["annotations"] = annotations or {}
    template["spec"]["securityContext"] = {"runAsNonRoot": True, "runAsUser": 65534,
                                           "seccompProfile": {"type": "RuntimeDefault"}}
    template["spec"].update(spec)
    return props


def least_privilege(props, type_=DAEMON_SET) -> list[str]:
    return violations(p.kubernetes_pods_least_privilege, resource(type_, props, name="agent"))


def test_a_restricted_pod_passes():
    assert least_privilege(pod()) == []


def test_root_a_capability_or_the_host_without_a_reason_is_flagged_and_passes_with_one():
    root = pod(containers=[container(securityContext={**LOCKED, "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}})])
    root["spec"]["template"]["spec"]["securityContext"] = {"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}}
    host = pod(hostNetwork=True, hostPID=True, volumes=[{"name": "h", "hostPath": {"path": "/var/log/pods"}}])
    assert least_privilege(root) == [
        f"DaemonSet 'agent': runs as root and adds SYS_ADMIN without the annotation {p.ROOT_BECAUSE} saying why"]
    assert least_privilege(host) == [
        "DaemonSet 'agent': uses hostNetwork, hostPID, hostPath /var/log/pods without the annotation "
        f"{p.HOST_ACCESS_BECAUSE} saying why"]
    root["spec"]["template"]["metadata"]["annotations"] = {p.ROOT_BECAUSE: "NVML needs root"}
    host["spec"]["template"]["metadata"]["annotations"] = {p.HOST_ACCESS_BECAUSE: "reads the node's logs"}
    assert least_privilege(root) == [] and least_privilege(host) == []


def test_what_no_pod_may_hold_is_flagged_whatever_the_annotations():
    loose = pod(containers=[container(securityContext={"privileged": True})],
                annotations={p.ROOT_BECAUSE: "x", p.HOST_ACCESS_BECAUSE: "y"},
                tolerations=[{"operator": "Exists"}])
    loose["spec"]["template"]["spec"]["securityContext"] = {"runAsNonRoot": True, "runAsUser": 1}
    assert least_privilege(loose) == [f"DaemonSet 'agent': {problem}" for problem in (
        "container 'app' is privileged",
        "container 'app' does not set allowPrivilegeEscalation: false",
        "container 'app' does not set readOnlyRootFilesystem: true",
        "container 'app' does not drop ALL capabilities",
        "container 'app' has no RuntimeDefault (or Localhost) seccomp profile",
        "tolerates every taint (operator Exists with no key and no effect)",
    )]
    # A toleration of one taint, or of every taint of one effect, is not every taint.
    assert least_privilege(pod(tolerations=[{"operator": "Exists", "effect": "NoSchedule"},
                                            {"key": "nvidia.com/gpu", "operator": "Exists"}])) == []


def test_prod_with_node_agents_tolerating_every_taint_is_caught():
    config = merge(stack_config("prod"), {"kubernetes": {"node_agent_tolerations": [{"operator": "Exists"}]}})
    found = check(run_program("prod", config, stack_secrets("prod")))
    assert sorted(found) == sorted(
        f"kubernetes-pods-least-privilege DaemonSet '{agent}': tolerates every taint (operator Exists with no key "
        "and no effect)" for agent in ("node-exporter", "alloy", "gpu-exporter"))


# grafana-https-cookies-and-hsts -------------------------------------------------------------------


@pytest.mark.parametrize("env, flagged", [
    ({"GF_SERVER_ROOT_URL": "https://grafana.example"},
     "GF_SECURITY_COOKIE_SECURE=true, GF_SECURITY_STRICT_TRANSPORT_SECURITY=true"),
    ({"GF_SERVER_ROOT_URL": "https://grafana.example", "GF_SECURITY_COOKIE_SECURE": "true"},
     "GF_SECURITY_STRICT_TRANSPORT_SECURITY=true"),
    ({"GF_SERVER_ROOT_URL": "https://grafana.example", "GF_SECURITY_COOKIE_SECURE": "true",
      "GF_SECURITY_STRICT_TRANSPORT_SECURITY": "true"}, None),
    ({"GF_SERVER_ROOT_URL": "http://127.0.0.1:3000"}, None),
])
def test_grafana_over_https_needs_secure_cookies_and_hsts(env, flagged):
    docker = resource(CONTAINER, docker_container(envs=[f"{k}={v}" for k, v in env.items()]), name="grafana")
    kubernetes = resource(STATEFUL_SET, workload(container(env=[{"name": k, "value": v} for k, v in env.items()])),
                          name="grafana")
    found = violations(p.grafana_https_cookies_and_hsts, docker) + violations(p.grafana_https_cookies_and_hsts, kubernetes)
    assert found == ([] if flagged is None else [
        f"Container 'grafana': container serves Grafana over https without {flagged}",
        f"StatefulSet 'grafana': container 'app' serves Grafana over https without {flagged}",
    ])


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_stack_passes_every_policy(stack_runs, stack):
    run = stack_runs[stack]
    assert run.of_type(REMOTE_IMAGE) or run.of_type(STATEFUL_SET), f"{stack}: nothing for the policies to check"
    assert all(p.stack_of(r.urn) == stack for r in run.resources)
    assert check(run) == []


def test_prod_with_a_single_alertmanager_is_caught():
    config = merge(stack_config("prod"), {"alertmanager": {"replicas": 1}})
    found = check(run_program("prod", config, stack_secrets("prod")))
    assert found == [
        "prod-high-availability StatefulSet 'alertmanager': alertmanager runs 1 replica(s); a prod stack needs at least 3"
    ]


def test_prod_without_protect_data_is_caught():
    config = merge(stack_config("prod"), {"protect_data": False})
    found = check(run_program("prod", config, stack_secrets("prod")))
    assert {f.split(" ")[0] for f in found} == {"prod-data-protected"}
    # (prod's Grafana keeps its data in PostgreSQL, its Jaeger in Elasticsearch: no StatefulSet.)
    # Loki's roles that keep data on claims are StatefulSets too.
    assert {f.split("'")[1] for f in found} == {"prometheus", "alertmanager", "loki-ingester", "loki-index-gateway",
                                                "loki-compactor"}


def test_dev_opened_to_the_network_passes_only_with_its_label():
    run = run_program("dev", merge(stack_config("dev"), {"docker": {"bind_address": "0.0.0.0"}}))
    assert check(run) == []

    def strip_label(r, inputs):
        if r.type == CONTAINER and r.name == "grafana":
            inputs["labels"] = [label for label in inputs["labels"] if label["label"] != PUBLIC_PORTS_LABEL]
        return inputs

    assert check(run, strip_label) == [
        "no-public-ports-without-setting Container 'grafana': port 3000->3000 is published on every interface "
        f"(ip 0.0.0.0) without the label {PUBLIC_PORTS_LABEL}; bind it to 127.0.0.1 or open it through the "
        "stack's docker.bind_address"
    ]
