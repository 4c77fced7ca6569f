"""The Kubernetes dashboard: the cluster, its namespaces, workloads and persistent volumes.

Built only where the stack deploys kube-state-metrics (the Kubernetes stacks): it reads the state
of the cluster's objects. The panels on the API server, CoreDNS, the kubelets' volume statistics
and the kubelets' cAdvisor appear where Prometheus scrapes those (the jobs apiserver, coredns,
kubelet and cadvisor, which are also their producers in configs/metrics/catalog.yml).

Every metric and label below is one the pinned releases expose: kube-state-metrics v2.20.0
(internal/store/{node,pod,deployment,statefulset,daemonset,job}.go), the kubelet
(pkg/kubelet/metrics/collectors/volume_stats.go; /metrics/cadvisor labels each container's series
with namespace, pod and container in pkg/kubelet/server/server.go), the API server
(apiserver_request_total, apiserver_request_duration_seconds: stable metrics) and CoreDNS v1.14.7
(plugin/metrics/vars/vars.go).
"""

from __future__ import annotations

from typing import Optional

from components.alerting import user_rules
from components.grafana.dashboards import (
    PROMETHEUS, RATE, Dashboard, _quantile, dashboard, recorded, row, stat, table, timeseries,
)
from components.settings import Settings

UID = "kubernetes"
# What the dashboard needs to be built at all, and what each optional group of panels needs.
STATE = "kube-state-metrics"
APISERVER, COREDNS, KUBELET, CADVISOR = "apiserver", "coredns", "kubelet", "cadvisor"

# The namespace variable and the matcher every panel below the Cluster row filters by. "All" is
# `.+`: every namespace, without listing them all in the query.
NS = 'namespace=~"$namespace"'
NAMESPACE_VARIABLE = {
    "name": "namespace", "label": "Namespace", "type": "query", "datasource": PROMETHEUS,
    # Every namespace that holds a pod: the stack's kube-state-metrics watches no namespace objects.
    "query": "label_values(kube_pod_info, namespace)",
    "refresh": 2,  # on every change of the time range: namespaces come and go
    "sort": 1, "regex": "", "hide": 0, "includeAll": True, "multi": True, "allValue": ".+",
    "current": {"text": "All", "value": "$__all"}, "options": [],
}
CLAIM = "{{namespace}}/{{persistentvolumeclaim}}"
PER_HOUR = " * 3600"  # restarts are rare: per hour reads better than per second


def _desired_vs_available(kind: str, label: str, desired: str, available: str) -> dict:
    """One row per object of `kind`: how many pods it wants and how many are available."""
    # By namespace and name only: the columns a reader needs, and the labels the merge below joins on.
    by = f"namespace, {label}"
    found = table(f"{kind}: desired and available",
                  f"Pods each {kind[:-1]} wants, and those available; a row where they differ is rolling out or stuck.",
                  [(f"max by ({by}) ({desired}{{{NS}}})", "desired"),
                   (f"max by ({by}) ({available}{{{NS}}})", "available")])
    # The two queries' rows joined on their labels, one column each.
    found["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True},
                                       "renameByName": {"Value #A": "desired", "Value #B": "available"}}},
    ]
    return found


# The records of configs/prometheus/records.yml this dashboard reads instead of every pod's and
# every container's series: per namespace (which the namespace variable filters) and per node
# condition. Rates are over the catalog's window (five minutes).
CONDITIONS = "condition_status:kube_node_status_condition:sum"
PHASES = "namespace_phase:kube_pod_status_phase:sum"
CPU = "namespace:container_cpu_usage_seconds:sum_rate${window}"
MEMORY = "namespace:container_memory_working_set_bytes:sum"
RESTARTS = "namespace:kube_pod_container_status_restarts:sum_rate${window}"
POD_RESTARTS = "namespace_pod:kube_pod_container_status_restarts:sum_rate${window}"


def cluster(settings: Settings, producers: set[str]) -> list[dict]:
    conditions, phases = recorded(settings, CONDITIONS), recorded(settings, PHASES)
    panels = [
        row("Cluster"),
        stat("Nodes ready", "Nodes whose Ready condition is true.",
             [(f'sum({conditions}{{condition="Ready", status="true"}})', "")]),
        # false or unknown: a node that stopped reporting is unknown, and not ready either.
        stat("Nodes not ready", "Nodes whose Ready condition is false or unknown.",
             [(f'sum({conditions}{{condition="Ready", status!="true"}})', "")]),
        stat("Pods pending", "Pods not yet running: unscheduled, or waiting for their images or volumes.",
             [(f'sum({phases}{{phase="Pending"}})', "")]),
        stat("Containers crash-looping", "Containers waiting to be restarted after crashing again and again.",
             [('count(kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"}) or vector(0)', "")]),
        timeseries("Node conditions", "Nodes with each condition other than Ready true: memory, disk or PID "
                   "pressure, an unavailable network. 0 on a healthy cluster.",
                   [(f'sum by (condition) ({conditions}{{condition!="Ready", status="true"}})', "{{condition}}")]),
        timeseries("Pods by phase", "Pods in each phase.", [(f"sum by (phase) ({phases})", "{{phase}}")]),
    ]
    if APISERVER in producers:
        requests = "apiserver_request_total"
        panels += [
            timeseries("API server requests", "Requests per second to the API servers, by verb.",
                       [(f"sum by (verb) (rate({requests}[{RATE}]))", "{{verb}}")], "reqps"),
            timeseries("API server error ratio", "Share of API server requests answered with a 5xx status.",
                       [(f'sum(rate({requests}{{code=~"5.."}}[{RATE}])) / sum(rate({requests}[{RATE}]))', "5xx")],
                       "percentunit"),
            # WATCH and CONNECT (exec, attach, port-forward) are recorded when the stream closes: their
            # duration is how long a client stayed connected, not how fast the server answered.
            timeseries("API server p99 latency", "99th percentile of request duration by verb, without the "
                       "long-running WATCH and CONNECT.",
                       [(_quantile(0.99, 'apiserver_request_duration_seconds_bucket{verb!~"WATCH|CONNECT"}', "verb"),
                         "{{verb}}")], "s", width=24),
        ]
    if COREDNS in producers:
        responses = "coredns_dns_responses_total"
        panels += [
            timeseries("CoreDNS requests", "DNS queries per second, by record type.",
                       [(f"sum by (type) (rate(coredns_dns_requests_total[{RATE}]))", "{{type}}")], "reqps"),
            timeseries("CoreDNS SERVFAIL share", "Share of DNS responses that are SERVFAIL: CoreDNS could not "
                       "answer, often because an upstream resolver failed.",
                       [(f'sum(rate({responses}{{rcode="SERVFAIL"}}[{RATE}])) / sum(rate({responses}[{RATE}]))',
                         "SERVFAIL")], "percentunit"),
        ]
    return panels


def namespaces(settings: Settings, producers: set[str]) -> list[dict]:
    def by_namespace(record: str, selector: str = NS) -> str:
        return f"sum by (namespace) ({recorded(settings, record)}{{{selector}}})"

    panels = [row("Namespace")]
    if CADVISOR in producers:
        panels += [
            timeseries("CPU by namespace", "CPU cores used by the containers of each namespace.",
                       [(by_namespace(CPU), "{{namespace}}")]),
            timeseries("Memory by namespace", "Working set of the containers of each namespace.",
                       [(by_namespace(MEMORY), "{{namespace}}")], "bytes"),
        ]
    panels += [
        timeseries("Restarts by namespace", "Container restarts per hour in each namespace.",
                   [(f"{by_namespace(RESTARTS)}{PER_HOUR}", "{{namespace}}")]),
        timeseries("Running pods by namespace", "Pods running in each namespace.",
                   [(by_namespace(PHASES, f'phase="Running", {NS}'), "{{namespace}}")]),
    ]
    return panels


def workloads(settings: Settings) -> list[dict]:
    restarts = f"kube_pod_container_status_restarts_total{{{NS}}}"
    return [
        row("Workload"),
        _desired_vs_available("Deployments", "deployment", "kube_deployment_spec_replicas",
                              "kube_deployment_status_replicas_available"),
        _desired_vs_available("StatefulSets", "statefulset", "kube_statefulset_replicas",
                              "kube_statefulset_status_replicas_available"),
        _desired_vs_available("DaemonSets", "daemonset", "kube_daemonset_status_desired_number_scheduled",
                              "kube_daemonset_status_number_available"),
        # The restart count of each container now in CrashLoopBackOff: the waiting reason says
        # which, the counter how often.
        table("Crash-looping containers", "Containers waiting in CrashLoopBackOff now, with their restart count.",
              [(f"max by (namespace, pod, container) ({restarts}) and on (namespace, pod, container) "
                f'kube_pod_container_status_waiting_reason{{reason="CrashLoopBackOff", {NS}}}', "")]),
        # Recorded for the pods that restarted only.
        timeseries("Restarts by pod", "Container restarts per hour in each pod that restarted.",
                   [(f"sum by (namespace, pod) ({recorded(settings, POD_RESTARTS)}{{{NS}}}){PER_HOUR}",
                     "{{namespace}}/{{pod}}")]),
        # kube_job_failed, not kube_job_status_failed: the latter counts failed pods, and a job
        # whose pods failed may still succeed on a retry.
        table("Failed jobs", "Jobs that gave up (their Failed condition is true): the backoff limit or the "
              "deadline was reached. Listed until the job is deleted.",
              [(f'max by (namespace, job_name) (kube_job_failed{{condition="true", {NS}}}) == 1', "")]),
    ]


def volumes() -> list[dict]:
    def stats(what: str) -> str:
        return f"kubelet_volume_stats_{what}{{{NS}}}"

    # max by claim: a claim mounted on several nodes is reported by each node's kubelet alike.
    return [
        row("Persistent volumes"),
        # Available, not used: a filesystem keeps blocks back for root, so "used" never reaches
        # the capacity, while a full volume has nothing available.
        timeseries("Volume space used", "Share of each claim's capacity no longer available to write.",
                   [(f"max by (namespace, persistentvolumeclaim) (1 - {stats('available_bytes')} / "
                     f"{stats('capacity_bytes')})", CLAIM)], "percentunit"),
        timeseries("Volume inodes used", "Share of each claim's inodes in use; a volume out of inodes takes no "
                   "new file, whatever space it has left.",
                   [(f"max by (namespace, persistentvolumeclaim) ({stats('inodes_used')} / {stats('inodes')})",
                     CLAIM)], "percentunit"),
        timeseries("Volume space free", "Bytes still available in each claim.",
                   [(f"min by (namespace, persistentvolumeclaim) ({stats('available_bytes')})", CLAIM)], "bytes"),
        # Over 6 hours, not $__rate_interval: a few minutes of writes say little about the days ahead.
        table("Predicted time until full", "When each claim runs out of space, at the rate its free space "
              "shrank over the last 6 hours. Claims whose free space is not shrinking are not listed.",
              [(f"min by (namespace, persistentvolumeclaim) ({stats('available_bytes')} / "
                f"-(deriv({stats('available_bytes')}[6h]) < 0))", "")], "s"),
    ]


def kubernetes(settings: Settings, producers: Optional[set[str]] = None) -> Dashboard | None:
    """`producers`: what the stack deploys, as configs/metrics/catalog.yml names it (by default,
    what user_rules.deployed_producers finds in the settings)."""
    producers = user_rules.deployed_producers(settings) if producers is None else set(producers)
    if STATE not in producers:
        return None
    panels = cluster(settings, producers) + namespaces(settings, producers) + workloads(settings)
    if KUBELET in producers:
        panels += volumes()
    return dashboard(UID, "Kubernetes", "Platform",
                     "Nodes, pods, workloads and persistent volumes (kube-state-metrics, the kubelets), with the "
                     "API server and CoreDNS. Every row below Cluster shows the namespaces chosen in Namespace.",
                     panels, tags=("kubernetes",), variables=(NAMESPACE_VARIABLE,))
