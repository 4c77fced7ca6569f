"""Grafana as several replicas on kubernetes (prod): one PostgreSQL database they share instead of
SQLite on a volume, unified alerting as one gossip cluster over them, and the settings that refuse
what cannot work. One replica without a database keeps the StatefulSet and its claim (staging)."""

import pytest

from components.platforms.kubernetes import PEERS, KubernetesPlatform
from components.services import grafana
from components.settings import ConfigError, GrafanaDatabase, GrafanaServerArgs
from conftest import (
    SECRETS, Run, container_files, controller, is_secret, merge, run_program, scrape_jobs, stack_config, stack_secrets,
)

SERVICE = "kubernetes:core/v1:Service"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
BUDGET = "kubernetes:policy/v1:PodDisruptionBudget"
DATABASE = {"host": "postgres.databases.svc:5432", "name": "grafana", "user": "grafana", "ssl_mode": "verify-full"}
CA = "-----BEGIN CERTIFICATE-----\nMIIBcA-test-ca\n-----END CERTIFICATE-----\n"


def pod(run):
    return controller(run, "grafana").inputs["spec"]["template"]


def env(run) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod(run)["spec"]["containers"][0]["env"]}


def refused(stack: str, config: dict, secrets: dict) -> str:
    run = Run(stack)
    with pytest.raises(ConfigError) as error:
        run_program(stack, config, secrets, run=run)
    assert run.resources == [], "nothing is registered before the settings are checked"
    return str(error.value)


# --- prod: two replicas on a shared database ---------------------------------------------------


def test_prod_runs_two_grafana_pods_with_no_volume_of_their_own(stack_runs):
    run = stack_runs["prod"]
    deployment = controller(run, "grafana")
    assert deployment.type == "kubernetes:apps/v1:Deployment"
    assert deployment.inputs["spec"]["replicas"] == 2
    assert "volumeClaimTemplates" not in deployment.inputs["spec"]
    spec = pod(run)["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (data,) = [m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == "/var/lib/grafana"]
    # Plugins and rendered images only: scratch space that goes with the pod.
    assert volumes[data["name"]] == {"name": data["name"], "emptyDir": {}}
    # The scheduler keeps the two apart, and a drain takes one at a time.
    assert spec["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    budget = run.one(BUDGET, "grafana-disruption-budget").inputs["spec"]
    assert budget["maxUnavailable"] == 1


def test_prod_grafana_keeps_its_database_in_postgresql(stack_runs):
    found = env(stack_runs["prod"])
    assert {k: v for k, v in found.items() if k.startswith("GF_DATABASE_")} == {
        "GF_DATABASE_TYPE": "postgres",
        "GF_DATABASE_HOST": "postgres.databases.svc:5432",
        "GF_DATABASE_NAME": "grafana",
        "GF_DATABASE_USER": "grafana",
        "GF_DATABASE_SSL_MODE": "verify-full",
        # The image's entrypoint reads it into GF_DATABASE_PASSWORD; prod gives no CA of its own.
        "GF_DATABASE_PASSWORD__FILE": "/run/secrets/grafana_database_password",
    }


def test_the_database_password_is_a_secret_file_and_never_in_the_environment(stack_runs):
    run = stack_runs["prod"]
    password = SECRETS["grafana_database_password"]
    assert container_files(run, "grafana")["/run/secrets/grafana_database_password"] == password
    assert not any(password in str(value) for value in env(run).values())
    assert is_secret(run.one("kubernetes:core/v1:Secret", "grafana-secrets").raw_inputs["stringData"])


def test_unified_alerting_runs_as_one_cluster_over_the_replicas(stack_runs):
    run = stack_runs["prod"]
    found = env(run)
    assert found["GF_UNIFIED_ALERTING_HA_PEERS"] == "grafana-alerting:9094"
    assert found["GF_UNIFIED_ALERTING_HA_LISTEN_ADDRESS"] == "0.0.0.0:9094"
    # Each replica gives its peers its own address, which Grafana expands from POD_IP.
    assert found["GF_UNIFIED_ALERTING_HA_ADVERTISE_ADDRESS"] == "${POD_IP}:9094"
    assert found["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    # The peers' name resolves to every replica's address, ready or not, so starting pods find each other.
    peers = run.one(SERVICE, "grafana-alerting-peers").inputs
    assert peers["metadata"]["name"] == "grafana-alerting"
    assert peers["spec"]["clusterIP"] == "None" and peers["spec"]["publishNotReadyAddresses"] is True
    assert [p["port"] for p in peers["spec"]["ports"]] == [9094]
    labels = pod(run)["metadata"]["labels"]
    assert peers["spec"]["selector"].items() <= labels.items()
    assert f"{PEERS}grafana-alerting" in peers["spec"]["selector"]


def test_only_grafana_gossips_with_grafana_over_tcp_and_udp(stack_runs):
    run = stack_runs["prod"]
    policy = run.one(POLICY, "grafana-network-policy").inputs["spec"]
    (gossip,) = [rule for rule in policy["ingress"] if {"protocol": "TCP", "port": 9094} in rule["ports"]]
    assert gossip["ports"] == [{"protocol": "TCP", "port": 9094}, {"protocol": "UDP", "port": 9094}]
    assert [peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in gossip["from"]] == ["grafana"]


def test_grafana_may_reach_its_database_port(stack_runs):
    policy = stack_runs["prod"].one(POLICY, "grafana-network-policy").inputs["spec"]
    outside = [rule for rule in policy["egress"] if {"ipBlock": {"cidr": "0.0.0.0/0"}} in rule["to"]]
    # A database in another namespace, or outside the cluster.
    assert [{"protocol": "TCP", "port": 5432}] in [rule["ports"] for rule in outside]
    assert all({"namespaceSelector": {}} in rule["to"] for rule in outside)


def test_prometheus_scrapes_each_grafana_pod(stack_runs):
    job = scrape_jobs(stack_runs["prod"])["grafana"]
    assert "static_configs" not in job
    keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keep["__meta_kubernetes_pod_label_app_kubernetes_io_name"] == "grafana"
    assert keep["__meta_kubernetes_pod_container_port_number"] == "3000"


def test_a_ca_for_the_database_is_mounted_and_named_to_grafana():
    config = stack_config("prod")
    run = run_program("prod", config, {**stack_secrets("prod"), "grafana_database_ca_cert": CA})
    assert env(run)["GF_DATABASE_CA_CERT_PATH"] == "/run/secrets/grafana_database_ca_cert"
    assert container_files(run, "grafana")["/run/secrets/grafana_database_ca_cert"] == CA


# --- one replica keeps its shape ---------------------------------------------------------------


def test_one_replica_without_a_database_keeps_sqlite_on_its_claim_and_no_cluster(stack_runs):
    run = stack_runs["staging"]
    assert controller(run, "grafana").type == "kubernetes:apps/v1:StatefulSet"
    found = env(run)
    assert not [k for k in found if k.startswith(("GF_DATABASE_", "GF_UNIFIED_ALERTING_"))]
    assert "POD_IP" not in found
    assert [p["name"] for p in pod(run)["spec"]["containers"][0]["ports"]] == ["http"]
    assert not [r for r in run.of_type(SERVICE) if r.name == "grafana-alerting-peers"]
    assert not [r for r in run.of_type(BUDGET) if r.name == "grafana-disruption-budget"]


def on_a_database(stack: str, **grafana) -> dict:
    """The stack file with Grafana on DATABASE, without the volume size it no longer has."""
    config = merge(stack_config(stack), {"grafana": {"database": dict(DATABASE)}})
    config["grafana"].pop("storage_size", None)
    config["grafana"].update(grafana)
    return config


def test_one_replica_on_a_database_is_a_deployment_without_a_cluster():
    config = on_a_database("staging")
    run = run_program("staging", config, {**stack_secrets("staging"), "grafana_database_password": "pw-1"})
    assert controller(run, "grafana").type == "kubernetes:apps/v1:Deployment"
    found = env(run)
    assert found["GF_DATABASE_TYPE"] == "postgres"
    assert "GF_UNIFIED_ALERTING_HA_PEERS" not in found


def test_docker_runs_grafana_on_a_database_without_a_volume():
    config = merge(stack_config("dev"), {"grafana": {"database": {**DATABASE, "host": "host.docker.internal:5432"}}})
    run = run_program("dev", config, {"grafana_database_password": "pw-1"})
    container = run.one("docker:index/container:Container", "grafana").inputs
    assert not container.get("volumes")
    assert "GF_DATABASE_HOST=host.docker.internal:5432" in container["envs"]
    assert not [r for r in run.of_type("docker:index/volume:Volume") if r.name == "grafana-data"]


def test_the_component_refuses_replicas_without_a_database():
    platform = KubernetesPlatform(environment="test")
    with pytest.raises(ValueError, match="more than one replica needs a database"):
        grafana.Grafana.render("grafana", platform, args=GrafanaServerArgs(replicas=2), admin_password="pw")
    with pytest.raises(ValueError, match="needs its password"):
        args = GrafanaServerArgs(database=GrafanaDatabase(host="db:5432"))
        grafana.Grafana.render("grafana", platform, args=args, admin_password="pw")


# --- what the settings refuse ------------------------------------------------------------------


def test_several_replicas_without_a_database_are_refused():
    message = refused("staging", merge(stack_config("staging"), {"grafana": {"replicas": 2}}), stack_secrets("staging"))
    assert "key 'grafana.replicas': more than one replica needs grafana.database" in message


def test_docker_refuses_grafana_replicas():
    config = merge(stack_config("dev"), {"grafana": {"replicas": 2, "database": DATABASE}})
    message = refused("dev", config, {"grafana_database_password": "pw-1"})
    assert "key 'grafana.replicas': docker runs one replica" in message


def test_a_database_needs_its_password():
    message = refused("staging", on_a_database("staging"), stack_secrets("staging"))
    assert "key 'secrets.grafana_database_password': required because grafana.database is set" in message


def test_a_volume_size_with_a_database_is_refused():
    config = on_a_database("staging", storage_size="5Gi")
    message = refused("staging", config, {**stack_secrets("staging"), "grafana_database_password": "pw-1"})
    assert "key 'grafana.storage_size': Grafana keeps no volume when grafana.database is set" in message


@pytest.mark.parametrize("password", ["two words", "it's", "back\\slash", "dollar$sign", "tab\there"])
def test_a_password_the_connection_string_would_break_is_refused_without_showing_it(password):
    config = on_a_database("staging")
    message = refused("staging", config, {**stack_secrets("staging"), "grafana_database_password": password})
    assert "secrets.grafana_database_password" in message
    assert "unquoted into its PostgreSQL connection string" in message
    assert password not in message


@pytest.mark.parametrize("key, value, expected", [
    ("host", "postgres.databases.svc", "must be host:port"),
    ("user", "graf ana", "must not contain spaces"),
    ("name", "it's", "must not contain \"'\""),
    ("ssl_mode", "verify-ca", "'disable', 'require' or 'verify-full'"),
])
def test_database_settings_grafana_cannot_use_are_refused(key, value, expected):
    config = on_a_database("staging")
    config["grafana"]["database"][key] = value
    message = refused("staging", config, {**stack_secrets("staging"), "grafana_database_password": "pw-1"})
    assert f"grafana.database.{key}" in message and expected in message, message


def test_a_ca_that_is_not_pem_is_refused():
    config = on_a_database("staging")
    secrets = {**stack_secrets("staging"), "grafana_database_password": "pw-1",
               "grafana_database_ca_cert": "not a cert"}
    assert "PEM certificates" in refused("staging", config, secrets)
