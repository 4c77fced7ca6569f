"""Grafana, the server: its container, its database (SQLite on a data volume, or an existing
PostgreSQL shared by several replicas), admin password (as a file) and Ingress.

What goes inside it (folders, datasources, dashboards, rules) is components/grafana/content.py's,
which also configures a Grafana the stack does not run.

Every GF_ variable set here is a key of Grafana's conf/defaults.ini (Grafana applies GF_<SECTION>_<KEY>
only to keys that file has): [database] type, host, name, user, password, ssl_mode, ca_cert_path
(pkg/services/sqlstore/database_config.go @ a8dd3a999efb reads them) and [unified_alerting]
ha_listen_address, ha_advertise_address, ha_peers (setting_unified_alerting.go; the HA guide,
docs/sources/alerting/set-up/configure-high-availability/_index.md @ 548e49393748). The defaults.ini
of 13.2.3 itself was not read: docs/known-limits.md says so.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence
from urllib.parse import urlsplit

import pulumi

from components import images
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import GrafanaDatabase, GrafanaServerArgs, Settings, url_port
from components.workload import DataVolume, Egress, HealthCheck, Ingress, Peers, Port, SecretFile, Workload

NAME = "grafana"
PORT = 3000
DATA_DIR = "/var/lib/grafana"
PASSWORD_FILE = "grafana_admin_password"
DATABASE_PASSWORD_FILE = "grafana_database_password"
DATABASE_CA_FILE = "grafana_database_ca_cert"
# Unified alerting's cluster (its Alertmanager's gossip), TCP and UDP, on every replica.
GOSSIP_PORT = 9094


def peers_service(name: str) -> str:
    """The headless Service that lists every replica for unified alerting's gossip."""
    return f"{name}-alerting"


def base(args: GrafanaServerArgs, platform: Platform, name: str = NAME, datasources: Sequence[str] = ()) -> Workload:
    """Grafana without its secrets: enough to address and scrape it before the password
    (perhaps a generated one) exists. datasources: the URLs of datasources it reads outside the
    stack (grafana.datasource_urls, grafana.long_term_metrics), which its network policy lets it
    reach.

    With args.database, Grafana keeps nothing of its own: every replica reads and writes the
    shared PostgreSQL database, and its data directory (plugins, rendered images) is scratch."""
    if args.replicas > 1 and args.database is None:
        raise ValueError(f"{name}: more than one replica needs a database they share (args.database)")
    db = args.database
    egress = [Egress(f"the datasource at {url}", (url_port(url),)) for url in datasources]
    if db is not None:
        egress.append(Egress(f"its database at {db.host}", (_database_port(db),)))
    server = Workload(
        name=name,
        image=images.GRAFANA,
        ports=(Port("http", PORT, host_port=args.port), *_gossip_ports(args, name)),
        resources=args.resources,
        env={
            "GF_SECURITY_ADMIN_USER": args.admin_user,
            # Read from a file: the password is never in the environment.
            "GF_SECURITY_ADMIN_PASSWORD__FILE": SecretFile(PASSWORD_FILE, None).path,
            "GF_USERS_ALLOW_SIGN_UP": "false",
            "GF_AUTH_ANONYMOUS_ENABLED": "false",
            "GF_ANALYTICS_REPORTING_ENABLED": "false",
            "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
            **_alerting_cluster_env(args, name),
        },
        data=DataVolume(DATA_DIR, args.storage_size) if db is None else None,
        scratch=(DATA_DIR,) if db is not None else (),
        egress=tuple(egress),
        # The image (Alpine) has wget; pulumi up waits for /api/health before configuring Grafana.
        # It answers once the database does.
        health=HealthCheck("http", "/api/health"),
        replicas=args.replicas,
        run_as_user=472,
        metrics_port="http",
        ingress=_ingress(args),
        peers=(Peers(peers_service(name), GOSSIP_PORT),) if args.replicas > 1 else (),
        # The address each replica gives its peers (Grafana expands ${POD_IP} in its settings).
        field_env={"POD_IP": "status.podIP"} if args.replicas > 1 else {},
    )
    # Its links and redirects: the given url, or where the platform publishes its port.
    root = args.url.rstrip("/") if args.url is not None else platform.urls(server)["http"]
    env = {**server.env, "GF_SERVER_ROOT_URL": root}
    if root.startswith("https://"):
        # Reached over TLS (its Ingress, or a proxy in front): the session cookie only travels
        # over https, and browsers are told to use nothing else (HSTS), as Grafana's security
        # hardening guide asks of a Grafana behind HTTPS.
        env |= {"GF_SECURITY_COOKIE_SECURE": "true", "GF_SECURITY_STRICT_TRANSPORT_SECURITY": "true"}
    return dataclasses.replace(server, env=env)


def _database_port(db: GrafanaDatabase) -> int:
    return int(db.host.rpartition(":")[2])


def _gossip_ports(args: GrafanaServerArgs, name: str) -> tuple[Port, ...]:
    # Only its own replicas gossip; one replica has no cluster.
    return (Port("gossip", GOSSIP_PORT, clients=(name,), udp=True),) if args.replicas > 1 else ()


def _alerting_cluster_env(args: GrafanaServerArgs, name: str) -> dict[str, str]:
    """Unified alerting as one cluster over the replicas: they find each other at the headless
    Service of their peers (every replica's address, ready or not) and gossip notifications
    sent and silences, so an alert notifies once. Every replica still evaluates every rule."""
    if args.replicas == 1:
        return {}
    return {
        "GF_UNIFIED_ALERTING_HA_PEERS": f"{peers_service(name)}:{GOSSIP_PORT}",
        "GF_UNIFIED_ALERTING_HA_LISTEN_ADDRESS": f"0.0.0.0:{GOSSIP_PORT}",
        # Grafana expands ${VAR} in every setting, environment overrides included
        # (pkg/setting/setting.go: applyEnvVariableOverrides, then expandConfig).
        "GF_UNIFIED_ALERTING_HA_ADVERTISE_ADDRESS": f"${{POD_IP}}:{GOSSIP_PORT}",
    }


def _database_env(db: GrafanaDatabase, ca: Optional[SecretFile]) -> dict[str, str]:
    env = {
        "GF_DATABASE_TYPE": "postgres",
        "GF_DATABASE_HOST": db.host,
        "GF_DATABASE_NAME": db.name,
        "GF_DATABASE_USER": db.user,
        # The image's entrypoint reads every GF_*__FILE into GF_* (packaging/docker/run.sh).
        "GF_DATABASE_PASSWORD__FILE": SecretFile(DATABASE_PASSWORD_FILE, None).path,
        "GF_DATABASE_SSL_MODE": db.ssl_mode,
    }
    if ca is not None:
        env["GF_DATABASE_CA_CERT_PATH"] = ca.path
    return env


def _ingress(args: GrafanaServerArgs) -> Optional[Ingress]:
    i = args.ingress
    if not i.enabled:
        return None
    if args.url is None:
        raise ValueError("grafana: an ingress needs the url it serves, https://<host>")
    annotations = dict(i.annotations)
    if i.cluster_issuer:
        # cert-manager issues the certificate into tls_secret and renews it.
        annotations["cert-manager.io/cluster-issuer"] = i.cluster_issuer
    return Ingress(
        port="http",
        host=urlsplit(args.url).hostname,
        tls_secret=i.tls_secret,
        class_name=i.class_name,
        annotations=annotations,
        controller_namespace=i.controller_namespace,
    )


def workload(args: GrafanaServerArgs, platform: Platform, admin_password: pulumi.Input[str],
             name: str = NAME, datasources: Sequence[str] = (),
             database_password: Optional[pulumi.Input[str]] = None,
             database_ca_cert: Optional[pulumi.Input[str]] = None) -> Workload:
    server = base(args, platform, name, datasources)
    # Secrets in the state and the preview, whatever the caller passed.
    secrets = [SecretFile(PASSWORD_FILE, pulumi.Output.secret(admin_password))]
    if args.database is None:
        return dataclasses.replace(server, secret_files=tuple(secrets))
    if database_password is None:
        raise ValueError(f"{name}: a database needs its password (database_password)")
    secrets.append(SecretFile(DATABASE_PASSWORD_FILE, pulumi.Output.secret(database_password)))
    ca = SecretFile(DATABASE_CA_FILE, pulumi.Output.secret(database_ca_cert)) if database_ca_cert is not None else None
    if ca is not None:
        secrets.append(ca)
    env = {**server.env, **_database_env(args.database, ca)}
    return dataclasses.replace(server, env=env, secret_files=tuple(secrets))


class Grafana(ServiceComponent):
    """The Grafana server, on its data volume or on a shared PostgreSQL database (then as several
    replicas, if the args ask), behind an Ingress when the args ask for one.

    args: the stack file's server keys of `grafana:` (GrafanaServerArgs: port, url, admin
    user, ingress, replicas, database, storage size, resources; the stacks' defaults when left
    out). admin_password: the admin's password, kept secret and mounted as a file.
    database_password (required with args.database) and database_ca_cert (optional, PEM): kept
    secret and mounted as files. datasources: URLs of datasources outside the stack, which its
    network policy lets it reach on kubernetes. Its content (folders, datasources, dashboards,
    rules) is GrafanaContent's. See ServiceComponent for the output properties.
    """

    kind = "Grafana"

    def __init__(self, name: str, args: Optional[GrafanaServerArgs] = None, *, admin_password: pulumi.Input[str],
                 platform: Platform, datasources: Sequence[str] = (),
                 database_password: Optional[pulumi.Input[str]] = None,
                 database_ca_cert: Optional[pulumi.Input[str]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, platform, opts, args=args or GrafanaServerArgs(), admin_password=admin_password,
                         datasources=datasources, database_password=database_password,
                         database_ca_cert=database_ca_cert)

    @classmethod
    def render(cls, name: str, platform: Platform, *, args: GrafanaServerArgs,
               admin_password: pulumi.Input[str], datasources: Sequence[str] = (),
               database_password: Optional[pulumi.Input[str]] = None,
               database_ca_cert: Optional[pulumi.Input[str]] = None) -> Workload:
        return workload(args, platform, admin_password, name, datasources, database_password, database_ca_cert)


def url(settings: Settings) -> str:
    """Where `pulumi up` and people reach Grafana."""
    if settings.grafana.url is not None:
        return settings.grafana.url.rstrip("/")
    host = settings.docker.bind_address
    return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{settings.grafana.port}"


