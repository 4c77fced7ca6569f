"""postgres-exporter: one PostgreSQL server's health, connections, transactions and sizes."""

from __future__ import annotations

from typing import Optional
from urllib.parse import quote, urlencode

from components import images
from components.settings import Settings
from components.workload import HealthCheck, Port, SecretFile, Workload

PORT = 9187


def workload(settings: Settings) -> Optional[Workload]:
    pg = settings.exporters.postgres
    if not pg.enabled:
        return None
    password = SecretFile("postgres_password", settings.secret("postgres_password"))
    return Workload(
        name="postgres-exporter",
        image=images.POSTGRES_EXPORTER,
        ports=(Port("metrics", PORT),),
        resources=pg.resources,
        # URI, user and a password file: the password never appears in the environment. The
        # exporter puts postgresql:// in front. The database name is escaped as a path segment
        # and sslmode is the only query parameter, so no setting can add another.
        env={
            "DATA_SOURCE_URI": f"{pg.host}:{pg.port}/{quote(pg.database, safe='')}?{urlencode({'sslmode': pg.sslmode})}",
            "DATA_SOURCE_USER": pg.user,
            "DATA_SOURCE_PASS_FILE": password.path,
        },
        secret_files=(password,),
        health=HealthCheck("metrics", "/"),
        run_as_user=65534,
        metrics_port="metrics",
    )
