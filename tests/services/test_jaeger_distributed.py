"""Jaeger on a store it shares (Elasticsearch, OpenSearch, Cassandra; prod's Elasticsearch):
collectors and queriers, two pods each, both roles of the service `jaeger`. What each role's config
says to Jaeger (checked key by key against Jaeger 2.20.0's own config types), how secrets and the
CA reach it, who may call which role, and what the settings refuse."""

import pytest
import yaml

from components.platforms.kubernetes import PEERS
from components.services import jaeger
from components.settings import ConfigError, JaegerArgs
from conftest import (
    SECRETS, Run, container_files, controller, is_secret, run_program, scrape_jobs, stack_config, stack_secrets,
)
from test_stack import leaks
from test_upstream_metrics_traces import component_problems, jaeger_available, upstream

CONFIG = "/etc/jaeger/config.yaml"
CA = "/run/secrets/jaeger_storage_ca.pem"
ROLES = ("jaeger-collector", "jaeger")
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE = "kubernetes:core/v1:Service"
CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUQ2FuYXJ5LWNhLWZvci10ZXN0czAKBggqhkjOPQQDAjAT
-----END CERTIFICATE-----
"""
ES = {"server_urls": ["https://es-0.search.svc:9200", "https://es-1.search.svc:9243"], "index_prefix": "team-a",
      "lifecycle_policy": "traces-7d", "shards": 3, "replicas": 2, "username": "jaeger-writer"}
CASSANDRA = {"servers": ["cassandra-0.db.svc", "10.0.4.12"], "port": 9142, "keyspace": "traces_eu",
             "datacenter": "eu-west", "replication_factor": 3, "username": "jaeger"}


def config_of(run: Run, role: str) -> dict:
    return yaml.safe_load(container_files(run, role)[CONFIG])


def store_of(run: Run, role: str) -> dict:
    (backend,) = config_of(run, role)["extensions"]["jaeger_storage"]["backends"].values()
    return backend


def with_jaeger(stack: str, section: dict, secrets: dict = None) -> Run:
    """A stack file whose `jaeger:` section is replaced by `section`."""
    config = {**stack_config(stack), "jaeger": section}
    return run_program(stack, config, secrets if secrets is not None else stack_secrets(stack))


def refused(stack: str, section: dict, secrets: dict = None) -> str:
    """The settings error of a stack with this `jaeger:` section; nothing may be registered."""
    run = Run(stack)
    values = {**stack_config(stack), "jaeger": section}
    with pytest.raises(ConfigError) as error:
        run_program(stack, values, secrets if secrets is not None else stack_secrets(stack), run=run)
    assert run.resources == []
    return str(error.value)


# prod's secrets, with the store's CA.
WITH_CA = {**stack_secrets("prod"), "jaeger_storage_ca": CA_PEM}


@pytest.fixture(scope="module")
def cassandra() -> Run:
    return with_jaeger("prod", {"storage": "cassandra", "trace_ttl": "7d", "cassandra": CASSANDRA}, WITH_CA)


@pytest.fixture(scope="module")
def opensearch() -> Run:
    return with_jaeger("prod", {"storage": "opensearch", "elasticsearch": ES}, WITH_CA)


# --- the roles ------------------------------------------------------------------------------------


def test_prod_runs_two_collectors_and_two_queriers_of_the_service_jaeger(stack_runs):
    run = stack_runs["prod"]
    assert {s for s in run.outputs["services"] if s.startswith("jaeger")} == set(ROLES)
    for name, role in (("jaeger-collector", "collector"), ("jaeger", "query")):
        deployment = controller(run, name)
        assert deployment.type == "kubernetes:apps/v1:Deployment"
        assert deployment.inputs["spec"]["replicas"] == 2
        template = deployment.inputs["spec"]["template"]
        assert template["metadata"]["labels"]["app.kubernetes.io/component"] == role
        # Stateless: the traces are in Elasticsearch.
        assert "volumeClaimTemplates" not in deployment.inputs["spec"]
        assert not [v for v in template["spec"]["volumes"] if "persistentVolumeClaim" in v]
        # Never both pods on one node, and never both down to an eviction.
        spread = template["spec"]["topologySpreadConstraints"]
        assert {(c["topologyKey"], c["whenUnsatisfiable"]) for c in spread} >= {("kubernetes.io/hostname", "DoNotSchedule")}
        budget = run.one(PDB, f"{name}-disruption-budget").inputs["spec"]
        assert budget == {"maxUnavailable": 1, "selector": {"matchLabels": {
            "app.kubernetes.io/name": name, "app.kubernetes.io/instance": "prod"}}}


def test_the_roles_replicas_and_resources_follow_the_stack():
    run = with_jaeger("prod", {"storage": "elasticsearch", "elasticsearch": {"server_urls": ["http://es:9200"]},
                               "collector": {"replicas": 4, "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                                                                          "limits": {"cpu": "2", "memory": "3Gi"}}},
                               "query": {"replicas": 3}})
    assert controller(run, "jaeger-collector").inputs["spec"]["replicas"] == 4
    assert controller(run, "jaeger").inputs["spec"]["replicas"] == 3
    container = controller(run, "jaeger-collector").inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "3Gi"}}


def test_prometheus_scrapes_both_roles_as_the_job_jaeger_labelled_by_role(stack_runs):
    job = scrape_jobs(stack_runs["prod"])["jaeger"]
    keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert set(keep["__meta_kubernetes_pod_label_app_kubernetes_io_name"].split("|")) == set(ROLES)
    assert keep["__meta_kubernetes_pod_container_port_number"] == "8888"
    assert {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
            "target_label": "component"} in job["relabel_configs"]


# --- the collectors' and the queriers' configs ----------------------------------------------------


def test_the_collectors_receive_otlp_and_write_without_a_ui(stack_runs):
    config = config_of(stack_runs["prod"], "jaeger-collector")
    assert config["service"]["extensions"] == ["jaeger_storage", "healthcheckv2"]
    assert "jaeger_query" not in config["extensions"]
    assert config["service"]["pipelines"] == {"traces": {
        "receivers": ["otlp"], "processors": ["batch"], "exporters": ["jaeger_storage_exporter"]}}
    assert config["exporters"] == {"jaeger_storage_exporter": {"trace_storage": "traces"}}
    assert config["receivers"]["otlp"]["protocols"]["grpc"] == {"endpoint": "0.0.0.0:4317"}
    ports = {p["name"] for p in controller(stack_runs["prod"], "jaeger-collector").inputs["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert ports == {"otlp-grpc", "otlp-http", "metrics", "health"}


def test_the_queriers_serve_the_ui_with_a_nop_pipeline(stack_runs):
    # The collector refuses a config without a pipeline; upstream's query-only config
    # (cmd/jaeger/config-query.yaml) runs nop to nop.
    config = config_of(stack_runs["prod"], "jaeger")
    assert config["service"]["pipelines"] == {"traces": {"receivers": ["nop"], "exporters": ["nop"]}}
    assert config["receivers"] == {"nop": {}} and config["exporters"] == {"nop": {}}
    assert "processors" not in config
    assert config["service"]["extensions"] == ["jaeger_storage", "jaeger_query", "healthcheckv2"]
    assert config["extensions"]["jaeger_query"] == {"storage": {"traces": "traces"}, "http": {"endpoint": "0.0.0.0:16686"}}
    ports = {p["name"] for p in controller(stack_runs["prod"], "jaeger").inputs["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert ports == {"ui", "metrics", "health"}


def test_both_roles_answer_the_health_probe_and_name_their_telemetry_jaeger(stack_runs):
    for role in ROLES:
        config = config_of(stack_runs["prod"], role)
        assert config["extensions"]["healthcheckv2"] == {"use_v2": True, "http": {"endpoint": "0.0.0.0:13133"}}
        assert config["service"]["telemetry"]["resource"] == {"service.name": "jaeger"}
        container = controller(stack_runs["prod"], role).inputs["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"] == {"path": "/status", "port": "health"}


def test_prods_elasticsearch_is_written_through_aliases_its_lifecycle_policy_rolls_over(stack_runs):
    index = {"shards": 5, "replicas": 1, "rotation": {"auto_rollover": {"policy_name": "jaeger-ilm-policy"}}}
    expected = {
        "server_urls": ["https://elasticsearch.logging.svc:9200"],
        "indices": {"index_prefix": "prod", "spans": index, "services": index, "dependencies": index},
        "auth": {"basic": {"username": "jaeger", "password_file": "/run/secrets/jaeger_elasticsearch_password"}},
    }
    run = stack_runs["prod"]
    # The collectors install the index templates; the queriers only read.
    assert store_of(run, "jaeger-collector") == {"elasticsearch": {**expected, "create_mappings": True}}
    assert store_of(run, "jaeger") == {"elasticsearch": {**expected, "create_mappings": False}}


def test_every_store_option_reaches_both_roles(opensearch):
    for role in ROLES:
        (kind, store), = store_of(opensearch, role).items()
        assert kind == "opensearch"
        assert store["server_urls"] == ES["server_urls"]
        assert store["indices"]["index_prefix"] == "team-a"
        assert {t: store["indices"][t] for t in ("spans", "services", "dependencies")} == {
            t: {"shards": 3, "replicas": 2, "rotation": {"auto_rollover": {"policy_name": "traces-7d"}}}
            for t in ("spans", "services", "dependencies")}
        assert store["auth"] == {"basic": {"username": "jaeger-writer", "password_file": "/run/secrets/jaeger_elasticsearch_password"}}
        assert store["tls"] == {"ca_file": CA}


def test_the_password_and_the_ca_are_secret_files(opensearch):
    for role in ROLES:
        files = container_files(opensearch, role)
        assert files["/run/secrets/jaeger_elasticsearch_password"] == SECRETS["jaeger_elasticsearch_password"]
        assert files[CA] == CA_PEM
        # Both are the pod's Secret, nowhere in a ConfigMap.
        secret = opensearch.one("kubernetes:core/v1:Secret", f"{role}-secrets")
        assert set(secret.inputs["stringData"]) == {"jaeger_elasticsearch_password", "jaeger_storage_ca.pem"}
        assert is_secret(secret.raw_inputs["stringData"])
        config_maps = [r for r in opensearch.of_type("kubernetes:core/v1:ConfigMap") if r.name == f"{role}-etc-jaeger"]
        assert set(config_maps[0].inputs["data"]) == {"config.yaml"}
        # The password is nowhere else: not in the config, the arguments or the environment.
        container = controller(opensearch, role).inputs["spec"]["template"]["spec"]["containers"][0]
        assert SECRETS["jaeger_elasticsearch_password"] not in files[CONFIG] + str(container)


def test_without_the_ca_the_store_is_verified_with_the_systems_cas(stack_runs):
    for role in ROLES:
        assert "tls" not in store_of(stack_runs["prod"], role)["elasticsearch"]
        assert CA not in container_files(stack_runs["prod"], role)


@pytest.mark.parametrize("variant", ["opensearch", "cassandra"])
def test_no_store_password_appears_outside_a_secret(opensearch, cassandra, variant):
    run = {"opensearch": opensearch, "cassandra": cassandra}[variant]
    for resource in run.resources:
        assert leaks(resource.raw_inputs) == [], f"{resource.type} {resource.name}"


def test_cassandra_keeps_spans_for_trace_ttl_in_a_schema_the_collectors_create(cassandra):
    connection = {
        "servers": ["cassandra-0.db.svc", "10.0.4.12"], "port": 9142,
        # Jaeger's Cassandra config has no password file: the config reads it through ${file:}.
        "auth": {"basic": {"username": "jaeger", "password": "${file:/run/secrets/jaeger_cassandra_password}"}},
        "tls": {"ca_file": CA},
    }
    schema = {"keyspace": "traces_eu", "datacenter": "eu-west", "replication_factor": 3,
              # The tables' TTL; about 30 compaction windows over it, as upstream's schema script.
              "trace_ttl": "168h", "compaction_window": "336m"}
    assert store_of(cassandra, "jaeger-collector") == {"cassandra": {"schema": {**schema, "create": True}, "connection": connection}}
    assert store_of(cassandra, "jaeger") == {"cassandra": {"schema": {**schema, "create": False}, "connection": connection}}
    for role in ROLES:
        files = container_files(cassandra, role)
        assert files["/run/secrets/jaeger_cassandra_password"] == SECRETS["jaeger_cassandra_password"]
        assert SECRETS["jaeger_cassandra_password"] not in files[CONFIG]


def test_cassandra_without_tls_or_authentication():
    run = with_jaeger("prod", {"storage": "cassandra", "cassandra": {"servers": ["cassandra"], "tls": False,
                                                                     "create_schema": False}})
    store = store_of(run, "jaeger-collector")["cassandra"]
    assert store["connection"] == {"servers": ["cassandra"], "port": 9042, "tls": {"insecure": True}}
    assert store["schema"]["create"] is False
    assert store["schema"]["trace_ttl"] == "72h" and store["schema"]["compaction_window"] == "144m"
    assert not [p for p in container_files(run, "jaeger-collector") if p.startswith("/run/secrets/")]


@pytest.mark.parametrize("variant", ["prod", "opensearch", "cassandra"])
def test_every_key_of_both_roles_is_one_jaeger_2_20_reads(stack_runs, opensearch, cassandra, variant):
    run = {"prod": stack_runs["prod"], "opensearch": opensearch, "cassandra": cassandra}[variant]
    for role in ROLES:
        assert component_problems(upstream("jaeger"), config_of(run, role), jaeger_available()) == [], role


def test_the_upstream_check_reads_the_store_blocks():
    # A key of another release in a store block is caught: the check walks into both stores.
    config = {"extensions": {"jaeger_storage": {"backends": {"t": {
        "elasticsearch": {"indices": {"spans": {"rotation": {"ilm": {}}}}, "index_prefix": "x"},
        "cassandra": {"connection": {"auth": {"basic": {"password_file": "/p"}}}},
    }}}}}
    prefix = "extensions.jaeger_storage.backends.t"
    assert component_problems(upstream("jaeger"), config, jaeger_available()) == [
        f"{prefix}.elasticsearch.indices.spans.rotation.ilm: no such key",
        f"{prefix}.elasticsearch.index_prefix: no such key",
        f"{prefix}.cassandra.connection.auth.basic.password_file: no such key",
    ]


# --- who calls which role -------------------------------------------------------------------------


def ingress_sources(run: Run, workload: str, port: int) -> set[str]:
    """The workloads of the stack a role's NetworkPolicy admits on `port`."""
    spec = run.one(POLICY, f"{workload}-network-policy").inputs["spec"]
    return {peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for rule in spec["ingress"] if any(p["port"] == port for p in rule["ports"])
            for peer in rule.get("from", [])}


def test_writers_reach_the_collectors_and_readers_the_queriers(stack_runs):
    run = stack_runs["prod"]
    # prod's collector samples in its own tier, whose samplers send the traces.
    assert ingress_sources(run, "jaeger-collector", 4317) == {"otel-collector-sampler"}
    assert ingress_sources(run, "jaeger", 16686) == {"grafana"}
    assert ingress_sources(run, "jaeger-collector", 16686) == set()
    assert ingress_sources(run, "jaeger", 4317) == set()
    for role in ROLES:
        assert ingress_sources(run, role, 8888) == {"prometheus"}


def test_both_roles_reach_the_store_on_its_ports_alone(opensearch, cassandra):
    def outside(run: Run, workload: str) -> list[set[int]]:
        egress = run.one(POLICY, f"{workload}-network-policy").inputs["spec"]["egress"]
        return [{p["port"] for p in rule["ports"]} for rule in egress
                if {"ipBlock": {"cidr": "0.0.0.0/0"}} in rule.get("to", [])]

    for role in ROLES:
        assert outside(opensearch, role) == [{9200, 9243}]
        assert outside(cassandra, role) == [{9142}]


def test_writers_spread_their_spans_over_every_ready_collector(stack_runs):
    run = stack_runs["prod"]
    sampler = yaml.safe_load(container_files(run, "otel-collector-sampler")["/etc/otelcol-contrib/config.yaml"])
    assert sampler["exporters"]["otlp_grpc/jaeger"]["endpoint"] == "jaeger-collector-discovery:4317"
    # A headless Service over the ready collectors alone: gRPC's DNS resolver gets every pod's
    # address and its round robin (the collector's default balancer) uses each.
    service = [s for s in run.of_type(SERVICE) if s.inputs["metadata"]["name"] == "jaeger-collector-discovery"]
    spec = service[0].inputs["spec"]
    assert spec["clusterIP"] == "None" and spec["publishNotReadyAddresses"] is False
    assert spec["ports"] == [{"name": "peers", "port": 4317, "targetPort": 4317, "protocol": "TCP"}]
    (label,) = [k for k in spec["selector"] if k.startswith(PEERS)]
    carriers = {w for w in ROLES if controller(run, w).inputs["spec"]["template"]["metadata"]["labels"].get(label) == "true"}
    assert carriers == {"jaeger-collector"}


def test_grafana_and_the_endpoint_read_the_queriers(stack_runs):
    run = stack_runs["prod"]
    datasource = run.one("grafana:oss/dataSource:DataSource", "datasource-jaeger").inputs
    assert datasource["url"] == "http://jaeger:16686"
    assert run.outputs["endpoints"]["jaeger"] == "http://jaeger.observability.svc:16686"


def test_the_stack_asks_the_component_for_jaegers_otlp_address():
    # The one Jaeger, or the collectors' discovery Service: whatever was rendered.
    from components.platforms.kubernetes import KubernetesPlatform

    platform = KubernetesPlatform(environment="t")
    single = jaeger.workload(JaegerArgs(storage="memory"))
    assert jaeger.otlp_address(platform, single) == "jaeger:4317"
    roles = jaeger.workload(JaegerArgs(storage="elasticsearch", elasticsearch={"server_urls": ["http://es:9200"]}),
                            name="traces")
    assert jaeger.otlp_address(platform, roles) == "traces-collector-discovery:4317"
    assert {w.name: w.part_of for w in roles} == {"traces-collector": "traces", "traces": "traces"}


def test_the_component_needs_the_stores_addresses():
    # Without them its egress would name no port, which opens every port.
    with pytest.raises(ValueError, match="needs the cluster's addresses in jaeger.cassandra"):
        jaeger.workload(JaegerArgs(storage="cassandra"))


def test_the_component_needs_the_password_of_the_user_it_is_given():
    args = JaegerArgs(storage="elasticsearch", elasticsearch={"server_urls": ["http://es:9200"], "username": "u"})
    with pytest.raises(ValueError, match="needs the store's password"):
        jaeger.workload(args)


# --- what the settings refuse ---------------------------------------------------------------------


@pytest.mark.parametrize("storage", ["elasticsearch", "opensearch", "cassandra"])
def test_docker_refuses_a_distributed_store(storage):
    section = {"storage": storage, "elasticsearch": {"server_urls": ["http://es:9200"]}} if storage != "cassandra" \
        else {"storage": storage, "cassandra": {"servers": ["cassandra"]}}
    message = refused("dev", section)
    assert f"key 'jaeger.storage': {storage} runs Jaeger as collectors and queriers" in message
    assert "1 problem" in message


@pytest.mark.parametrize("storage, key", [
    ("elasticsearch", "jaeger.elasticsearch.server_urls"),
    ("opensearch", "jaeger.elasticsearch.server_urls"),
    ("cassandra", "jaeger.cassandra.servers"),
])
def test_a_store_without_its_address_is_one_clear_error(storage, key):
    message = refused("prod", {"storage": storage})
    assert f"key '{key}': required because jaeger.storage is {storage}" in message
    assert "1 problem" in message


@pytest.mark.parametrize("storage, section, secret", [
    ("elasticsearch", {"elasticsearch": {"server_urls": ["http://es:9200"], "username": "jaeger"}}, "jaeger_elasticsearch_password"),
    ("cassandra", {"cassandra": {"servers": ["cassandra"], "username": "jaeger"}}, "jaeger_cassandra_password"),
])
def test_a_user_needs_its_password(storage, section, secret):
    secrets = {k: v for k, v in stack_secrets("prod").items() if k != secret}
    message = refused("prod", {"storage": storage, **section}, secrets)
    assert f"key 'secrets.{secret}': required because jaeger." in message


@pytest.mark.parametrize("section, key", [
    # Elasticsearch keeps what its lifecycle policy keeps.
    ({"storage": "elasticsearch", "trace_ttl": "7d", "elasticsearch": {"server_urls": ["http://es:9200"]}}, "jaeger.trace_ttl"),
    # Keys of another shape or another store.
    ({"storage": "badger", "elasticsearch": {"server_urls": ["http://es:9200"]}}, "jaeger.elasticsearch"),
    ({"storage": "memory", "collector": {"replicas": 3}}, "jaeger.collector"),
    ({"storage": "elasticsearch", "cassandra": {"servers": ["c"]}, "elasticsearch": {"server_urls": ["http://es:9200"]}},
     "jaeger.cassandra"),
    ({"storage": "cassandra", "storage_size": "50Gi", "cassandra": {"servers": ["c"]}}, "jaeger.storage_size"),
    ({"storage": "cassandra", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
      "cassandra": {"servers": ["c"]}}, "jaeger.resources"),
    # Jaeger's Cassandra schema refuses a TTL under a second.
    ({"storage": "cassandra", "trace_ttl": "500ms", "cassandra": {"servers": ["c"]}}, "jaeger.trace_ttl"),
])
def test_keys_that_would_do_nothing_are_refused(section, key):
    assert f"key '{key}': " in refused("prod", section)


@pytest.mark.parametrize("section", [
    {"storage": "cassandra", "cassandra": {"servers": ["c"], "tls": False}},
    {"storage": "elasticsearch", "elasticsearch": {"server_urls": ["http://es:9200"]}},
    {"storage": "badger"},
])
def test_a_storage_ca_no_connection_would_use_is_refused(section):
    message = refused("prod", section, WITH_CA)
    assert "key 'secrets.jaeger_storage_ca': " in message and "BEGIN CERTIFICATE" not in message


def test_a_storage_ca_holding_a_private_key_is_refused_without_showing_it():
    pem = CA_PEM + "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKEY\n-----END PRIVATE KEY-----\n"
    message = refused("prod", {"storage": "elasticsearch", "elasticsearch": ES},
                      {**stack_secrets("prod"), "jaeger_storage_ca": pem})
    assert "key 'secrets.jaeger_storage_ca': " in message and "private key" in message
    assert "MC4CAQAw" not in message


@pytest.mark.parametrize("section, key, words", [
    ({"elasticsearch": {"server_urls": ["es:9200"]}}, "jaeger.elasticsearch.server_urls[0]", "http"),
    ({"elasticsearch": {"server_urls": ["https://jaeger:pw@es:9200"]}}, "jaeger.elasticsearch.server_urls[0]",
     "secrets.jaeger_elasticsearch_password"),
    ({"elasticsearch": {"server_urls": ["http://es:9200"], "index_prefix": "Prod"}}, "jaeger.elasticsearch.index_prefix",
     "lower case"),
    ({"elasticsearch": {"server_urls": ["http://es:9200"], "username": "a$b"}}, "jaeger.elasticsearch.username", "expands $"),
    ({"elasticsearch": {"server_urls": ["http://es:9200"], "shards": 0}}, "jaeger.elasticsearch.shards", ""),
    ({"elasticsearch": {"server_urls": ["http://es:9200"]}, "collector": {"replicas": 1}}, "jaeger.collector.replicas", ""),
])
def test_values_elasticsearch_or_jaeger_would_misread_are_refused(section, key, words):
    message = refused("prod", {"storage": "elasticsearch", **section})
    assert f"key '{key}': " in message and words in message


@pytest.mark.parametrize("cassandra, key", [
    ({"servers": ["cassandra:9042"]}, "jaeger.cassandra.servers[0]"),
    ({"servers": ["c"], "keyspace": "jaeger-traces"}, "jaeger.cassandra.keyspace"),
    ({"servers": ["c"], "datacenter": "dc1'; DROP"}, "jaeger.cassandra.datacenter"),
])
def test_cassandra_values_cql_would_misread_are_refused(cassandra, key):
    assert f"key '{key}': " in refused("prod", {"storage": "cassandra", "cassandra": cassandra})


def test_a_cassandra_password_jaeger_would_expand_is_refused_without_echoing_it():
    secrets = {**stack_secrets("prod"), "jaeger_cassandra_password": "pa$$word"}
    message = refused("prod", {"storage": "cassandra", "cassandra": {"servers": ["c"], "username": "jaeger"}}, secrets)
    assert "key 'secrets.jaeger_cassandra_password': must not contain $" in message
    assert "pa$$word" not in message
