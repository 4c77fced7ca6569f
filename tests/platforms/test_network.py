"""Who may talk to whom on kubernetes: the NetworkPolicies admit exactly the connections the
rendered configuration makes, and Grafana alone is reachable from outside, through its Ingress.

The policies are read with Kubernetes' NetworkPolicy semantics (below); the connections are read
from what the program renders: every address in a container's files and arguments, the scrape
jobs, and the addresses Grafana is given for its datasources and contact point.
"""

import ipaddress
import json
import re

import pytest

from components.settings import ConfigError
from components.platforms.kubernetes import PEERS
from conftest import (
    SECRETS, Run, container_args, container_files, controller, merge, prometheus_config, run_program, stack_config,
)

KUBERNETES_STACKS = ("staging", "prod")
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
NAMESPACE = "observability"
AGENTS_NAMESPACE = "observability-node-agents"
INGRESS_NAMESPACE = "ingress-nginx"


# --- NetworkPolicy semantics -----------------------------------------------------------------


def selects(selector: dict, labels: dict) -> bool:
    """A label selector: matchLabels and matchExpressions, all of them must hold; {} selects all."""
    assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
    for e in selector.get("matchExpressions", []):
        operator, present = e["operator"], e["key"] in labels
        if operator == "In" and not (present and labels[e["key"]] in e["values"]):
            return False
        if operator == "NotIn" and present and labels[e["key"]] in e["values"]:
            return False
        if operator == "Exists" and not present or operator == "DoesNotExist" and present:
            return False
        assert operator in ("In", "NotIn", "Exists", "DoesNotExist"), e
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def peer_admits(peer: dict, policy_namespace: str, source: dict) -> bool:
    """Whether an ingress peer covers a source: a pod ({namespace, labels}) or an address ({ip})."""
    if "ipBlock" in peer or "ip" in source:
        return reaches(peer, policy_namespace, source)
    namespace_labels = {"kubernetes.io/metadata.name": source["namespace"]}
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif source["namespace"] != policy_namespace:
        return False  # a podSelector alone means pods of the policy's own namespace
    return selects(peer.get("podSelector", {}), source["labels"])


def admitted(policies: list[dict], source: dict, target_labels: dict, port: int, protocol: str = "TCP",
             target_namespace: str = NAMESPACE) -> bool:
    """Whether a connection from `source` ({namespace, labels}) to a pod of `target_namespace`
    with `target_labels` on `port` is allowed, as a conforming network plugin decides it."""
    isolating = [p for p in policies
                 if p["metadata"]["namespace"] == target_namespace and "Ingress" in p["spec"]["policyTypes"]
                 and selects(p["spec"]["podSelector"], target_labels)]
    if not isolating:
        return True
    for policy in isolating:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports):
                continue
            peers = rule.get("from")
            if not peers or any(peer_admits(peer, policy["metadata"]["namespace"], source) for peer in peers):
                return True
    return False


def reaches(peer: dict, policy_namespace: str, destination: dict) -> bool:
    """Whether an egress peer covers a destination: a pod ({namespace, labels}) or an address
    outside the cluster ({ip})."""
    if "ipBlock" in peer:
        if "ip" not in destination:
            return False
        block = peer["ipBlock"]
        address = ipaddress.ip_address(destination["ip"])
        network = ipaddress.ip_network(block["cidr"])
        return address.version == network.version and address in network and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", []))
    if "ip" in destination:
        return False
    return peer_admits(peer, policy_namespace, destination)


def sends(policies: list[dict], source: dict, destination: dict, port: int, protocol: str = "TCP") -> bool:
    """Whether `source` ({namespace, labels}) may open a connection to `destination` on `port`,
    as its namespace's egress policies decide it."""
    isolating = [p for p in policies
                 if p["metadata"]["namespace"] == source["namespace"] and "Egress" in p["spec"]["policyTypes"]
                 and selects(p["spec"]["podSelector"], source["labels"])]
    if not isolating:
        return True
    for policy in isolating:
        for rule in policy["spec"].get("egress", []):
            ports = rule.get("ports")
            # A port entry without a number covers every port of its protocol.
            if ports and not any(p.get("port", port) == port and p.get("protocol", "TCP") == protocol for p in ports):
                continue
            peers = rule.get("to")
            if not peers or any(reaches(peer, policy["metadata"]["namespace"], destination) for peer in peers):
                return True
    return False


def test_the_egress_reader_follows_kubernetes_semantics():
    me = {"namespace": "ns", "labels": {"app.kubernetes.io/name": "loki"}}
    deny = {"metadata": {"namespace": "ns"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}
    https_out = {"metadata": {"namespace": "ns"}, "spec": {
        "podSelector": {"matchLabels": me["labels"]}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                    "ports": [{"protocol": "TCP", "port": 443}]}]}}
    outside, inside = {"ip": "203.0.113.7"}, {"ip": "10.1.2.3"}
    pod = {"namespace": "ns", "labels": {"app.kubernetes.io/name": "jaeger"}}
    assert sends([], me, outside, 443)
    assert not sends([deny], me, outside, 443)
    assert sends([deny, https_out], me, outside, 443)
    assert not sends([deny, https_out], me, outside, 80)
    assert not sends([deny, https_out], me, inside, 443)
    # An address block is not a pod selector, and a policy of another namespace changes nothing.
    assert not sends([deny, https_out], me, pod, 443)
    assert sends([deny], {**me, "namespace": "other"}, outside, 443)


def test_the_policy_reader_follows_kubernetes_semantics():
    def in_ns(*args, target_namespace="ns", **kwargs):
        return admitted(*args, target_namespace=target_namespace, **kwargs)

    app = {"app.kubernetes.io/name": "loki"}
    deny_all = {"metadata": {"namespace": "ns"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    allow_grafana = {"metadata": {"namespace": "ns"}, "spec": {
        "podSelector": {"matchLabels": app}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "grafana"}}}],
                     "ports": [{"protocol": "TCP", "port": 3100}]}]}}
    grafana = {"namespace": "ns", "labels": {"app.kubernetes.io/name": "grafana"}}
    elsewhere = {"namespace": "other", "labels": {"app.kubernetes.io/name": "grafana"}}
    assert in_ns([], grafana, app, 3100)
    assert not in_ns([deny_all], grafana, app, 3100)
    assert in_ns([deny_all, allow_grafana], grafana, app, 3100)
    assert not in_ns([deny_all, allow_grafana], grafana, app, 9095)
    assert not in_ns([deny_all, allow_grafana], grafana, app, 3100, "UDP")
    # The same labels in another namespace are another pod.
    assert not in_ns([deny_all, allow_grafana], elsewhere, app, 3100)
    # A policy isolates the pods of its own namespace only.
    assert in_ns([deny_all], grafana, app, 3100, target_namespace="other")
    # A namespace selector with expressions admits exactly the namespaces it names.
    either = {"metadata": {"namespace": "ns"}, "spec": {
        "podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["ns", "agents"]}]},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "grafana"}}}]}]}}
    agents = {"namespace": "agents", "labels": {"app.kubernetes.io/name": "grafana"}}
    assert in_ns([either], agents, app, 3100) and in_ns([either], grafana, app, 3100)
    assert not in_ns([either], elsewhere, app, 3100)


# --- what the stack declares and what it uses ------------------------------------------------


def policies(run) -> list[dict]:
    return [r.inputs for r in run.of_type(POLICY)]


def pod_labels(run, service: str) -> dict:
    return controller(run, service).inputs["spec"]["template"]["metadata"]["labels"]


def namespace_of(run, service: str) -> str:
    return controller(run, service).inputs["metadata"]["namespace"]


def on_node_network(run, service: str) -> bool:
    return bool(controller(run, service).inputs["spec"]["template"]["spec"].get("hostNetwork"))


def ports_of(run, service: str) -> dict[int, str]:
    container = controller(run, service).inputs["spec"]["template"]["spec"]["containers"][0]
    return {p["containerPort"]: p["name"] for p in container["ports"]}


ADDRESS = re.compile(r"(?<![\w.-])(?:([a-z0-9-]+)-\d+\.)?([a-z0-9-]+):(\d{2,5})\b")


def addresses(text: str, services: set[str], peers: dict[str, set[str]]) -> set[tuple[str, int]]:
    """Addresses of the stack's services in a text: `svc:port` or a replica's `svc-N.svc:port`;
    a headless peers Service's name stands for each of its members."""
    found = set()
    for replica_of, service, port in ADDRESS.findall(text):
        if service in services and replica_of in ("", service):
            found.add((service, int(port)))
        elif service in peers and not replica_of:
            found |= {(member, int(port)) for member in peers[service]}
    return found


def peer_services(run) -> dict[str, set[str]]:
    """Each headless Service that lists pods by a peers label: the workloads whose pods carry it."""
    found = {}
    for service in run.of_type("kubernetes:core/v1:Service"):
        label = next((k for k in service.inputs["spec"].get("selector", {}) if k.startswith(PEERS)), None)
        if label is not None:
            found[service.inputs["metadata"]["name"]] = {
                w for w in run.outputs["services"] if pod_labels(run, w).get(label) == "true"}
    return found


def connections(run) -> set[tuple[str, str, str]]:
    """(client, server, port name) for every connection the rendered configuration makes."""
    services = set(run.outputs["services"])
    peers = peer_services(run)
    calls: set[tuple[str, str, int]] = set()
    for client in services:
        text = json.dumps(container_files(run, client)) + json.dumps(container_args(run, client))
        # Grafana is configured through its environment (GF_UNIFIED_ALERTING_HA_PEERS).
        text += json.dumps(controller(run, client).inputs["spec"]["template"]["spec"]["containers"][0].get("env", []))
        calls |= {(client, server, port) for server, port in addresses(text, services, peers)}
    # Grafana is given its datasources and contact point through its API.
    grafana_inputs = json.dumps([r.inputs for r in run.resources if r.type.startswith("grafana:")])
    calls |= {("grafana", server, port) for server, port in addresses(grafana_inputs, services, peers)}
    # Pods found through the API are scraped one by one: the job keeps its apps' pods on one port.
    for job in prometheus_config(run)["scrape_configs"]:
        keep = {r["source_labels"][0]: r["regex"] for r in job.get("relabel_configs", []) if r.get("action") == "keep"}
        apps = keep.get("__meta_kubernetes_pod_label_app_kubernetes_io_name", "").split("|")
        for app in set(apps) & services:
            calls.add(("prometheus", app, int(keep["__meta_kubernetes_pod_container_port_number"])))
    named = set()
    for client, server, port in calls:
        assert port in ports_of(run, server), f"{client} calls {server}:{port}, a port {server} does not have"
        named.add((client, server, ports_of(run, server)[port]))
    return named


def sources(run) -> dict[str, dict]:
    found = {s: {"namespace": namespace_of(run, s), "labels": pod_labels(run, s)} for s in run.outputs["services"]}
    found["ingress controller"] = {"namespace": INGRESS_NAMESPACE, "labels": {"app.kubernetes.io/name": "ingress-nginx"}}
    found["another namespace"] = {"namespace": "app", "labels": {"app.kubernetes.io/name": "api"}}
    # A pod someone else starts in either of the stack's namespaces.
    found["another pod"] = {"namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": "debug"}}
    found["another agent"] = {"namespace": AGENTS_NAMESPACE, "labels": {"app.kubernetes.io/name": "debug"}}
    return found


def without_an_address(run) -> set[tuple[str, str, str]]:
    """Admitted connections that no rendered address shows, each for a reason."""
    services = set(run.outputs["services"])
    return {
        # Loki's components reach each other over gRPC at the address they advertise: their own.
        ("loki", "loki", "grpc"),
        # In microservices mode, at the addresses the ring holds: distributors write to the
        # ingesters and queriers read them; queriers return results to the frontend that asked.
        *({("loki-distributor", "loki-ingester", "grpc"), ("loki-querier", "loki-ingester", "grpc"),
           ("loki-querier", "loki-query-frontend", "grpc")} if "loki-ingester" in services else set()),
        # Only through its Ingress is Grafana reachable from outside.
        ("ingress controller", "grafana", "http"),
        # Applications send their telemetry to the collector: staging's and prod's are in `app`
        # (otel_collector.clients.namespaces).
        *{("another namespace", "otel-collector", port) for port in ("otlp-grpc", "otlp-http")},
        # The collector's gateways send each trace to a sampler its DNS resolver reads from the
        # samplers' headless Service, on the port named beside it (otel_collector.scale_out).
        *({("otel-collector", "otel-collector-sampler", "otlp-grpc")} if "otel-collector-sampler" in services else set()),
    }


def admitted_connections(run) -> set[tuple[str, str, str]]:
    found = set()
    for server in run.outputs["services"]:
        if on_node_network(run, server):
            continue
        for number, port in ports_of(run, server).items():
            for name, source in sources(run).items():
                if admitted(policies(run), source, pod_labels(run, server), number,
                            target_namespace=namespace_of(run, server)):
                    found.add((name, server, port))
    return found


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_every_connection_the_stack_makes_is_admitted(stack_runs, stack):
    run = stack_runs[stack]
    needed = {c for c in connections(run) if not on_node_network(run, c[1])}
    # The reading found the connections that matter, so a policy that blocks one fails here.
    # Loki is one pod in staging; in prod its distributors take pushes and its frontends queries.
    push, query = ("loki-distributor", "loki-query-frontend") if stack == "prod" else ("loki", "loki")
    # prod's collector runs in two tiers: its samplers send traces to Jaeger's collectors (prod's
    # Jaeger is collectors and queriers, on Elasticsearch).
    traces_writer = "otel-collector-sampler" if stack == "prod" else "otel-collector"
    traces_store = "jaeger-collector" if stack == "prod" else "jaeger"
    assert {("grafana", "prometheus", "web"), ("grafana", query, "http"), ("grafana", "jaeger", "ui"),
            ("grafana", "alertmanager", "web"), ("prometheus", "alertmanager", "web"),
            ("alloy", push, "http"), ("otel-collector", push, "http"), (traces_writer, traces_store, "otlp-grpc"),
            ("otel-collector", "prometheus", "web"), ("prometheus", "kube-state-metrics", "metrics")} <= needed
    if stack == "prod":
        roles = {s for s in run.outputs["services"] if s.startswith("loki-")}
        assert len(roles) == 7
        # Every role gossips the rings with every other.
        assert {(a, b, "memberlist") for a in roles for b in roles if a != b} <= needed
        assert {("loki-query-frontend", "loki-query-scheduler", "grpc"), ("loki-querier", "loki-query-scheduler", "grpc"),
                ("loki-querier", "loki-compactor", "grpc"), ("loki-querier", "loki-index-gateway", "grpc"),
                ("loki-query-frontend", "loki-querier", "http"), ("prometheus", "loki-ingester", "http")} <= needed
    assert needed <= admitted_connections(run), sorted(needed - admitted_connections(run))


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_nothing_else_is_admitted(stack_runs, stack):
    run = stack_runs[stack]
    extra = admitted_connections(run) - connections(run) - without_an_address(run)
    assert not extra, sorted(extra)


# --- egress ---------------------------------------------------------------------------------

OUTSIDE = {"ip": "203.0.113.10"}
OUTSIDE_V6 = {"ip": "2001:db8::10"}
# Ports a probe tries beyond those any policy names: a pod that reaches these reaches every port.
PROBE_PORTS = (22, 25, 80, 3306, 8080, 27017)
EVERY_PORT = "every port"


def outside_ports(run, service: str, destination: dict) -> set:
    """The TCP ports `service` may reach at `destination`, or EVERY_PORT."""
    named = {p["port"] for policy in policies(run) for rule in policy["spec"].get("egress", [])
             for p in rule.get("ports", []) if "port" in p}
    source = {"namespace": namespace_of(run, service), "labels": pod_labels(run, service)}
    ports = {port for port in named | set(PROBE_PORTS) if sends(policies(run), source, destination, port)}
    return EVERY_PORT if set(PROBE_PORTS) <= ports else ports


# docs/platforms.md "Network policies": where each workload may go beyond the stack's own pods,
# from the stack file. The API server's port (443, or 6443 on kubeadm) for those that read it;
# Prometheus, which discovers annotated pods anywhere, every port.
API = {443, 6443}
REACH = {
    "staging": {"prometheus": EVERY_PORT, "alertmanager": {443}, "loki": set(), "alloy": API,
                "kube-state-metrics": API, "postgres-exporter": {5432}, "redis-exporter": {6379},
                "otel-collector": set(), "jaeger": set(), "grafana": set(), "gpu-exporter": set()},
    # Loki keeps its chunks in S3, over https; Redis is reached over TLS on 6380.
    # prod's Loki roles that read or write the bucket reach it; the others reach nothing outside.
    "prod": {"prometheus": EVERY_PORT, "alertmanager": {443}, "alloy": API,
             **{f"loki-{role}": {443} for role in ("ingester", "querier", "index-gateway", "compactor")},
             **{f"loki-{role}": set() for role in ("distributor", "query-frontend", "query-scheduler")},
             "kube-state-metrics": API, "postgres-exporter": {5432}, "redis-exporter": {6380},
             # Grafana's database, and the long-term store (Mimir) its second Prometheus datasource reads.
             # Jaeger's collectors and queriers, its Elasticsearch cluster.
             "otel-collector": set(), "otel-collector-sampler": set(), "jaeger": {9200}, "jaeger-collector": {9200},
             "grafana": {5432, 443},
             "gpu-exporter": set()},
}


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_every_connection_the_stack_makes_may_leave_its_client(stack_runs, stack):
    run = stack_runs[stack]
    for client, server, port in connections(run) - {("ingress controller", "grafana", "http")}:
        number = {name: n for n, name in ports_of(run, server).items()}[port]
        source = {"namespace": namespace_of(run, client), "labels": pod_labels(run, client)}
        destination = {"namespace": namespace_of(run, server), "labels": pod_labels(run, server)}
        assert sends(policies(run), source, destination, number), (client, server, port)


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_each_workload_reaches_outside_the_stack_only_where_it_must(stack_runs, stack):
    run = stack_runs[stack]
    reach = {s: outside_ports(run, s, OUTSIDE) for s in run.outputs["services"] if not on_node_network(run, s)}
    assert reach == REACH[stack]
    # The same over IPv6, and for a pod of another namespace (a database in the cluster).
    assert {s: outside_ports(run, s, OUTSIDE_V6) for s in reach} == REACH[stack]
    other = {"namespace": "databases", "labels": {"app.kubernetes.io/name": "postgres"}}
    assert {s: outside_ports(run, s, other) for s in reach} == REACH[stack]


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_every_pod_resolves_names_at_the_clusters_dns_and_nowhere_else(stack_runs, stack):
    run = stack_runs[stack]
    dns = {"namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}}
    elsewhere = {"namespace": "kube-system", "labels": {"k8s-app": "metrics-server"}}
    for service in run.outputs["services"]:
        if on_node_network(run, service):
            continue
        source = {"namespace": namespace_of(run, service), "labels": pod_labels(run, service)}
        assert sends(policies(run), source, dns, 53, "UDP") and sends(policies(run), source, dns, 53), service
        assert not sends(policies(run), source, elsewhere, 53, "UDP"), service
        assert not sends(policies(run), source, OUTSIDE, 53, "UDP"), service


def test_egress_follows_the_stack_file():
    config = merge(stack_config("prod"), {
        "prometheus": {"discovery": False, "remote_write": {"url": "https://mimir.example:8443/api/v1/push",
                                                            "username": "prod"}},
        "loki": {"storage": {"endpoint": "minio.storage.svc:9000"}},
        "grafana": {"datasource_urls": {"jaeger": "http://tempo.tracing.svc:3200"}},
    })
    run = run_program("prod", config, SECRETS)
    # Without discovery: the node agents on their node's network, the kubelets, CoreDNS, the
    # api job, remote write, and the API server it discovers the per-node agents through.
    assert outside_ports(run, "prometheus", OUTSIDE) == API | {9100, 9400, 12345, 10250, 9153, 8000, 8443}
    # Every Loki role that reads or writes the bucket reaches its endpoint's port, and no other.
    for role in ("ingester", "querier", "index-gateway", "compactor"):
        assert outside_ports(run, f"loki-{role}", OUTSIDE) == {9000}, role
    assert outside_ports(run, "loki-distributor", OUTSIDE) == set()
    # Beside prod's own: its database and the long-term store.
    assert outside_ports(run, "grafana", OUTSIDE) == {3200, 5432, 443}


def test_default_deny_covers_both_directions_in_both_namespaces(stack_runs):
    run = stack_runs["prod"]
    for name, namespace, direction in (
        ("default-deny-egress", NAMESPACE, "Egress"), ("node-agents-default-deny-egress", AGENTS_NAMESPACE, "Egress"),
    ):
        policy = run.one(POLICY, name).inputs
        assert policy["metadata"]["namespace"] == namespace
        assert policy["spec"] == {"podSelector": {}, "policyTypes": [direction]}
    # A pod someone else starts in the namespace reaches nothing, not even DNS.
    stranger = {"namespace": NAMESPACE, "labels": {"app.kubernetes.io/name": "debug"}}
    assert not sends(policies(run), stranger, {"namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}}, 53, "UDP")
    assert not sends(policies(run), stranger, OUTSIDE, 443)


def test_clustered_alertmanagers_gossip_over_tcp_and_udp(stack_runs):
    run = stack_runs["prod"]
    assert ("alertmanager", "alertmanager", "cluster") in connections(run)
    peer = {"namespace": NAMESPACE, "labels": pod_labels(run, "alertmanager")}
    for protocol in ("TCP", "UDP"):
        assert admitted(policies(run), peer, pod_labels(run, "alertmanager"), 9094, protocol)
    assert not admitted(policies(run), {"namespace": NAMESPACE, "labels": pod_labels(run, "prometheus")},
                        pod_labels(run, "alertmanager"), 9094)


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_every_pod_of_the_namespace_is_isolated(stack_runs, stack):
    run = stack_runs[stack]
    # Both of the stack's namespaces deny by default.
    for name, namespace in (("default-deny-ingress", NAMESPACE), ("node-agents-default-deny-ingress", AGENTS_NAMESPACE)):
        default = run.one(POLICY, name).inputs
        assert default["metadata"]["namespace"] == namespace
        assert default["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    # Each workload has its own policy, except node-exporter: on the node's network, no
    # NetworkPolicy applies to it (docs/known-limits.md says so).
    assert {r.name for r in run.of_type(POLICY)} == {
        "default-deny-ingress", "node-agents-default-deny-ingress", "default-deny-egress", "node-agents-default-deny-egress",
    } | {
        f"{s}-network-policy" for s in run.outputs["services"] if not on_node_network(run, s)
    }
    assert [s for s in run.outputs["services"] if on_node_network(run, s)] == ["node-exporter"]


@pytest.mark.parametrize("clients, admitted_from", [
    # Unset: the pods of every namespace, and nothing outside the pod network.
    ({}, {"app", "observability", "ingress-nginx", "monitoring"}),
    ({"namespaces": ["app", "monitoring"]}, {"app", "monitoring"}),
    ({"namespaces": [], "cidrs": ["10.20.0.0/16"]}, {"10.20.3.4"}),
])
def test_otlp_is_admitted_from_the_namespaces_and_address_blocks_the_stack_file_names(clients, admitted_from):
    config = merge(stack_config("staging"), {"otel_collector": {"clients": clients}})
    config["otel_collector"]["clients"] = clients  # replaced, not merged with the stack file's
    run = run_program("staging", config, SECRETS)
    collector = pod_labels(run, "otel-collector")
    callers = {namespace: {"namespace": namespace, "labels": {"app.kubernetes.io/name": "api"}}
               for namespace in ("app", "observability", "ingress-nginx", "monitoring")}
    callers |= {ip: {"ip": ip} for ip in ("10.20.3.4", "10.30.0.1")}
    for port in (4317, 4318):
        found = {name for name, caller in callers.items() if admitted(policies(run), caller, collector, port)}
        assert found == admitted_from, port


def test_an_external_grafana_reaches_the_datasources_from_wherever_it_runs():
    external = {"grafana": {"mode": "external", "url": "https://grafana.corp.example", "ingress": {"enabled": False}}}
    run = run_program("prod", merge(stack_config("prod"), external), SECRETS)
    outside = {"namespace": "grafana", "labels": {"app.kubernetes.io/name": "grafana"}}
    for server, port in (("prometheus", 9090), ("loki-query-frontend", 3100), ("jaeger", 16686), ("alertmanager", 9093)):
        assert admitted(policies(run), outside, pod_labels(run, server), port), server
    # Only the roles that answer queries: not their gRPC, nor the roles behind them.
    assert not admitted(policies(run), outside, pod_labels(run, "loki-query-frontend"), 9095)
    assert not admitted(policies(run), outside, pod_labels(run, "loki-querier"), 3100)


def test_docker_has_no_policies_or_ingress(stack_runs):
    types = {r.type for r in stack_runs["dev"].resources}
    assert POLICY not in types and INGRESS not in types


# --- Grafana's Ingress -----------------------------------------------------------------------


@pytest.mark.parametrize("stack, host", [("staging", "grafana.staging.example.internal"), ("prod", "grafana.example.internal")])
def test_grafana_is_served_over_tls_at_its_url(stack_runs, stack, host):
    run = stack_runs[stack]
    ingresses = run.of_type(INGRESS)
    # The one way in from outside the cluster; no Service is exposed on the nodes or a balancer.
    assert [i.name for i in ingresses] == ["grafana-ingress"]
    assert all(s.inputs["spec"].get("type", "ClusterIP") == "ClusterIP" for s in run.of_type("kubernetes:core/v1:Service"))
    ingress = ingresses[0].inputs
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "internal-ca"}
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"hosts": [host], "secretName": "grafana-tls"}]
    [rule] = spec["rules"]
    assert rule["host"] == host
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    assert backend["name"] == "grafana" and backend["port"]["name"] in ports_of(run, "grafana").values()
    # Grafana builds its links from the same URL the Ingress serves.
    env = {e["name"]: e.get("value") for e in controller(run, "grafana").inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GF_SERVER_ROOT_URL"] == f"https://{host}"


def test_ingress_settings_reach_the_ingress():
    settings = {"grafana": {"ingress": {
        "enabled": True, "tls_secret": "grafana-cert", "controller_namespace": "traefik",
        "annotations": {"traefik.ingress.kubernetes.io/router.entrypoints": "websecure"},
    }}}
    prod = stack_config("prod")
    del prod["grafana"]["ingress"]["class_name"], prod["grafana"]["ingress"]["cluster_issuer"]
    run = run_program("prod", merge(prod, settings), SECRETS)
    ingress = run.one(INGRESS, "grafana-ingress").inputs
    # No class: the cluster's default IngressClass. No issuer: the Secret is made otherwise.
    assert "ingressClassName" not in ingress["spec"]
    assert ingress["metadata"]["annotations"] == {"traefik.ingress.kubernetes.io/router.entrypoints": "websecure"}
    assert ingress["spec"]["tls"][0]["secretName"] == "grafana-cert"
    controller_pod = {"namespace": "traefik", "labels": {}}
    assert admitted(policies(run), controller_pod, pod_labels(run, "grafana"), 3000)
    assert not admitted(policies(run), {"namespace": INGRESS_NAMESPACE, "labels": {}}, pod_labels(run, "grafana"), 3000)


def test_without_an_ingress_grafana_admits_only_prometheus():
    prod = merge(stack_config("prod"), {"grafana": {"ingress": {"enabled": False}}})
    run = run_program("prod", prod, SECRETS)
    assert not run.of_type(INGRESS)
    clients = {name for name, source in sources(run).items()
               if admitted(policies(run), source, pod_labels(run, "grafana"), 3000)}
    assert clients == {"prometheus"}


@pytest.mark.parametrize("stack, override, key, message", [
    ("dev", {"grafana": {"ingress": {"enabled": True}}}, "grafana.ingress.enabled", "needs the kubernetes platform"),
    ("prod", {"grafana": {"mode": "external"}}, "grafana.ingress.enabled", "for the Grafana the stack deploys"),
    ("prod", {"grafana": {"url": "http://grafana.example.internal"}}, "grafana.url", "must be https://<host>"),
    ("prod", {"grafana": {"url": "https://example.internal/grafana"}}, "grafana.url", "must be https://<host>"),
    ("prod", {"grafana": {"ingress": {"tls_secret": "Grafana TLS"}}}, "grafana.ingress.tls_secret", "name"),
])
def test_a_bad_ingress_setting_is_refused_before_anything_is_registered(stack, override, key, message):
    run = Run(stack)
    with pytest.raises(ConfigError) as error:
        run_program(stack, merge(stack_config(stack), override), SECRETS if stack == "prod" else {}, run=run)
    text = str(error.value)
    assert f"stack '{stack}'" in text and f"key '{key}'" in text and message in text, text
    assert run.resources == []
