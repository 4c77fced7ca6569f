"""Every container image the stack runs, pinned by tag in this one place.

Bump a tag here and the services that use it are replaced on the next `pulumi up`; nothing else
changes. Keep rendered configuration within what these versions and Debian's promtool/amtool
(used by the tests) both accept.
"""

PROMETHEUS = "prom/prometheus:v3.13.3"
ALERTMANAGER = "prom/alertmanager:v0.34.0"
NODE_EXPORTER = "prom/node-exporter:v1.10.2"
CADVISOR = "ghcr.io/google/cadvisor:0.56.2"
POSTGRES_EXPORTER = "quay.io/prometheuscommunity/postgres-exporter:v0.17.1"
# The alpine build, not the default one FROM scratch: busybox's wget gives docker a health check.
# It names no user of its own; both platforms run it as the workload's run_as_user.
REDIS_EXPORTER = "oliver006/redis_exporter:v1.74.0-alpine"
DCGM_EXPORTER = "nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.3-ubuntu22.04"
NVIDIA_SMI_EXPORTER = "utkuozdemir/nvidia_gpu_exporter:1.3.2"
LOKI = "grafana/loki:3.7.6"
# Promtail's last line (end of life 2026-03-02; its code left Loki in 3.7).
PROMTAIL = "grafana/promtail:3.6.10"
ALLOY = "grafana/alloy:v1.18.0"
OTEL_COLLECTOR = "otel/opentelemetry-collector-contrib:0.155.0"
JAEGER = "jaegertracing/jaeger:2.19.0"
GRAFANA = "grafana/grafana:12.3.6"
