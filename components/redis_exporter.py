"""redis_exporter: one Redis server's clients, memory, commands and keyspace."""

from __future__ import annotations

import json
from typing import Optional

from components import images
from components.settings import Settings
from components.workload import HealthCheck, Port, SecretFile, Workload

PORT = 9121


def workload(settings: Settings) -> Optional[Workload]:
    redis = settings.exporters.redis
    if not redis.enabled:
        return None
    env = {"REDIS_ADDR": redis.address}
    secrets = ()
    if settings.secrets.redis_password is not None:
        # redis_exporter reads its password file as JSON: {"<address>": "<password>"}.
        content = settings.secret("redis_password").apply(
            lambda password: json.dumps({redis.address: password})
        )
        secrets = (SecretFile("redis_password", content),)
        env["REDIS_PASSWORD_FILE"] = secrets[0].path
    return Workload(
        name="redis-exporter",
        image=images.REDIS_EXPORTER,
        ports=(Port("metrics", PORT),),
        resources=redis.resources,
        env=env,
        secret_files=secrets,
        health=HealthCheck("metrics", "/health", docker_tool="wget"),
        run_as_user=65534,
        metrics_port="metrics",
    )
