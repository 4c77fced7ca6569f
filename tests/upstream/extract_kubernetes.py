#!/usr/bin/env python3
"""Take the upstream contract for the Kubernetes metric producers from their source.

Writes, next to this file:

- kube_state_metrics.json, from the bare mirror of kubernetes/kube-state-metrics at KSM_TAG;
- coredns.json, from the bare mirror of coredns/coredns at COREDNS_TAG;
- kubernetes.json: the kubelet's and the API server's metric names and the kubelet's
  path-to-subresource mapping.

kubernetes/kubernetes is too large to mirror. Its part is the hand-maintained table
KUBERNETES_FILES below: for each file read (through the search index, which holds files at
assorted commits of the main branch, not the release tags), the commit it was read at and the
metric names its declarations compose to. To take it again from a real source tree instead, give
--kubernetes with a checkout (a sparse one holding the paths in KUBERNETES_FILES is enough): the
same files are then parsed and the names written come from that tree, its HEAD recorded.
The kubelet's embedded cAdvisor (/metrics/cadvisor) is computed from the cAdvisor mirror at
KUBELET_CADVISOR_TAG, restricted to the metric kinds the kubelet's server.go includes.

    python3 tests/upstream/extract_kubernetes.py --mirrors /work/.mirror --date YYYY-MM-DD
    python3 tests/upstream/extract_kubernetes.py --mirrors /work/.mirror --date YYYY-MM-DD \\
        --kubernetes ~/src/kubernetes      # a checkout at the release to check against

Like extract_metrics_traces.py, whose git and Go-reading helpers it uses, it reads Go with
regular expressions; it stops with a message when something it expects is not where it was.
Not run by CI.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Optional

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from extract_metrics_traces import (  # noqa: E402
    GO_STRING,
    Repo,
    _split_args,
    fq_name,
    go_string,
    imports,
    matching_brace,
    process_metric_names,
    string_constants,
    strip_comments,
)

# Pinned releases: keep in step with components/images.py.
KSM_TAG = "v2.20.0"
COREDNS_TAG = "v1.14.7"
# cAdvisor as the kubelet vendors it, not the standalone cAdvisor the Docker stacks run
# (cadvisor.json), and client_golang as the kubelet and API server link it (their process
# collector). Both are the versions go.mod files of the 1.34/1.35 era require, as the search
# index shows them (the release's own go.mod was not read): set them from the go.mod of the
# release checked against.
KUBELET_CADVISOR_TAG = "v0.53.0"
KUBERNETES_CLIENT_GOLANG_TAG = "v1.23.2"

# The plugins of the Corefile kubeadm writes (and the stack's CoreDNS runs): their metrics.
COREDNS_PLUGINS = ("errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop", "reload", "loadbalance")

# client-go's typed clients by API group (k8s.io/client-go/kubernetes: <Group><Version>()).
CLIENT_GROUPS = {
    "Core": "",
    "Apps": "apps",
    "Batch": "batch",
    "Autoscaling": "autoscaling",
    "Networking": "networking.k8s.io",
    "Policy": "policy",
    "Storage": "storage.k8s.io",
    "Certificates": "certificates.k8s.io",
    "Coordination": "coordination.k8s.io",
    "Admissionregistration": "admissionregistration.k8s.io",
    "Discovery": "discovery.k8s.io",
    "Rbac": "rbac.authorization.k8s.io",
}


def fail(message: str) -> None:
    raise SystemExit(f"extract_kubernetes: {message}")


def write(name: str, data: dict) -> None:
    path = HERE / name
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(HERE.parent.parent)}")


# --- client_golang's default collectors ------------------------------------------------------------


def collector_kinds(names: Iterable[str]) -> dict[str, str]:
    """Kinds of the process and Go collectors' series: counters end in _total; the GC pause
    durations are a summary (exposed with _count and _sum too); the rest are gauges."""
    return {n: "summary" if n == "go_gc_duration_seconds" else "counter" if n.endswith("_total") else "gauge" for n in sorted(names)}


def go_collector_default_names(client: Repo) -> set[str]:
    """Names of client_golang's Go collector with its default options (NewGoCollector()): the
    classic go_* and go_memstats_* series and the runtime/metrics the default rule selects."""
    text = strip_comments(client.show("prometheus/go_collector.go"))
    names = {"go_memstats_" + go_string(m) for m in re.findall(r"memstatNamespace\((" + GO_STRING + r")\)", text)}
    names |= {go_string(m) for m in re.findall(r"(" + GO_STRING + r")", text) if re.fullmatch(r'"go_\w+[a-z]"', m)}
    if "go_gc_duration_seconds" not in names or "MustNewConstSummary" not in text:
        fail("client_golang: the Go collector no longer writes go_gc_duration_seconds as a summary")
    options = strip_comments(client.show("prometheus/internal/go_collector_options.go"))
    rule = re.search(r"GoCollectorDefaultRuntimeMetrics\s*=\s*regexp\.MustCompile\((" + GO_STRING + r")\)", options)
    if not rule:
        fail("client_golang: GoCollectorDefaultRuntimeMetrics not found")
    for runtime_name in go_string(rule.group(1)).split("|"):
        # internal/go_runtime_metrics.go: /a/b:unit -> go_a_b_unit (these three are not cumulative).
        key, unit = runtime_name.split(":")
        names.add("go_" + key.strip("/").replace("/", "_").replace("-", "_") + "_" + unit)
    return names


# --- metric declarations in Go -------------------------------------------------------------------

OPTS = re.compile(r"\b(?:prometheus|metrics|compbasemetrics|k8smetrics|basemetrics)?\.?(Counter|Gauge|Histogram|Summary)(?:Vec)?Opts\s*{")


def resolve(expr: str, consts: dict[str, str]) -> Optional[str]:
    """A string expression of literals and constants joined by `+`; `pkg.Name` is looked up as Name."""
    out = []
    for part in (p.strip() for p in expr.split("+")):
        if re.fullmatch(GO_STRING, part):
            out.append(go_string(part))
        elif part in consts:
            out.append(consts[part])
        elif "." in part and part.rsplit(".", 1)[1] in consts:
            out.append(consts[part.rsplit(".", 1)[1]])
        else:
            return None
    return "".join(out)


def opts_metrics(text: str, consts: dict[str, str]) -> dict[str, dict]:
    """name -> {kind, stability?, deprecated_version?} of every *Opts declaration in a Go file."""
    found: dict[str, dict] = {}
    for m in OPTS.finditer(text):
        open_at = m.end() - 1
        body = text[open_at + 1 : matching_brace(text, open_at)]
        fields = {}
        for key in ("Namespace", "Subsystem", "Name", "StabilityLevel", "DeprecatedVersion"):
            km = re.search(rf"(?m)^\s*{key}\s*:\s*([^,\n]+),?\s*$", body)
            if km:
                fields[key] = km.group(1).strip()
        if "Name" not in fields:
            continue
        parts = [resolve(fields[k], consts) if k in fields else "" for k in ("Namespace", "Subsystem", "Name")]
        if any(p is None for p in parts):
            fail(f"cannot resolve the name of {m.group(0)} {fields}")
        info = {"kind": m.group(1).lower()}
        if "StabilityLevel" in fields:
            info["stability"] = fields["StabilityLevel"].rsplit(".", 1)[-1]
        if "DeprecatedVersion" in fields:
            info["deprecated_version"] = resolve(fields["DeprecatedVersion"], consts)
        found[fq_name(*parts)] = info  # type: ignore[arg-type]
    # component-base's NewDesc(BuildFQName(...) | "name", help, labels, constLabels, stability, deprecated)
    for m in re.finditer(r"\bNewDesc\(", text):
        args = _split_args(text, m.end() - 1)
        if not args:
            continue
        first = args[0]
        fq = re.fullmatch(r"(?s)(?:\w+\.)?BuildFQName\((.*)\)", first)
        if fq:
            parts = [resolve(a.strip(), consts) for a in fq.group(1).split(",")]
            name = fq_name(*parts) if all(p is not None for p in parts) and len(parts) == 3 else None  # type: ignore[arg-type]
        else:
            name = resolve(first, consts)
        if not name:
            fail(f"cannot resolve the NewDesc name {first!r}")
        info = {"kind": "custom"}
        if len(args) >= 5 and re.fullmatch(r"(?:\w+\.)?(ALPHA|BETA|STABLE|INTERNAL)", args[4]):
            info["stability"] = args[4].rsplit(".", 1)[-1]
        found[name] = info
    return found


# --- kube-state-metrics --------------------------------------------------------------------------


def ksm_metrics(ksm: Repo) -> tuple[dict[str, dict], dict[str, str]]:
    """Every metric family of internal/store (name -> type, stability, deprecation, opt-in,
    resource), and resource -> the family symbol its store builds."""
    builder = strip_comments(ksm.show("internal/store/builder.go"))
    available = builder[builder.index("var availableStores") :]
    available = available[: matching_brace(available, available.index("{"))]
    build_of = dict(re.findall(r'"(\w+)":\s*func\(b \*Builder\) \[\]cache\.Store \{ return b\.(\w+)\(\) \}', available))
    family_of, listwatch_of, scope_of = {}, {}, {}
    for resource, build in build_of.items():
        m = re.search(rf"func \(b \*Builder\) {build}\(\) \[\]cache\.Store {{\s*return b\.(buildStoresFunc|buildClusterScopedStores)\((\w+)[(,].*?, (create\w+ListWatch),", builder)
        if not m:
            fail(f"kube-state-metrics: no store builder for {resource}")
        scope_of[resource] = "cluster" if m.group(1) == "buildClusterScopedStores" else "namespaced"
        family_of[resource] = m.group(2)
        listwatch_of[resource] = m.group(3)
    metric_types = dict(re.findall(r'(\w+)\s+Type\s*=\s*"(\w+)"', strip_comments(ksm.show("pkg/metric/metric.go"))))

    metrics: dict[str, dict] = {}
    files = [p for p in ksm.go_files("internal/store") if p not in ("internal/store/builder.go", "internal/store/testutils.go", "internal/store/utils.go")]
    texts = {p: strip_comments(ksm.show(p)) for p in files}
    consts: dict[str, str] = {}
    for text in texts.values():
        consts.update(string_constants(text))
    resource_of_file = {}
    for resource, family in family_of.items():
        owners = [p for p, t in texts.items() if re.search(rf"(?m)^(?:func |\s*|var ){family}\b\s*(?:\(|=)", t)]
        if len(owners) != 1:
            fail(f"kube-state-metrics: {family} is defined in {owners}")
        resource_of_file[owners[0]] = resource
    for path, text in texts.items():
        for m in re.finditer(r"\bgenerator\.(NewFamilyGeneratorWithStability|NewOptInFamilyGenerator)\(", text):
            args = _split_args(text, m.end() - 1)
            name = resolve(args[0], consts)
            if not name:
                fail(f"kube-state-metrics: cannot resolve the family name {args[0]!r} in {path}")
            mtype = metric_types.get(args[2].rsplit(".", 1)[-1])
            stability = args[3].rsplit(".", 1)[-1]
            deprecated = resolve(args[4], consts)
            if mtype is None or stability not in ("ALPHA", "BETA", "STABLE") or deprecated is None:
                fail(f"kube-state-metrics: unexpected arguments for {name}: {args[2:5]}")
            if path not in resource_of_file:
                fail(f"kube-state-metrics: {path} declares {name} but builds no store")
            metrics[name] = {
                "type": mtype,
                "stability": stability,
                "opt_in": m.group(1) == "NewOptInFamilyGenerator",
                "resource": resource_of_file[path],
            }
            if deprecated:
                metrics[name]["deprecated_version"] = deprecated
    missing = sorted(set(resource_of_file.values()) ^ set(family_of))
    if missing:
        fail(f"kube-state-metrics: resources without families: {missing}")
    return dict(sorted(metrics.items())), {"listwatch": listwatch_of, "scope": scope_of, "texts": texts}  # type: ignore[dict-item]


def ksm_resources(ksm: Repo, found: dict) -> dict:
    """The values --resources takes, the default set, and what each lists and watches."""
    resource_go = strip_comments(ksm.show("pkg/options/resource.go"))
    default_block = resource_go[resource_go.index("DefaultResources = ResourceSet{") :]
    default_block = default_block[: matching_brace(default_block, default_block.index("{"))]
    default = sorted(re.findall(r'"(\w+)":\s*struct\{\}\{\}', default_block))
    apis = {}
    texts = found["texts"]
    for resource, listwatch in found["listwatch"].items():
        owner = [t for t in texts.values() if f"func {listwatch}(" in t]
        if len(owner) != 1:
            fail(f"kube-state-metrics: {listwatch} not found once")
        body = owner[0][owner[0].index(f"func {listwatch}(") :]
        body = body[: matching_brace(body, body.index("{", body.index(")")))]
        calls = set(re.findall(r"kubeClient\.(\w+?)V\d\w*\(\)\.(\w+)\([^)]*\)\.(List|Watch)\(", body))
        if len({(c, m) for c, m, _ in calls}) != 1:
            fail(f"kube-state-metrics: {listwatch} calls {calls}")
        client, method = next(iter(calls))[:2]
        if client not in CLIENT_GROUPS or method.lower() != resource:
            fail(f"kube-state-metrics: {resource} is listed through {client}.{method}")
        apis[resource] = {
            "group": CLIENT_GROUPS[client],
            "resource": method.lower(),
            "verbs": sorted(v.lower() for _, _, v in calls),
            "scope": found["scope"][resource],
        }
    # The project's own example ClusterRole (generated from its jsonnet) must grant what the code lists.
    role = yaml.safe_load(ksm.show("examples/standard/cluster-role.yaml"))
    granted = {(g, r) for rule in role["rules"] if set(rule["verbs"]) >= {"list", "watch"}
               for g in rule["apiGroups"] for r in rule["resources"]}
    for resource, api in apis.items():
        if (api["group"], api["resource"]) not in granted:
            fail(f"kube-state-metrics: the example ClusterRole does not grant {api}")
    auth_filter = [
        {"group": g, "resource": r, "verbs": sorted(rule["verbs"])}
        for rule in role["rules"] if "list" not in rule["verbs"] for g in rule["apiGroups"] for r in rule["resources"]
    ]
    if set(default) - set(apis):
        fail(f"kube-state-metrics: default resources without a store: {sorted(set(default) - set(apis))}")
    return {
        "accepted": sorted(apis),
        "default": default,
        "api": dict(sorted(apis.items())),
        "auth_filter_rules": auth_filter,
    }


def ksm_flags(ksm: Repo) -> list[str]:
    """Every flag: the help text the project generates into its docs (cobra's own flags and
    klog's included), checked against the flags pkg/options/options.go defines."""
    doc = ksm.show("docs/developer/cli-arguments.md")
    block = doc[doc.index("$ kube-state-metrics -h") :]
    block = block[: block.index("```")]
    flags = set()
    for m in re.finditer(r"(?m)^\s+(?:-(\w), )?--([\w-]+)", block):
        flags.add(m.group(2))
        if m.group(1):
            flags.add(m.group(1))
    options = strip_comments(ksm.show("pkg/options/options.go"))
    own = set(re.findall(r"\.Flags\(\)\.\w+?Var(?:P)?\([^,]+,\s*\"([\w-]+)\"", options))
    if not own or own - flags:
        fail(f"kube-state-metrics: flags of options.go missing from the generated help: {sorted(own - flags)}")
    return sorted(flags)


def ksm_server(ksm: Repo, metric_flags: dict) -> dict:
    """Ports, the paths each server serves, and what the image and example deployment say."""
    server = strip_comments(ksm.show("pkg/app/server.go"))
    consts = string_constants(server)

    def paths(func: str) -> list[str]:
        body = server[server.index(f"func {func}(") :]
        body = body[: matching_brace(body, body.index("{", body.index(")")))]
        found = {consts[c] for c in re.findall(r"mux\.Handle(?:Func)?\((\w+Path)\b", body)}
        return sorted(found)

    options = strip_comments(ksm.show("pkg/options/options.go"))
    port = re.search(r'IntVar\(&o\.Port, "port", (\d+)', options)
    telemetry = re.search(r'IntVar\(&o\.TelemetryPort, "telemetry-port", (\d+)', options)
    dockerfile = ksm.show("Dockerfile")
    deployment = yaml.safe_load(ksm.show("examples/standard/deployment.yaml"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probes = {
        kind: {"path": container[f"{kind}Probe"]["httpGet"]["path"], "port": container[f"{kind}Probe"]["httpGet"]["port"]}
        for kind in ("liveness", "readiness")
    }
    user = re.search(r"(?m)^USER\s+(\S+)", dockerfile)
    entrypoint = re.search(r"(?m)^ENTRYPOINT\s+(\[.*\])", dockerfile)
    if not (port and telemetry and user and entrypoint):
        fail("kube-state-metrics: ports, USER or ENTRYPOINT not found")
    return {
        "port": int(port.group(1)),
        "telemetry_port": int(telemetry.group(1)),
        "paths": {"port": paths("buildMetricsServer"), "telemetry_port": paths("buildTelemetryServer")},
        "image": {
            "reference": container["image"],
            "dockerfile_user": user.group(1),
            "entrypoint": json.loads(entrypoint.group(1)),
            "base": re.search(r"(?m)^FROM\s+(\S+)\s*$", dockerfile).group(1),  # type: ignore[union-attr]
        },
        "example_deployment": {
            "ports": ports,
            "probes": probes,
            "run_as_user": container["securityContext"].get("runAsUser"),
        },
    }


def ksm_telemetry(ksm: Repo, client: Repo) -> dict[str, str]:
    """Self-metrics on the telemetry port (name -> kind): kube_state_metrics_* and the handler
    histogram, the version collector's build_info, and client_golang's process and Go collectors."""
    names = collector_kinds(process_metric_names(client) | go_collector_default_names(client))
    for path in [p for p in ksm.files("pkg") if p.endswith(".go") and not p.endswith("_test.go")]:
        text = strip_comments(ksm.show(path))
        names.update({n: i["kind"] for n, i in opts_metrics(text, string_constants(text)).items()})
        for m in re.finditer(r"versionCollector\.NewCollector\((" + GO_STRING + r")", text):
            names[go_string(m.group(1)) + "_build_info"] = "gauge"
    return dict(sorted(names.items()))


def kube_state_metrics(ksm: Repo, mirrors: Path, date: str) -> dict:
    metrics, found = ksm_metrics(ksm)
    client = Repo("prometheus/client_golang", mirrors / "prometheus+client_golang" / "repo", go_mod_version(ksm, "github.com/prometheus/client_golang"))
    data = {
        "metrics": metrics,
        "flags": ksm_flags(ksm),
        "resources": ksm_resources(ksm, found),
        "server": ksm_server(ksm, metrics),
        "telemetry_metrics": ksm_telemetry(ksm, client),
    }
    data["source"] = {**ksm.source(date), "also": [client.source(date)]}
    return data


# --- CoreDNS -------------------------------------------------------------------------------------


def coredns(core: Repo, mirrors: Path, date: str) -> dict:
    plugin_cfg = core.show("plugin.cfg")
    directory = dict(re.findall(r"(?m)^(\w+):(\S+)\s*$", plugin_cfg))
    namespace = string_constants(strip_comments(core.show("plugin/plugin.go")))
    consts = {"Namespace": namespace["Namespace"]}
    metrics: dict[str, dict] = {}
    seen_dirs: set[str] = set()

    def read_dir(path: str, plugin: str) -> None:
        if path in seen_dirs:
            return
        seen_dirs.add(path)
        # Each package of the directory (subpackages too) with the constants of all its files.
        packages: dict[str, dict[str, str]] = {}
        for p in core.files(path):
            if p.endswith(".go") and not p.endswith("_test.go") and "/testdata/" not in p:
                packages.setdefault(p.rsplit("/", 1)[0], {})[p] = strip_comments(core.show(p))
        for texts in packages.values():
            local = dict(consts)
            for text in texts.values():
                local.update(string_constants(text))
            for text in texts.values():
                for name, info in opts_metrics(text, local).items():
                    metrics[name] = {"kind": info["kind"], "plugin": plugin}
                # The shared packages a plugin uses (forward's proxy) declare metrics of their own.
                for imported in imports(text).values():
                    prefix = "github.com/coredns/coredns/plugin/pkg/"
                    if imported.startswith(prefix):
                        read_dir("plugin/pkg/" + imported[len(prefix) :], plugin)

    for plugin in COREDNS_PLUGINS:
        if plugin not in directory:
            fail(f"coredns: plugin {plugin} is not in plugin.cfg")
        read_dir(f"plugin/{directory[plugin]}", plugin)
    # The prometheus plugin serves client_golang's default registry: its process and Go collectors.
    client = Repo("prometheus/client_golang", mirrors / "prometheus+client_golang" / "repo", go_mod_version(core, "github.com/prometheus/client_golang"))
    metrics_go = strip_comments(core.show("plugin/metrics/metrics.go"))
    if "prometheus.DefaultRegisterer" not in metrics_go:
        fail("coredns: the prometheus plugin no longer serves the default registry")
    process = collector_kinds(process_metric_names(client) | go_collector_default_names(client))
    return {
        "plugins": list(COREDNS_PLUGINS),
        "metrics": dict(sorted(metrics.items())),
        "process_metrics": process,
        "source": {**core.source(date), "also": [client.source(date)]},
    }


def go_mod_version(repo: Repo, module: str) -> str:
    m = re.search(rf"(?m)^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", repo.show("go.mod"))
    if not m:
        fail(f"{repo.repository}: go.mod does not require {module}")
    return m.group(1)  # type: ignore[union-attr]


# --- Kubernetes: kubelet and API server ------------------------------------------------------------

# Read through the search index (read_file on kubernetes/kubernetes); each commit is the one the
# index named for the version read. `metrics`: what the file's declarations compose to
# (Namespace_Subsystem_Name), with the kind (histogram: exposed as _bucket/_count/_sum) and the
# stability level. Only metrics a file registers are listed (restclient's DNS resolver histogram
# is declared but not registered there, so it is left out).
K = "kubelet"
A = "apiserver"
KUBERNETES_FILES = [
    {
        "path": "pkg/kubelet/metrics/metrics.go", "commit": "94341df30b4aef29676b997d0e2320534d05bfab", "components": [K],
        "metrics": {
            "kubelet_node_name": "gauge", "kubelet_containers_per_pod_count": "histogram",
            "kubelet_pod_worker_duration_seconds": "histogram", "kubelet_pod_start_duration_seconds": "histogram",
            "kubelet_pod_start_sli_duration_seconds": "histogram", "kubelet_pod_start_total_duration_seconds": "histogram",
            "kubelet_first_network_pod_start_sli_duration_seconds": "gauge",
            "kubelet_cgroup_manager_duration_seconds": "histogram", "kubelet_pod_worker_start_duration_seconds": "histogram",
            "kubelet_pod_status_sync_duration_seconds": "histogram", "kubelet_pleg_relist_duration_seconds": "histogram",
            "kubelet_pleg_discard_events": "counter", "kubelet_pleg_relist_interval_seconds": "histogram",
            "kubelet_pleg_last_seen_seconds": "gauge", "kubelet_evented_pleg_connection_error_count": "counter",
            "kubelet_evented_pleg_connection_success_count": "counter",
            "kubelet_evented_pleg_connection_latency_seconds": "histogram",
            "kubelet_runtime_operations_total": "counter", "kubelet_runtime_operations_duration_seconds": "histogram",
            "kubelet_runtime_operations_errors_total": "counter", "kubelet_evictions": "counter",
            "kubelet_eviction_stats_age_seconds": "histogram", "kubelet_preemptions": "counter",
            "kubelet_device_plugin_registration_total": "counter", "kubelet_device_plugin_alloc_duration_seconds": "histogram",
            "kubelet_pod_resources_endpoint_requests_total": "counter", "kubelet_pod_resources_endpoint_requests_list": "counter",
            "kubelet_pod_resources_endpoint_requests_get_allocatable": "counter",
            "kubelet_pod_resources_endpoint_errors_list": "counter",
            "kubelet_pod_resources_endpoint_errors_get_allocatable": "counter",
            "kubelet_pod_resources_endpoint_requests_get": "counter", "kubelet_pod_resources_endpoint_errors_get": "counter",
            "kubelet_run_podsandbox_duration_seconds": "histogram", "kubelet_run_podsandbox_errors_total": "counter",
            "kubelet_running_pods": "gauge", "kubelet_running_containers": "gauge", "kubelet_desired_pods": "gauge",
            "kubelet_active_pods": "gauge", "kubelet_mirror_pods": "gauge", "kubelet_working_pods": "gauge",
            "kubelet_orphaned_runtime_pods_total": "counter", "kubelet_restarted_pods_total": "counter",
            "kubelet_started_pods_total": "counter", "kubelet_started_pods_errors_total": "counter",
            "kubelet_started_containers_total": "counter", "kubelet_started_containers_errors_total": "counter",
            "kubelet_started_host_process_containers_total": "counter",
            "kubelet_started_host_process_containers_errors_total": "counter",
            "kubelet_managed_ephemeral_containers": "gauge", "kubelet_graceful_shutdown_start_time_seconds": "gauge",
            "kubelet_graceful_shutdown_end_time_seconds": "gauge", "kubelet_lifecycle_handler_http_fallbacks_total": "counter",
            "kubelet_cpu_manager_pinning_requests_total": "counter", "kubelet_cpu_manager_pinning_errors_total": "counter",
            "kubelet_memory_manager_pinning_requests_total": "counter", "kubelet_memory_manager_pinning_errors_total": "counter",
            "kubelet_topology_manager_admission_requests_total": "counter",
            "kubelet_topology_manager_admission_errors_total": "counter",
            "kubelet_topology_manager_admission_duration_ms": "histogram", "kubelet_orphan_pod_cleaned_volumes": "gauge",
            "kubelet_orphan_pod_cleaned_volumes_errors": "gauge", "kubelet_node_startup_pre_kubelet_duration_seconds": "gauge",
            "kubelet_node_startup_pre_registration_duration_seconds": "gauge",
            "kubelet_node_startup_registration_duration_seconds": "gauge",
            "kubelet_node_startup_post_registration_duration_seconds": "gauge", "kubelet_node_startup_duration_seconds": "gauge",
            "kubelet_image_garbage_collected_total": "counter", "kubelet_image_pull_duration_seconds": "histogram",
            "kubelet_sleep_action_terminated_early_total": "counter", "kubelet_cgroup_version": "gauge",
        },
        "stability": {"*": "ALPHA", "kubelet_first_network_pod_start_sli_duration_seconds": "INTERNAL"},
    },
    {
        "path": "pkg/kubelet/metrics/collectors/volume_stats.go", "commit": "15b08666fae3c54f934d362f493ca9448aa62719", "components": [K],
        "metrics": {
            "kubelet_volume_stats_capacity_bytes": "custom", "kubelet_volume_stats_available_bytes": "custom",
            "kubelet_volume_stats_used_bytes": "custom", "kubelet_volume_stats_inodes": "custom",
            "kubelet_volume_stats_inodes_free": "custom", "kubelet_volume_stats_inodes_used": "custom",
            "kubelet_volume_stats_health_status_abnormal": "custom",
        },
        "stability": {"*": "ALPHA"},
    },
    {
        "path": "pkg/kubelet/metrics/collectors/log_metrics.go", "commit": "5ee699c3a198ae17b77369f04983ed779d1f5f9b", "components": [K],
        "metrics": {"kubelet_container_log_filesystem_used_bytes": "custom"},
        "stability": {"*": "ALPHA"},
    },
    {
        "path": "pkg/kubelet/certificate/kubelet.go", "commit": "16913111deb1a4c4ff76f4ba7ffd9ebef397a303", "components": [K],
        "metrics": {
            "kubelet_server_expiration_renew_errors": "counter",
            "kubelet_certificate_manager_server_rotation_seconds": "histogram",
            "kubelet_certificate_manager_server_ttl_seconds": "gauge",
            "kubelet_certificate_manager_client_expiration_renew_errors": "counter",
        },
        "stability": {"*": "ALPHA"},
    },
    {
        "path": "cmd/kubelet/app/server.go", "commit": "001332b0422071acf4860769f18e34b5e9b7c1bc", "components": [K],
        "metrics": {"kubelet_certificate_manager_client_ttl_seconds": "gauge"},
        "stability": {"*": "ALPHA"},
    },
    {
        # The index returned this version by id without naming its commit; its content
        # (apiserver_request_sli_duration_seconds, apiserver_watch_list_duration_seconds still ALPHA)
        # places it between 1.30 and 1.33. Read again from a checkout (--kubernetes) to pin it.
        "path": "staging/src/k8s.io/apiserver/pkg/endpoints/metrics/metrics.go", "commit": None, "index_id": "67067144",
        "components": [A],
        "metrics": {
            "apiserver_requested_deprecated_apis": "gauge", "apiserver_request_total": "counter",
            "apiserver_longrunning_requests": "gauge", "apiserver_request_duration_seconds": "histogram",
            "apiserver_request_slo_duration_seconds": "histogram", "apiserver_request_sli_duration_seconds": "histogram",
            "field_validation_request_duration_seconds": "histogram", "apiserver_response_sizes": "histogram",
            "apiserver_tls_handshake_errors_total": "counter", "apiserver_watch_events_total": "counter",
            "apiserver_watch_events_sizes": "histogram", "apiserver_current_inflight_requests": "gauge",
            "apiserver_current_inqueue_requests": "gauge", "apiserver_request_terminations_total": "counter",
            "apiserver_selfrequest_total": "counter", "apiserver_request_filter_duration_seconds": "histogram",
            "apiserver_request_aborts_total": "counter", "apiserver_request_post_timeout_total": "counter",
            "apiserver_request_timestamp_comparison_time": "histogram", "apiserver_watch_list_duration_seconds": "histogram",
        },
        "stability": {
            "*": "ALPHA", "apiserver_requested_deprecated_apis": "STABLE", "apiserver_request_total": "STABLE",
            "apiserver_longrunning_requests": "STABLE", "apiserver_request_duration_seconds": "STABLE",
            "apiserver_response_sizes": "STABLE", "apiserver_current_inflight_requests": "STABLE",
        },
        "deprecated": {"apiserver_request_slo_duration_seconds": "1.27.0"},
    },
    {
        "path": "staging/src/k8s.io/component-base/metrics/prometheus/restclient/metrics.go",
        "commit": "ddd467a0e8b7a211671e5ecef9fc892391e478c6", "components": [K, A],
        "metrics": {
            "rest_client_request_duration_seconds": "histogram", "rest_client_request_size_bytes": "histogram",
            "rest_client_response_size_bytes": "histogram", "rest_client_rate_limiter_duration_seconds": "histogram",
            "rest_client_requests_total": "counter", "rest_client_request_retries_total": "counter",
            "rest_client_exec_plugin_ttl_seconds": "gauge", "rest_client_exec_plugin_certificate_rotation_age": "histogram",
            "rest_client_exec_plugin_call_total": "counter", "rest_client_transport_cache_entries": "gauge",
            "rest_client_transport_create_calls_total": "counter",
        },
        "stability": {"*": "ALPHA"},
    },
    {
        "path": "staging/src/k8s.io/component-base/metrics/prometheus/workqueue/metrics.go",
        "commit": "4a0608cb77f6a53af41cb4a453af104a4d4a0610", "components": [K, A],
        "metrics": {
            "workqueue_depth": "gauge", "workqueue_adds_total": "counter", "workqueue_queue_duration_seconds": "histogram",
            "workqueue_work_duration_seconds": "histogram", "workqueue_unfinished_work_seconds": "gauge",
            "workqueue_longest_running_processor_seconds": "gauge", "workqueue_retries_total": "counter",
        },
        "stability": {"*": "ALPHA"},
    },
    {
        "path": "staging/src/k8s.io/component-base/metrics/prometheus/version/metrics.go",
        "commit": "95f08499d652a6211121d8af35f470609217c730", "components": [K, A],
        "metrics": {"kubernetes_build_info": "gauge"},
        "stability": {"*": "ALPHA"},
    },
]
# Read for what they register or serve, not for metric declarations.
KUBERNETES_CONTEXT = [
    {"path": "staging/src/k8s.io/component-base/metrics/legacyregistry/registry.go",
     "commit": "8203f8728c5e44a3b7409552645d7a3186cb5dd6",
     "read_for": "the global registry /metrics serves registers client_golang's process collector and its Go collector with every runtime metric (MetricsAll)"},
    {"path": "pkg/kubelet/server/server.go", "commit": "4a37f009ca615534484b1116d0f147f1f23cf067",
     "read_for": "the metrics paths and the cAdvisor metric kinds /metrics/cadvisor includes"},
    {"path": "pkg/kubelet/server/auth.go", "commit": "7caff55fd9c4689bb393da2654ec1cbe06cf4f44",
     "read_for": "the authorization attributes of a request to the kubelet"},
]

# pkg/kubelet/server/auth.go (GetRequestAttributes): resource nodes in the core group, name the
# node, verb from the HTTP method (GET: get); the subresource from the path. server.go's path
# constants: /metrics, /metrics/cadvisor, /metrics/resource and /metrics/probes all fall under
# /metrics. With the KubeletFineGrainedAuthz gate, /pods, /runningpods/, /healthz, /configz and
# /statusz are also tried as their own subresource before proxy.
KUBELET_AUTHORIZATION = {
    "api_group": "",
    "resource": "nodes",
    "verbs_by_method": {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"},
    "paths": {
        "/metrics": "metrics", "/metrics/cadvisor": "metrics", "/metrics/resource": "metrics",
        "/metrics/probes": "metrics", "/stats/": "stats", "/logs/": "log", "/checkpoint/": "checkpoint",
    },
    "other_paths": "proxy",
    "fine_grained_paths": {"/pods": "pods", "/runningpods/": "pods", "/healthz": "healthz", "/configz": "configz", "/statusz": "statusz"},
}

# server.go (InstallDefaultHandlers): the cAdvisor metric kinds the kubelet's /metrics/cadvisor includes.
KUBELET_CADVISOR_KINDS = [
    "CpuUsageMetrics", "MemoryUsageMetrics", "CpuLoadMetrics", "DiskIOMetrics", "DiskUsageMetrics",
    "NetworkUsageMetrics", "AppMetrics", "ProcessMetrics", "OOMMetrics",
]


def kubernetes_from_checkout(root: Path) -> list[dict]:
    """KUBERNETES_FILES taken again from a source tree: the same paths, parsed."""
    consts: dict[str, str] = {}
    texts = {}
    for entry in KUBERNETES_FILES:
        path = root / entry["path"]
        if not path.exists():
            fail(f"{path} is not in the checkout")
        texts[entry["path"]] = strip_comments(path.read_text())
    # The kubelet's metric names are constants of pkg/kubelet/metrics used across packages.
    for text in texts.values():
        consts.update(string_constants(text))
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    out = []
    for entry in KUBERNETES_FILES:
        found = opts_metrics(texts[entry["path"]], consts)
        stability = {n: i["stability"] for n, i in found.items() if "stability" in i}
        deprecated = {n: i["deprecated_version"] for n, i in found.items() if i.get("deprecated_version")}
        out.append({
            "path": entry["path"], "commit": head, "components": entry["components"],
            "metrics": {n: i["kind"] for n, i in found.items()},
            "stability": {"*": "ALPHA", **stability}, "deprecated": deprecated,
        })
    return out


def cadvisor_names(cad: Repo, kinds: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Names the kubelet's cAdvisor collectors expose with the given metric kinds included: every
    name outside an `includedMetrics.Has(container.X)` block, and those inside blocks of included kinds."""
    factory = strip_comments(cad.show("container/factory.go"))
    kind_value = dict(re.findall(r'(\w+)\s+MetricKind\s*=\s*"(\w+)"', factory))
    included = set(kinds)
    if included - set(kind_value):
        fail(f"cadvisor {cad.ref}: unknown metric kinds {sorted(included - set(kind_value))}")
    names: set[str] = set()
    for path in ("metrics/prometheus.go", "metrics/prometheus_machine.go"):
        text = strip_comments(cad.show(path))
        blocks = []
        for m in re.finditer(r"\bif\s+(?:c\.)?includedMetrics\.Has\(container\.(\w+)\)\s*{", text):
            open_at = m.end() - 1
            blocks.append((open_at, matching_brace(text, open_at), m.group(1)))
        for m in re.finditer(r'(?:\bname:\s*|NewDesc\()"(\w+)"', text):
            needed = {kind for start, end, kind in blocks if start < m.start() < end}
            if needed <= included:
                names.add(m.group(1))
    return sorted(names), {k: kind_value[k] for k in sorted(included)}


def kubernetes(mirrors: Path, date: str, checkout: Optional[Path]) -> dict:
    files = kubernetes_from_checkout(checkout) if checkout else KUBERNETES_FILES
    client = Repo("prometheus/client_golang", mirrors / "prometheus+client_golang" / "repo", KUBERNETES_CLIENT_GOLANG_TAG)
    process = collector_kinds(process_metric_names(client))

    def component(name: str) -> dict:
        metrics = {}
        for entry in files:
            if name not in entry["components"]:
                continue
            for metric, kind in entry["metrics"].items():
                info = {"kind": kind, "stability": entry["stability"].get(metric, entry["stability"]["*"]), "file": entry["path"]}
                if metric in entry.get("deprecated", {}):
                    info["deprecated_version"] = entry["deprecated"][metric]
                metrics[metric] = info
        for metric, kind in process.items():
            metrics[metric] = {"kind": kind, "stability": "none", "file": f"client_golang {client.ref} process collector"}
        return dict(sorted(metrics.items()))

    cad = Repo("google/cadvisor", mirrors / "google+cadvisor" / "repo", KUBELET_CADVISOR_TAG)
    cadvisor_metrics, kinds = cadvisor_names(cad, KUBELET_CADVISOR_KINDS)
    sources = [{k: entry[k] for k in ("path", "commit", "index_id") if k in entry} for entry in files]
    return {
        "kubelet_metrics": component(K),
        "apiserver_metrics": component(A),
        # The Go collector with MetricsAll exposes every runtime/metrics name of the Go release the
        # binary was built with: not listed, admitted by prefix.
        "metric_prefixes": ["go_"],
        "kubelet_cadvisor": {"kinds": kinds, "metrics": cadvisor_metrics},
        "kubelet_authorization": KUBELET_AUTHORIZATION,
        "source": {
            "repository": "kubernetes/kubernetes",
            "tag": "not a release tag: each file at the commit in files" if not checkout else "checkout",
            "read_through": "the search index (read_file)" if not checkout else str(checkout),
            "files": sources,
            "context": KUBERNETES_CONTEXT,
            "date": date,
            "also": [cad.source(date), client.source(date)],
        },
    }


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--date", required=True, help="the day the data is taken, YYYY-MM-DD")
    parser.add_argument("--kubernetes", type=Path, help="a kubernetes/kubernetes checkout to read KUBERNETES_FILES from")
    args = parser.parse_args(argv)
    m = args.mirrors
    ksm = Repo("kubernetes/kube-state-metrics", m / "kubernetes+kube-state-metrics" / "repo", KSM_TAG)
    write("kube_state_metrics.json", kube_state_metrics(ksm, m, args.date))
    core = Repo("coredns/coredns", m / "coredns+coredns" / "repo", COREDNS_TAG)
    write("coredns.json", coredns(core, m, args.date))
    write("kubernetes.json", kubernetes(m, args.date, args.kubernetes))


if __name__ == "__main__":
    main()
