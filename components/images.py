"""Every container image the stack runs, pinned by tag in this one place.

Bump a tag here and the services that use it are replaced on the next `pulumi up`; nothing else
changes. A bump is not done until the upstream contract data under tests/upstream/ is taken again
at the new tag (see docs/upgrades.md): the tests hold every key, flag and metric name the stack
renders against that data.

Checked on 2026-11-30: each tag below is upstream's newest release, confirmed against the tags of
its source repository (Grafana's against its release packages on npm, @grafana/data, since its
repository is not mirrored here; the contrib collector's against the release repository's
distributions/otelcol-contrib manifest at v0.159.0).
"""

PROMETHEUS = "prom/prometheus:v3.14.0"
ALERTMANAGER = "prom/alertmanager:v0.34.0"
NODE_EXPORTER = "prom/node-exporter:v1.12.1"
# cAdvisor publishes to ghcr.io from 0.53 on; gcr.io holds only older releases.
CADVISOR = "ghcr.io/google/cadvisor:0.60.5"
POSTGRES_EXPORTER = "quay.io/prometheuscommunity/postgres-exporter:v0.20.1"
# The alpine build, not the default one FROM scratch: busybox's wget gives docker a health check.
# It names no user of its own; both platforms run it as the workload's run_as_user.
REDIS_EXPORTER = "oliver006/redis_exporter:v1.88.0-alpine"
DCGM_EXPORTER = "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-ubuntu22.04"
NVIDIA_SMI_EXPORTER = "utkuozdemir/nvidia_gpu_exporter:1.14.0"
LOKI = "grafana/loki:3.7.6"
# Promtail's last published build (end of life 2026-03-02; its code left Loki in 3.7). Chosen only
# by `log_shipper.type: promtail`; Alloy is the default.
PROMTAIL = "grafana/promtail:3.6.15"
ALLOY = "grafana/alloy:v1.18.1"
OTEL_COLLECTOR = "otel/opentelemetry-collector-contrib:0.159.0"
JAEGER = "jaegertracing/jaeger:2.20.0"
GRAFANA = "grafana/grafana:13.2.3"
# Kubernetes stacks only: the cluster's objects as metrics.
KUBE_STATE_METRICS = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0"
