"""The docker platform: every workload is one container on one user-defined network."""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_docker as docker

from components.platforms import PUBLIC_PORTS_LABEL, Platform, data_options
from components.settings import DockerSettings, quantity
from components.workload import CONFIG_HASH, HealthCheck, Workload

def memory_megabytes(memory: str) -> int:
    """A Kubernetes memory quantity as whole MiB, the unit the docker provider takes."""
    return max(1, int(quantity(memory)) // 2**20)


def cpus(cpu: str) -> str:
    """A Kubernetes CPU quantity ("250m", "1") as the decimal docker's --cpus takes."""
    return f"{quantity(cpu):g}"


def capabilities(w: Workload, user: Optional[str]) -> Optional[docker.ContainerCapabilitiesArgs]:
    """What the container may do beyond an unprivileged process: every capability dropped, as
    its pod does on kubernetes, and only those it needs added back: those the workload names
    (DCGM's SYS_ADMIN), and DAC_OVERRIDE for root that is root only to open the engine's socket
    and writes a data directory its image gives to another user (Prometheus's /prometheus,
    Alloy's /var/lib/alloy). A privileged container (cAdvisor) holds every capability anyway."""
    if w.privileged:
        return None
    adds = list(w.capabilities)
    if w.discovery and user == "0" and w.data is not None:
        adds.append("DAC_OVERRIDE")
    return docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=adds or None)


def health_command(health: HealthCheck, port: int) -> list[str]:
    url = f"http://127.0.0.1:{port}{health.path}"
    if health.docker_tool == "curl":
        return ["CMD", "curl", "-fsS", "-o", "/dev/null", url]
    if health.docker_tool == "bash":
        # One HTTP/1.0 request by hand; healthy when the status line says 2xx.
        script = (
            f"exec 3<>/dev/tcp/127.0.0.1/{port} && "
            f"printf 'GET {health.path} HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3 && "
            "read -r status <&3 && [[ $status =~ ^HTTP/1\\.[01]\\ 2[0-9][0-9] ]]"
        )
        return ["CMD", "bash", "-c", script]
    if health.docker_tool == "loki":
        # Loki 3.7's own check: exits 0 when the URL answers 200.
        return ["CMD", "/usr/bin/loki", "-health", f"-health.url={url}"]
    return ["CMD", "wget", "-q", "-O", "/dev/null", url]


class DockerPlatform(Platform):
    """One Docker engine: each service a container on one network, published on `bind_address`.

    protect_data: volumes are protected and kept when the stack is destroyed.
    """

    kind = "docker"

    def __init__(self, settings: Optional[DockerSettings] = None, *, protect_data: bool = False):
        self.settings = settings or DockerSettings()
        self.data_options = data_options(protect_data)

    def provision(self, parent: Optional[pulumi.Resource] = None) -> None:
        self.provider = docker.Provider(
            "docker", host=self.settings.host, opts=pulumi.ResourceOptions(parent=parent)
        )
        self.network = docker.Network(
            "network",
            name=self.settings.network,
            opts=pulumi.ResourceOptions(parent=parent, provider=self.provider),
        )

    def container_name(self, workload: Workload) -> str:
        # Prefixed by the network so two stacks can share one engine.
        return f"{self.settings.network}-{workload.name}"

    def addresses(self, workload: Workload, port: str) -> list[str]:
        # Containers reach each other by their alias on the stack's network.
        return [f"{workload.name}:{workload.port(port).container_port}"]

    def urls(self, workload: Workload) -> dict[str, str]:
        # On every interface (0.0.0.0), the host itself answers on its loopback address.
        host = "127.0.0.1" if self.settings.bind_address == "0.0.0.0" else self.settings.bind_address
        return {p.name: f"http://{host}:{p.host_port}" for p in workload.ports if p.host_port is not None}

    def deploy(self, w: Workload, parent: pulumi.Resource) -> None:
        if w.replicas > 1 or w.autoscale is not None or w.peers:
            # One engine is one machine: there is nothing to spread replicas over.
            raise ValueError(f"{w.name}: docker runs one container per service; replicas, autoscaling "
                             "and peer Services are kubernetes'")
        opts = pulumi.ResourceOptions(parent=parent, provider=self.provider)
        image = docker.RemoteImage(f"{w.name}-image", name=w.image, keep_locally=True, opts=opts)

        volumes = [
            docker.ContainerVolumeArgs(
                host_path=m.host_path, container_path=m.mount_path, read_only=m.read_only
            )
            for m in w.host_mounts
        ]
        if w.data is not None:
            data = docker.Volume(
                f"{w.name}-data", name=f"{self.container_name(w)}-data",
                opts=pulumi.ResourceOptions.merge(opts, self.data_options),
            )
            volumes.append(
                docker.ContainerVolumeArgs(volume_name=data.name, container_path=w.data.mount_path)
            )
        # The user a restricted pod runs as on kubernetes, so that dev runs unprivileged too, and
        # does not depend on the user an image names (or fails to: the redis_exporter image).
        user = str(w.run_as_user) if w.run_as_user is not None else None
        if w.discovery:
            # Discovery reads the engine's socket, which only root (or the host's docker group,
            # whose id differs from host to host) may open. Read-only mount; dev machines only.
            volumes.append(
                docker.ContainerVolumeArgs(
                    host_path=self.settings.socket_path,
                    container_path="/var/run/docker.sock",
                    read_only=True,
                )
            )
            user = "0"

        uploads = [docker.ContainerUploadArgs(file=f.path, content=f.content) for f in w.config_files]
        uploads += [docker.ContainerUploadArgs(file=s.path, content=s.value) for s in w.secret_files]

        healthcheck = None
        if w.health is not None and w.health.docker_tool is not None:
            healthcheck = docker.ContainerHealthcheckArgs(
                tests=health_command(w.health, w.port(w.health.port).container_port),
                interval="10s",
                timeout="5s",
                retries=6,
                start_period="30s",
            )

        docker.Container(
            w.name,
            name=self.container_name(w),
            image=image.image_id,
            command=list(w.args) or None,
            envs=[f"{k}={v}" for k, v in sorted(w.env.items())] or None,
            labels=[
                docker.ContainerLabelArgs(label="observability.service", value=w.name),
                docker.ContainerLabelArgs(label=CONFIG_HASH, value=w.config_hash()),
                *(
                    [docker.ContainerLabelArgs(label=PUBLIC_PORTS_LABEL, value=self.settings.bind_address)]
                    if any(p.host_port for p in w.ports) and not self.settings.bind_address.startswith("127.")
                    else []
                ),
            ],
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(name=self.network.name, aliases=[w.name])
            ],
            # The host network would take the container off the stack network and publish its
            # port on every interface, so host-level exporters stay on the bridge here; they
            # still see the host's processes and filesystems through host_pid and host mounts.
            ports=[
                docker.ContainerPortArgs(
                    internal=p.container_port, external=p.host_port, ip=self.settings.bind_address
                )
                for p in w.ports
                if p.host_port is not None
            ],
            # host.docker.internal is built into Docker Desktop; on Linux engines it needs this.
            hosts=[docker.ContainerHostArgs(host="host.docker.internal", ip="host-gateway")],
            volumes=volumes or None,
            uploads=uploads or None,
            healthcheck=healthcheck,
            # wait needs a health check to wait for; without one the engine reports "running".
            wait=healthcheck is not None,
            wait_timeout=180,
            restart="unless-stopped",
            memory=memory_megabytes(w.resources.limits.memory),
            cpus=cpus(w.resources.limits.cpu),
            pid_mode="host" if w.host_pid else None,
            privileged=w.privileged or None,
            capabilities=capabilities(w, user),
            # No process in the container gains privileges it did not start with (setuid, file
            # capabilities), whoever it runs as.
            security_opts=["no-new-privileges:true"],
            user=user,
            device_requests=[
                docker.ContainerDeviceRequestArgs(driver="nvidia", count=-1, capabilities=["gpu"])
            ]
            if w.gpu is not None
            else None,
            # Fixed container names and host ports cannot exist twice: remove, then create.
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(delete_before_replace=True)
            ),
        )
