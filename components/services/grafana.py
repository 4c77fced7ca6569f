"""Grafana, the server: its container, data volume, admin password (as a file) and Ingress.

What goes inside it (folders, datasources, dashboards, rules) is components/grafana/content.py's,
which also configures a Grafana the stack does not run.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence
from urllib.parse import urlsplit

import pulumi

from components import images
from components.platforms import Platform
from components.services.component import ServiceComponent
from components.settings import GrafanaServerArgs, Settings, url_port
from components.workload import DataVolume, Egress, HealthCheck, Ingress, Port, SecretFile, Workload

NAME = "grafana"
PORT = 3000
DATA_DIR = "/var/lib/grafana"
PASSWORD_FILE = "grafana_admin_password"


def base(args: GrafanaServerArgs, platform: Platform, name: str = NAME, datasources: Sequence[str] = ()) -> Workload:
    """Grafana without its admin password: enough to address and scrape it before the
    password (perhaps a generated one) exists. datasources: the URLs of datasources it reads
    outside the stack (grafana.datasource_urls), which its network policy lets it reach."""
    server = Workload(
        name=name,
        image=images.GRAFANA,
        ports=(Port("http", PORT, host_port=args.port),),
        resources=args.resources,
        env={
            "GF_SECURITY_ADMIN_USER": args.admin_user,
            # Read from a file: the password is never in the environment.
            "GF_SECURITY_ADMIN_PASSWORD__FILE": SecretFile(PASSWORD_FILE, None).path,
            "GF_USERS_ALLOW_SIGN_UP": "false",
            "GF_AUTH_ANONYMOUS_ENABLED": "false",
            "GF_ANALYTICS_REPORTING_ENABLED": "false",
            "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        },
        data=DataVolume(DATA_DIR, args.storage_size),
        egress=tuple(Egress(f"the datasource at {url}", (url_port(url),)) for url in datasources),
        # The image (Alpine) has wget; pulumi up waits for /api/health before configuring Grafana.
        health=HealthCheck("http", "/api/health"),
        run_as_user=472,
        metrics_port="http",
        ingress=_ingress(args),
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
             name: str = NAME, datasources: Sequence[str] = ()) -> Workload:
    # A secret in the state and the preview, whatever the caller passed.
    password = SecretFile(PASSWORD_FILE, pulumi.Output.secret(admin_password))
    return dataclasses.replace(base(args, platform, name, datasources), secret_files=(password,))


class Grafana(ServiceComponent):
    """The Grafana server, on its data volume, behind an Ingress when the args ask for one.

    args: the stack file's server keys of `grafana:` (GrafanaServerArgs: port, url, admin
    user, ingress, storage size, resources; the stacks' defaults when left out). admin_password:
    the admin's password, kept secret and mounted as a file. datasources: URLs of datasources
    outside the stack, which its network policy lets it reach on kubernetes. Its content (folders, datasources,
    dashboards, rules) is GrafanaContent's. See ServiceComponent for the output properties.
    """

    kind = "Grafana"

    def __init__(self, name: str, args: Optional[GrafanaServerArgs] = None, *, admin_password: pulumi.Input[str],
                 platform: Platform, datasources: Sequence[str] = (), opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(name, platform, opts, args=args or GrafanaServerArgs(), admin_password=admin_password,
                         datasources=datasources)

    @classmethod
    def render(cls, name: str, platform: Platform, *, args: GrafanaServerArgs,
               admin_password: pulumi.Input[str], datasources: Sequence[str] = ()) -> Workload:
        return workload(args, platform, admin_password, name, datasources)


def url(settings: Settings) -> str:
    """Where `pulumi up` and people reach Grafana."""
    if settings.grafana.url is not None:
        return settings.grafana.url.rstrip("/")
    host = settings.docker.bind_address
    return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{settings.grafana.port}"


