"""postgres-exporter: connects with a URI, a user and a password file; scraped on port 9187."""

from __future__ import annotations

import json

import pytest
from conftest import SECRETS, is_secret, merge, planned_workload, run_program, scrape_jobs, stack_config

from components import images
from components.settings import parse

CONTAINER = "docker:index/container:Container"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PASSWORD = SECRETS["postgres_password"]
POSTGRES = {
    "exporters": {
        "postgres": {
            "enabled": True,
            "host": "db.internal",
            "port": 5433,
            "user": "exporter",
            "database": "app",
            "sslmode": "require",
        }
    }
}


@pytest.fixture(scope="module")
def docker():
    return run_program("dev", merge(stack_config("dev"), POSTGRES), {"postgres_password": PASSWORD})


@pytest.fixture(scope="module")
def prod(stack_runs):
    return stack_runs["prod"]


@pytest.fixture(scope="module")
def prod_container(prod):
    [container] = prod.one(DEPLOYMENT, "postgres-exporter").inputs["spec"]["template"]["spec"]["containers"]
    return container


def test_disabled_postgres_exporter_has_no_workload():
    assert planned_workload(parse("dev", stack_config("dev")), "postgres-exporter") is None


def test_disabled_postgres_exporter_is_not_deployed_or_scraped(stack_runs):
    dev = stack_runs["dev"]
    assert "postgres-exporter" not in dev.names(CONTAINER)
    assert "postgres-exporter" not in scrape_jobs(dev)
    assert "postgres-exporter" not in dev.outputs["services"]


def test_docker_runs_the_pinned_image(docker):
    image = docker.one("docker:index/remoteImage:RemoteImage", "postgres-exporter-image")
    assert image.inputs["name"] == images.POSTGRES_EXPORTER
    assert docker.one(CONTAINER, "postgres-exporter").inputs["image"] == "sha256:postgres-exporter-image"


def test_docker_connects_with_uri_user_and_password_file(docker):
    container = docker.one(CONTAINER, "postgres-exporter").inputs
    assert sorted(container["envs"]) == [
        "DATA_SOURCE_PASS_FILE=/run/secrets/postgres_password",
        "DATA_SOURCE_URI=db.internal:5433/app?sslmode=require",
        "DATA_SOURCE_USER=exporter",
    ]


def test_docker_password_is_a_secret_file_and_never_in_env(docker):
    container = docker.one(CONTAINER, "postgres-exporter")
    assert container.inputs["uploads"] == [{"file": "/run/secrets/postgres_password", "content": PASSWORD}]
    uploads = container.raw_inputs["uploads"]
    assert is_secret(uploads) or is_secret(uploads[0]) or is_secret(uploads[0]["content"])
    assert PASSWORD not in json.dumps(container.inputs["envs"])


def test_docker_prometheus_scrapes_postgres_exporter_on_9187(docker):
    job = scrape_jobs(docker)["postgres-exporter"]
    assert job["static_configs"] == [{"targets": ["postgres-exporter:9187"]}]


def test_kubernetes_runs_a_deployment_of_the_pinned_image(prod_container):
    assert prod_container["image"] == images.POSTGRES_EXPORTER
    assert prod_container["ports"] == [{"name": "metrics", "containerPort": 9187}]


def test_kubernetes_env_has_uri_user_and_password_file_only(prod_container):
    # prod: host postgres.databases.svc, default port, database app, sslmode verify-full.
    assert {e["name"]: e["value"] for e in prod_container["env"]} == {
        "DATA_SOURCE_URI": "postgres.databases.svc:5432/app?sslmode=verify-full",
        "DATA_SOURCE_USER": "postgres_exporter",
        "DATA_SOURCE_PASS_FILE": "/run/secrets/postgres_password",
    }
    assert PASSWORD not in json.dumps(prod_container)


def test_kubernetes_secret_holds_the_password_mounted_at_run_secrets(prod, prod_container):
    secret = prod.one("kubernetes:core/v1:Secret", "postgres-exporter-secrets")
    assert secret.inputs["stringData"] == {"postgres_password": PASSWORD}
    string_data = secret.raw_inputs["stringData"]
    assert is_secret(string_data) or is_secret(string_data["postgres_password"])
    [mount] = [m for m in prod_container["volumeMounts"] if m["mountPath"] == "/run/secrets"]
    assert mount["readOnly"] is True
    pod = prod.one(DEPLOYMENT, "postgres-exporter").inputs["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert "secret" in volume


def test_kubernetes_prometheus_scrapes_the_service_on_9187(prod):
    job = scrape_jobs(prod)["postgres-exporter"]
    assert job["static_configs"] == [{"targets": ["postgres-exporter:9187"]}]
    service = prod.one("kubernetes:core/v1:Service", "postgres-exporter").inputs
    assert service["metadata"]["name"] == "postgres-exporter"
    assert [p["port"] for p in service["spec"]["ports"]] == [9187]
