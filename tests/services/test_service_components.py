"""Each service's component used alone, from a Pulumi program that has no stack settings.

A program here is a few lines in a temporary folder, run as `pulumi up` would run it (under the
mock engine, like every stack). Expected values come from the exporters' documentation: their
ports, and the environment variables they read.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from conftest import ROOT, Run, container_files, is_secret, run_program
from components.settings import PostgresExporterArgs, RedisExporterArgs

DAEMONSET = "kubernetes:apps/v1:DaemonSet"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONTAINER = "docker:index/container:Container"


def program(tmp_path: Path, body: str, config: dict | None = None) -> Run:
    """Run `body` as the __main__.py of a program of its own, which imports this repository's
    components as the examples do."""
    (tmp_path / "__main__.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nimport pulumi\n" + textwrap.dedent(body)
    )
    return run_program("test", config or {}, program_dir=tmp_path, project="standalone")


def test_node_exporter_alone_on_docker(tmp_path: Path):
    run = program(tmp_path, """
        from components.services.node_exporter import NodeExporter
        from components.platforms.docker import DockerPlatform

        platform = DockerPlatform()
        platform.provision()
        hosts = NodeExporter("node-exporter", platform=platform)
        pulumi.export("targets", list(hosts.scrape_job.targets))
        pulumi.export("addresses", hosts.addresses)
    """)
    component = run.one("observability:services:NodeExporter", "node-exporter")
    container = run.one(CONTAINER, "node-exporter")
    assert container.parent == component.urn
    # The platform's defaults: the "observability" network, containers named after it.
    assert run.one("docker:index/network:Network", "network").inputs["name"] == "observability"
    assert container.inputs["name"] == "observability-node-exporter"
    # node-exporter listens on 9100; other containers of the network reach it by its name.
    assert run.outputs["targets"] == ["node-exporter:9100"]
    assert run.outputs["addresses"] == {"metrics": ["node-exporter:9100"]}


def test_a_component_named_otherwise_names_its_workload_so(tmp_path: Path):
    run = program(tmp_path, """
        from components.services.node_exporter import NodeExporter
        from components.platforms.kubernetes import KubernetesPlatform
        from components.settings import KubernetesSettings

        platform = KubernetesPlatform(KubernetesSettings(namespace="monitoring"), environment="lab")
        platform.provision()
        hosts = NodeExporter("hosts", platform=platform)
        pulumi.export("pods", list(hosts.scrape_job.pods.apps))
        pulumi.export("namespace", hosts.scrape_job.pods.namespace)
    """)
    daemonset = run.one(DAEMONSET, "hosts").inputs
    assert daemonset["metadata"]["name"] == "hosts"
    # A node agent: in the namespace of the node agents, named after the stack's.
    assert daemonset["metadata"]["namespace"] == "monitoring-node-agents"
    assert daemonset["metadata"]["labels"]["app.kubernetes.io/instance"] == "lab"
    assert run.names(DAEMONSET) == {"hosts"}
    assert run.outputs["pods"] == ["hosts"] and run.outputs["namespace"] == "monitoring-node-agents"


def test_cadvisor_refuses_kubernetes_where_the_kubelets_serve_its_metrics(tmp_path: Path):
    with pytest.raises(Exception, match="containers: on kubernetes every kubelet serves cAdvisor's metrics"):
        program(tmp_path, """
            from components.services.cadvisor import Cadvisor
            from components.platforms.kubernetes import KubernetesPlatform

            platform = KubernetesPlatform(environment="lab")
            platform.provision()
            Cadvisor("containers", platform=platform)
        """)


def test_postgres_exporter_alone_keeps_a_plain_password_secret(tmp_path: Path):
    run = program(tmp_path, """
        from components.platforms.kubernetes import KubernetesPlatform
        from components.services.postgres_exporter import PostgresExporter
        from components.settings import PostgresExporterArgs

        platform = KubernetesPlatform(environment="lab")
        platform.provision()
        PostgresExporter(
            "orders-db",
            PostgresExporterArgs(host="orders.db.svc", user="exporter", database="orders", sslmode="require"),
            password="plain-password-31f",
            platform=platform,
        )
    """)
    [container] = run.one(DEPLOYMENT, "orders-db").inputs["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    # postgres-exporter puts postgresql:// in front of DATA_SOURCE_URI and reads the password
    # from DATA_SOURCE_PASS_FILE.
    assert env == {
        "DATA_SOURCE_URI": "orders.db.svc:5432/orders?sslmode=require",
        "DATA_SOURCE_USER": "exporter",
        "DATA_SOURCE_PASS_FILE": "/run/secrets/postgres_password",
    }
    secret = run.one("kubernetes:core/v1:Secret", "orders-db-secrets")
    assert secret.inputs["stringData"] == {"postgres_password": "plain-password-31f"}
    data = secret.raw_inputs["stringData"]
    assert is_secret(data) or is_secret(data["postgres_password"]), "passed in plain, kept as a secret"
    assert "plain-password-31f" not in json.dumps(container)


def test_redis_exporter_without_a_password_mounts_no_password_file(tmp_path: Path):
    run = program(tmp_path, """
        from components.platforms.docker import DockerPlatform
        from components.services.redis_exporter import RedisExporter
        from components.settings import RedisExporterArgs

        platform = DockerPlatform()
        platform.provision()
        RedisExporter("redis-exporter", RedisExporterArgs(address="redis://cache:6379"), platform=platform)
    """)
    container = run.one(CONTAINER, "redis-exporter").inputs
    assert container["envs"] == ["REDIS_ADDR=redis://cache:6379"]
    assert not container.get("uploads")


def test_the_gpu_exporter_follows_its_platform(tmp_path: Path):
    run = program(tmp_path, """
        from components.services.gpu_exporter import GpuExporter
        from components.platforms.docker import DockerPlatform
        from components.platforms.kubernetes import KubernetesPlatform

        docker = DockerPlatform()
        docker.provision()
        GpuExporter("gpu-docker", platform=docker)
        cluster = KubernetesPlatform(environment="lab")
        cluster.provision()
        GpuExporter("gpu-cluster", platform=cluster)
    """)
    envs = run.one(CONTAINER, "gpu-docker").inputs["envs"]
    assert "DCGM_EXPORTER_KUBERNETES=true" not in envs
    [container] = run.one(DAEMONSET, "gpu-cluster").inputs["spec"]["template"]["spec"]["containers"]
    # On kubernetes, DCGM maps each GPU to the pod using it.
    assert {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"} in container["env"]
    assert [p["containerPort"] for p in container["ports"]] == [9400]


@pytest.mark.parametrize("args, field", [
    ({"user": "exporter"}, "host"),
    ({"host": "db"}, "user"),
    ({"host": "db", "user": "exporter", "port": 70000}, "port"),
    ({"host": "db", "user": "exporter", "sslmode": "on"}, "sslmode"),
])
def test_postgres_args_refuse_what_the_exporter_cannot_use(args, field):
    with pytest.raises(ValidationError) as error:
        PostgresExporterArgs(**args)
    assert [e["loc"] for e in error.value.errors()] == [(field,)]


def test_redis_args_need_an_address():
    with pytest.raises(ValidationError) as error:
        RedisExporterArgs()
    assert [e["loc"] for e in error.value.errors()] == [("address",)]


def test_a_service_that_cannot_render_registers_nothing(tmp_path: Path):
    run = Run("test")
    with pytest.raises(Exception, match="cannot render this"):
        (tmp_path / "__main__.py").write_text(textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(ROOT)!r})
            from components.platforms.docker import DockerPlatform
            from components.services.component import ServiceComponent

            class Broken(ServiceComponent):
                kind = "Broken"

                @classmethod
                def render(cls, name, platform):
                    raise ValueError("cannot render this")

            Broken("broken", DockerPlatform(), None)
        """))
        run_program("test", {}, run=run, program_dir=tmp_path, project="standalone")
    assert run.resources == []


@pytest.mark.parametrize("body, message", [
    ("""
        Alertmanager("alertmanager", AlertmanagerArgs(receivers={"slack": {"enabled": True}}), platform=platform)
     """, "alertmanager: an enabled receiver needs slack_webhook_url"),
    ("""
        Prometheus("prometheus", PrometheusArgs(remote_write={"url": "https://mimir.example/push", "username": "p"}),
                   environment="lab", cluster="c1", platform=platform)
     """, "prometheus: remote_write.username is set, so the remote_write_password is required"),
    ("""
        Prometheus("metrics", environment="lab", cluster="c1", platform=platform)
     """, "metrics: on kubernetes Prometheus must be named 'prometheus'"),
    ("""
        Loki("logs", LokiArgs(storage={"type": "s3", "bucket": "acme-logs"}), s3_access_key_id="AKIA", platform=platform)
     """, "an S3 access key needs both s3_access_key_id and s3_secret_access_key"),
    ("""
        Loki("logs", LokiArgs(storage={"type": "gcs"}), platform=platform)
     """, "logs: storage.bucket is required with storage.type gcs"),
])
def test_a_missing_input_is_named_and_nothing_is_registered(tmp_path: Path, body: str, message: str):
    run = Run("test")
    (tmp_path / "__main__.py").write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + textwrap.dedent("""
        from components.services.alertmanager import Alertmanager
        from components.services.loki import Loki
        from components.platforms.kubernetes import KubernetesPlatform
        from components.services.prometheus import Prometheus
        from components.settings import AlertmanagerArgs, LokiArgs, PrometheusArgs

        platform = KubernetesPlatform(environment="lab")
    """) + textwrap.dedent(body))
    with pytest.raises(Exception) as error:
        run_program("test", {}, run=run, program_dir=tmp_path, project="standalone")
    assert message in str(error.value)
    assert run.resources == []


def test_prometheus_and_alertmanager_alone_find_each_other_through_their_outputs(tmp_path: Path):
    run = program(tmp_path, """
        from components.services.alertmanager import Alertmanager
        from components.platforms.kubernetes import KubernetesPlatform
        from components.services.prometheus import Prometheus
        from components.settings import AlertmanagerArgs

        platform = KubernetesPlatform(environment="lab")
        platform.provision()
        alerts = Alertmanager("alerts", AlertmanagerArgs(replicas=3), platform=platform)
        Prometheus("prometheus", environment="lab", cluster="c1", scrape_jobs=[alerts.scrape_job],
                   alertmanagers=alerts.addresses["web"], platform=platform)
    """)
    config = yaml.safe_load(container_files(run, "prometheus")["/etc/prometheus/prometheus.yml"])
    # Each of the three replicas of a StatefulSet named alerts, by its stable name.
    replicas = ["alerts-0.alerts:9093", "alerts-1.alerts:9093", "alerts-2.alerts:9093"]
    assert config["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": replicas}]}]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["alerts"]["static_configs"] == [{"targets": replicas}]
    # The replicas gossip with each other, and only they may reach the cluster port.
    [container] = run.one("kubernetes:apps/v1:StatefulSet", "alerts").inputs["spec"]["template"]["spec"]["containers"]
    assert [a for a in container["args"] if a.startswith("--cluster.peer=")] == [
        "--cluster.peer=alerts-0.alerts:9094", "--cluster.peer=alerts-1.alerts:9094", "--cluster.peer=alerts-2.alerts:9094",
    ]
    policy = run.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "alerts-network-policy").inputs
    [cluster_rule] = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 9094]
    assert [s["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for s in cluster_rule["from"]] == ["alerts"]


def test_the_collector_sends_each_signal_where_its_inputs_say(tmp_path: Path):
    run = program(tmp_path, """
        from components.services.jaeger import Jaeger
        from components.services.otel_collector import OtelCollector
        from components.platforms.kubernetes import KubernetesPlatform

        platform = KubernetesPlatform(environment="lab")
        platform.provision()
        traces = Jaeger("jaeger", platform=platform)
        OtelCollector("otel-collector", environment="lab", jaeger=traces.addresses["otlp-grpc"][0],
                      loki="logs.example:3100", prometheus=["metrics-0.example:9090", "metrics-1.example:9090"],
                      platform=platform)
    """)
    config = yaml.safe_load(container_files(run, "otel-collector")["/etc/otelcol-contrib/config.yaml"])
    # Jaeger's OTLP gRPC port (4317) at its Deployment's Service; Loki's OTLP endpoint is /otlp
    # (the exporter adds /v1/logs); Prometheus's OTLP receiver is /api/v1/otlp, on every replica.
    assert config["exporters"] == {
        "otlp_grpc/jaeger": {"endpoint": "jaeger:4317", "tls": {"insecure": True}},
        "otlp_http/loki": {"endpoint": "http://logs.example:3100/otlp"},
        "otlp_http/prometheus-0": {"endpoint": "http://metrics-0.example:9090/api/v1/otlp"},
        "otlp_http/prometheus-1": {"endpoint": "http://metrics-1.example:9090/api/v1/otlp"},
    }
    assert config["processors"]["resource"]["attributes"] == [
        {"key": "deployment.environment.name", "value": "lab", "action": "upsert"},
    ]
    # Only the collector may write spans into Jaeger.
    policy = run.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "jaeger-network-policy").inputs
    [otlp] = [rule for rule in policy["spec"]["ingress"] if rule["ports"][0]["port"] == 4317]
    assert [s["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for s in otlp["from"]] == ["otel-collector"]


def test_grafana_alone_takes_its_address_from_the_platform_and_its_password_as_a_secret_file(tmp_path: Path):
    run = program(tmp_path, """
        from components.services.grafana import Grafana
        from components.platforms.docker import DockerPlatform
        from components.settings import DockerSettings, GrafanaServerArgs

        platform = DockerPlatform(DockerSettings(bind_address="10.0.0.5"))
        platform.provision()
        server = Grafana("grafana", GrafanaServerArgs(port=3300, admin_user="ops"), admin_password="plain-pw-93a",
                         platform=platform)
        pulumi.export("urls", server.urls)
    """)
    container = run.one(CONTAINER, "grafana")
    envs = container.inputs["envs"]
    # Its links point where it is published: the bind address and the published port.
    assert "GF_SERVER_ROOT_URL=http://10.0.0.5:3300" in envs
    assert "GF_SECURITY_ADMIN_USER=ops" in envs
    assert "GF_SECURITY_ADMIN_PASSWORD__FILE=/run/secrets/grafana_admin_password" in envs
    assert container_files(run, "grafana")["/run/secrets/grafana_admin_password"] == "plain-pw-93a"
    assert not any("plain-pw-93a" in env for env in envs)
    assert run.outputs["urls"] == {"http": "http://10.0.0.5:3300"}


def test_a_grafana_ingress_needs_the_url_it_serves(tmp_path: Path):
    run = Run("test")
    (tmp_path / "__main__.py").write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + textwrap.dedent("""
        from components.services.grafana import Grafana
        from components.platforms.kubernetes import KubernetesPlatform
        from components.settings import GrafanaServerArgs

        platform = KubernetesPlatform(environment="lab")
        Grafana("grafana", GrafanaServerArgs(ingress={"enabled": True, "tls_secret": "grafana-tls"}),
                admin_password="x", platform=platform)
    """))
    with pytest.raises(Exception, match="grafana: an ingress needs the url it serves"):
        run_program("test", {}, run=run, program_dir=tmp_path, project="standalone")
    assert run.resources == []


GRAFANA_CONTENT = """
    from components.grafana.dashboards import Dashboard
    from components.grafana.content import Endpoints, GrafanaContent
    from components.settings import GrafanaContentArgs

    endpoints = Endpoints(prometheus="http://prometheus:9090", loki="http://loki:3100",
                          jaeger="http://jaeger:16686", alertmanagers=("http://alertmanager:9093",))
    args = GrafanaContentArgs(url="https://grafana.example.com/", folders=["Team"],
                              runbook_url="https://wiki.example.com/runbook")
"""


def test_grafana_content_alone_configures_an_existing_grafana(tmp_path: Path):
    run = program(tmp_path, GRAFANA_CONTENT + """
    GrafanaContent("team-grafana", args, dashboards=[Dashboard("svc", "Team", {"title": "Service", "uid": "svc"})],
                   endpoints=endpoints, auth="glsa_token-17b")
    """)
    provider = run.one("pulumi:providers:grafana", "grafana")
    assert provider.inputs["url"] == "https://grafana.example.com"
    assert provider.inputs["auth"] == "glsa_token-17b"
    assert is_secret(provider.raw_inputs["auth"]), "passed in plain, kept as a secret"
    folder = run.one("grafana:oss/folder:Folder", "folder-team").inputs
    dashboard = run.one("grafana:oss/dashboard:Dashboard", "dashboard-svc").inputs
    assert dashboard["folder"] == folder["uid"] == "team"
    sources = {r.inputs["uid"]: r.inputs["url"] for r in run.of_type("grafana:oss/dataSource:DataSource")}
    assert sources == {"prometheus": "http://prometheus:9090", "loki": "http://loki:3100",
                       "jaeger": "http://jaeger:16686", "alertmanager": "http://alertmanager:9093"}
    rules = run.one("grafana:alerting/ruleGroup:RuleGroup", "rules-logs").inputs
    assert rules["folderUid"] == "team"
    assert {r["annotations"]["runbook_url"] for r in rules["rules"]} == {
        "https://wiki.example.com/runbook#errorlogburst", "https://wiki.example.com/runbook#logvolumespike",
    }


def test_a_dashboard_outside_the_folders_is_named_and_nothing_is_registered(tmp_path: Path):
    run = Run("test")
    (tmp_path / "__main__.py").write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + textwrap.dedent(
        GRAFANA_CONTENT + """
    GrafanaContent("team-grafana", args, dashboards=[Dashboard("svc", "Other", {"title": "Service", "uid": "svc"})],
                   endpoints=endpoints, auth="glsa_token-17b")
    """))
    with pytest.raises(Exception, match=r"team-grafana: dashboards in a folder that folders does not list: svc \(in 'Other'\)"):
        run_program("test", {}, run=run, program_dir=tmp_path, project="standalone")
    assert run.resources == []
