"""Pytest plugin for mutmut's runs of one mutant: the tests of the mutated module go first.

mutmut hands a mutant's tests to pytest in no particular order and stops at the first failure. A
mutant of the alert rules is nearly always caught by tests/test_alert_rules.py, but it is also
credited to a thousand other tests that render a stack; run in a random order, the killing test
comes after minutes of others. Only the order changes here, never which tests run, so a mutant's
verdict is the same. Tests stay together by file, so each file's module fixtures are set up once.
conftest.py registers this only while mutmut runs a mutant.
"""

from __future__ import annotations

import os

# The test files that are about each module, by the module's dotted name under components.
OWN_TESTS = {
    "settings": ["test_settings.py", "test_settings_grammar.py"],
    "stack": ["test_stack.py", "test_upgrade.py"],
    "service": ["test_service_components.py"],
    "alert_rules": ["test_alert_rules.py", "test_prometheus.py"],
    "user_rules": ["test_user_rules.py"],
    "prometheus": ["test_prometheus.py"],
    "alertmanager": ["test_alertmanager.py", "test_alertmanager_live.py"],
    "node_exporter": ["test_node_exporter.py", "test_service_components.py"],
    "cadvisor": ["test_cadvisor.py"],
    "postgres_exporter": ["test_postgres_exporter.py"],
    "redis_exporter": ["test_redis_exporter.py"],
    "gpu_exporter": ["test_gpu_exporter.py"],
    "loki": ["test_loki.py"],
    "alloy": ["test_log_shipper.py"],
    "promtail": ["test_log_shipper.py"],
    "log_pipeline": ["test_log_shipper.py"],
    "otel_collector": ["test_otel_collector.py"],
    "jaeger": ["test_jaeger.py"],
    "workload": ["test_platform_docker.py", "test_platform_kubernetes.py"],
    "platform": ["test_platform_docker.py", "test_platform_kubernetes.py"],
    "platform.docker": ["test_platform_docker.py"],
    "platform.kubernetes": ["test_platform_kubernetes.py", "test_network.py"],
    "grafana": ["test_grafana.py"],
    "dashboards": ["test_dashboards.py", "test_dashboard_semantics.py", "test_user_dashboards.py"],
}
# Then the exact oracles, which read what many modules render; then everything else.
ORACLES = ["test_oracles_configs.py", "test_oracles_platform.py"]


def mutated_module(mutant: str) -> str:
    """components.platform.kubernetes.x_f__mutmut_3 -> platform.kubernetes"""
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
