"""postgres-exporter: one PostgreSQL server's health, connections, transactions and sizes."""

from __future__ import annotations

from typing import Optional
from urllib.parse import quote, urlencode

import pulumi

from components import images
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import PostgresExporterArgs
from components.workload import Egress, HealthCheck, Port, SecretFile, Workload

NAME = "postgres-exporter"
PORT = 9187


def workload(args: PostgresExporterArgs, password: pulumi.Input[str], name: str = NAME) -> Workload:
    # A secret in the state and the preview, whatever the caller passed.
    password = SecretFile("postgres_password", pulumi.Output.secret(password))
    return Workload(
        name=name,
        image=images.POSTGRES_EXPORTER,
        ports=(Port("metrics", PORT),),
        resources=args.resources,
        # URI, user and a password file: the password never appears in the environment. The
        # exporter puts postgresql:// in front. The database name is escaped as a path segment
        # and sslmode is the only query parameter, so no setting can add another.
        env={
            "DATA_SOURCE_URI": f"{args.host}:{args.port}/{quote(args.database, safe='')}?{urlencode({'sslmode': args.sslmode})}",
            "DATA_SOURCE_USER": args.user,
            "DATA_SOURCE_PASS_FILE": password.path,
        },
        secret_files=(password,),
        egress=(Egress("the PostgreSQL server", (args.port,)),),
        health=HealthCheck("metrics", "/"),
        run_as_user=65534,
        metrics_port="metrics",
    )


class PostgresExporter(ServiceComponent):
    """postgres-exporter for one PostgreSQL server: its health, connections, transactions and sizes.

    args: the server (host and user are required) and the exporter's resources. password: the
    user's password, kept a secret and mounted as a file. platform: where it runs, provisioned.
    See ServiceComponent for the output properties.
    """

    kind = "PostgresExporter"

    def __init__(self, name: str, args: PostgresExporterArgs, *, password: pulumi.Input[str], platform: Platform,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, platform, opts, args=args, password=password)

    @classmethod
    def render(cls, name: str, platform: Platform, *, args: PostgresExporterArgs,
               password: pulumi.Input[str]) -> Workload:
        return workload(args, password, name)
