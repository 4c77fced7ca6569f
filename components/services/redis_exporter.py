"""redis_exporter: one Redis server's clients, memory, commands and keyspace."""

from __future__ import annotations

import json
from typing import Optional
from urllib.parse import urlsplit

import pulumi

from components import images
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import RedisExporterArgs
from components.workload import Egress, HealthCheck, Port, SecretFile, Workload

NAME = "redis-exporter"
PORT = 9121


def workload(args: RedisExporterArgs, password: Optional[pulumi.Input[str]] = None, name: str = NAME) -> Workload:
    env = {"REDIS_ADDR": args.address}
    secrets = ()
    if password is not None:
        # redis_exporter reads its password file as JSON: {"<address>": "<password>"}.
        content = pulumi.Output.secret(password).apply(lambda value: json.dumps({args.address: value}))
        secrets = (SecretFile("redis_password", content),)
        env["REDIS_PASSWORD_FILE"] = secrets[0].path
    return Workload(
        name=name,
        image=images.REDIS_EXPORTER,
        ports=(Port("metrics", PORT),),
        resources=args.resources,
        env=env,
        secret_files=secrets,
        # Redis's own default port where the address names none.
        egress=(Egress("the Redis server", (urlsplit(args.address).port or 6379,)),),
        health=HealthCheck("metrics", "/health", docker_tool="wget"),
        run_as_user=65534,
        metrics_port="metrics",
    )


class RedisExporter(ServiceComponent):
    """redis_exporter for one Redis server: its clients, memory, commands and keyspace.

    args: the server's address (required) and the exporter's resources. password: when Redis
    wants one, kept a secret and mounted as a file. platform: where it runs, provisioned.
    See ServiceComponent for the output properties.
    """

    kind = "RedisExporter"

    def __init__(self, name: str, args: RedisExporterArgs, *, password: Optional[pulumi.Input[str]] = None,
                 platform: Platform, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, platform, opts, args=args, password=password)

    @classmethod
    def render(cls, name: str, platform: Platform, *, args: RedisExporterArgs,
               password: Optional[pulumi.Input[str]]) -> Workload:
        return workload(args, password, name)
