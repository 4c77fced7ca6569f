"""Pytest plugin for mutmut's runs of one mutant: the tests of the mutated module go first.

mutmut hands a mutant's tests to pytest in no particular order and stops at the first failure. A
mutant of the alert rules is nearly always caught by tests/alerting/test_alert_rules.py, but it is
also credited to a thousand other tests that render a stack; run in a random order, the killing
test comes after minutes of others. Only the order changes here, never which tests run, so a mutant's
verdict is the same. Tests stay together by file, so each file's module fixtures are set up once.
conftest.py registers this only while mutmut runs a mutant.
"""

from __future__ import annotations

import os

# The test files that are about each module, by the module's dotted name under components.
OWN_TESTS = {
    "settings": ["test_settings.py", "test_settings_grammar.py"],
    "stack": ["test_stack.py", "test_upgrade.py"],
    "services.component": ["test_service_components.py"],
    "alerting.alert_rules": ["test_alert_rules.py", "test_prometheus.py"],
    "alerting.user_rules": ["test_user_rules.py"],
    "alerting.slos": ["test_slos.py"],
    "alerting.recording_rules": ["test_recording_rules.py", "test_dashboard_semantics.py"],
    "services.prometheus": ["test_prometheus.py"],
    "services.alertmanager": ["test_alertmanager.py", "test_alertmanager_live.py"],
    "services.node_exporter": ["test_node_exporter.py", "test_service_components.py"],
    "services.cadvisor": ["test_cadvisor.py"],
    "services.kube_state_metrics": ["test_kube_state_metrics.py"],
    "services.postgres_exporter": ["test_postgres_exporter.py"],
    "services.redis_exporter": ["test_redis_exporter.py"],
    "services.gpu_exporter": ["test_gpu_exporter.py"],
    "services.loki": ["test_loki.py"],
    "services.alloy": ["test_log_shipper.py"],
    "services.promtail": ["test_log_shipper.py"],
    "services.log_pipeline": ["test_log_shipper.py"],
    "services.otel_collector": ["test_otel_collector.py", "test_collector_tiers.py"],
    "services.jaeger": ["test_jaeger.py", "test_jaeger_distributed.py"],
    "workload": ["test_platform_docker.py", "test_platform_kubernetes.py"],
    "platforms": ["test_platform_docker.py", "test_platform_kubernetes.py"],
    "platforms.docker": ["test_platform_docker.py"],
    "platforms.kubernetes": ["test_platform_kubernetes.py", "test_network.py", "test_pod_privileges.py"],
    "services.grafana": ["test_grafana_server.py"],
    "grafana.content": ["test_grafana_content.py"],
    "grafana.dashboards": ["test_dashboards.py", "test_dashboard_semantics.py", "test_user_dashboards.py"],
    "grafana.kubernetes_dashboard": ["test_dashboards.py", "test_dashboard_semantics.py"],
    "grafana.slo_dashboard": ["test_slos.py", "test_dashboard_semantics.py"],
}
# Then the exact oracles, which read what many modules render; then everything else.
ORACLES = ["test_oracles_configs.py", "test_oracles_platform.py"]


def mutated_module(mutant: str) -> str:
    """components.platforms.kubernetes.x_f__mutmut_3 -> platforms.kubernetes"""
    dotted = mutant.removeprefix("components.").split("__mutmut_")[0]
    return ".".join(part for part in dotted.split(".") if not part.startswith("x"))


def order(files: list[str], module: str) -> dict[str, int]:
    """Rank of each test file for a mutant of `module`: its own tests, the oracles, the rest."""
    first = OWN_TESTS.get(module, []) + ORACLES
    return {f: first.index(f) if f in first else len(first) for f in files}


class KillersFirst:
    def pytest_collection_modifyitems(self, session, config, items):
        module = mutated_module(os.environ.get("MUTANT_UNDER_TEST", ""))
        files = [item.path.name for item in items]
        rank = order(sorted(set(files)), module)
        position = {item.nodeid: i for i, item in enumerate(items)}
        items.sort(key=lambda item: (rank[item.path.name], item.path.name, position[item.nodeid]))
