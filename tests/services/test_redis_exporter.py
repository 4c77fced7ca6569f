"""redis_exporter: REDIS_ADDR, and a JSON password file when Redis wants a password; port 9121."""

from __future__ import annotations

import json

import pytest
from conftest import SECRETS, is_secret, merge, planned_workload, run_program, scrape_jobs, stack_config, stack_secrets

from components import images
from components.settings import parse

CONTAINER = "docker:index/container:Container"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PASSWORD = SECRETS["redis_password"]
ADDRESS = "redis://cache.internal:6379"
REDIS = {"exporters": {"redis": {"enabled": True, "address": ADDRESS}}}


def env_of(container: dict) -> dict:
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.fixture(scope="module")
def docker():
    return run_program("dev", merge(stack_config("dev"), REDIS), {"redis_password": PASSWORD})


@pytest.fixture(scope="module")
def docker_no_password():
    return run_program("dev", merge(stack_config("dev"), REDIS))


@pytest.fixture(scope="module")
def prod(stack_runs):
    return stack_runs["prod"]


@pytest.fixture(scope="module")
def staging_no_password():
    secrets = {k: v for k, v in stack_secrets("staging").items() if k != "redis_password"}
    return run_program("staging", stack_config("staging"), secrets)


def k8s_container(run) -> dict:
    [container] = run.one(DEPLOYMENT, "redis-exporter").inputs["spec"]["template"]["spec"]["containers"]
    return container


def test_disabled_redis_exporter_has_no_workload():
    assert planned_workload(parse("dev", stack_config("dev")), "redis-exporter") is None


def test_disabled_redis_exporter_is_not_deployed_or_scraped(stack_runs):
    dev = stack_runs["dev"]
    assert "redis-exporter" not in dev.names(CONTAINER)
    assert "redis-exporter" not in scrape_jobs(dev)
    assert "redis-exporter" not in dev.outputs["services"]


def test_docker_runs_the_pinned_image(docker):
    image = docker.one("docker:index/remoteImage:RemoteImage", "redis-exporter-image")
    assert image.inputs["name"] == images.REDIS_EXPORTER
    assert docker.one(CONTAINER, "redis-exporter").inputs["image"] == "sha256:redis-exporter-image"


def test_docker_password_file_is_json_keyed_by_the_address(docker):
    container = docker.one(CONTAINER, "redis-exporter")
    assert sorted(container.inputs["envs"]) == [
        f"REDIS_ADDR={ADDRESS}",
        "REDIS_PASSWORD_FILE=/run/secrets/redis_password",
    ]
    [upload] = container.inputs["uploads"]
    assert upload["file"] == "/run/secrets/redis_password"
    assert json.loads(upload["content"]) == {ADDRESS: PASSWORD}
    uploads = container.raw_inputs["uploads"]
    assert is_secret(uploads) or is_secret(uploads[0]) or is_secret(uploads[0]["content"])


def test_docker_without_password_has_no_password_file(docker_no_password):
    container = docker_no_password.one(CONTAINER, "redis-exporter").inputs
    assert container["envs"] == [f"REDIS_ADDR={ADDRESS}"]
    assert not container.get("uploads")


def test_docker_prometheus_scrapes_redis_exporter_on_9121(docker):
    job = scrape_jobs(docker)["redis-exporter"]
    assert job["static_configs"] == [{"targets": ["redis-exporter:9121"]}]


def test_kubernetes_runs_a_deployment_of_the_pinned_image(prod):
    container = k8s_container(prod)
    assert container["image"] == images.REDIS_EXPORTER
    assert container["ports"] == [{"name": "metrics", "containerPort": 9121}]


def test_kubernetes_password_file_is_a_secret_json_keyed_by_the_address(prod):
    address = "rediss://redis.databases.svc:6380"
    assert env_of(k8s_container(prod)) == {
        "REDIS_ADDR": address,
        "REDIS_PASSWORD_FILE": "/run/secrets/redis_password",
    }
    secret = prod.one("kubernetes:core/v1:Secret", "redis-exporter-secrets")
    assert set(secret.inputs["stringData"]) == {"redis_password"}
    assert json.loads(secret.inputs["stringData"]["redis_password"]) == {address: PASSWORD}
    string_data = secret.raw_inputs["stringData"]
    assert is_secret(string_data) or is_secret(string_data["redis_password"])
    assert PASSWORD not in json.dumps(k8s_container(prod))


def test_kubernetes_without_password_has_no_secret_or_password_file(staging_no_password):
    assert env_of(k8s_container(staging_no_password)) == {"REDIS_ADDR": "redis://redis.databases.svc:6379"}
    assert "redis-exporter-secrets" not in staging_no_password.names("kubernetes:core/v1:Secret")


def test_kubernetes_prometheus_scrapes_the_service_on_9121(prod):
    job = scrape_jobs(prod)["redis-exporter"]
    assert job["static_configs"] == [{"targets": ["redis-exporter:9121"]}]
    service = prod.one("kubernetes:core/v1:Service", "redis-exporter").inputs
    assert [p["port"] for p in service["spec"]["ports"]] == [9121]
