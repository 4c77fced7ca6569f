"""The kubernetes platform: a namespace; per workload a Deployment, StatefulSet or DaemonSet.

ConfigMaps and Secrets get generated names, so a change of content creates a new object, changes
the pod template that mounts it and rolls the pods; the old object goes once the rollout is done.
"""

from __future__ import annotations

import posixpath
import re
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.platforms import Platform, data_options
from components.settings import KubernetesSettings
from components.workload import (
    ANYONE, CONFIG_HASH, HOST_ACCESS_BECAUSE, PROMETHEUS, ROOT_BECAUSE, SECRETS_DIR, ApiRead, Egress, Peers,
    PodDiscovery, ScrapeJob, Sources, Workload,
)

# The prefix of the pod label that puts a pod in the headless Service of Workload.peers:
# <PEERS><service>: "true", one label per Service, so that a pod may be in several.
PEERS = "peers.observability.dev/"

def node_agents_namespace(settings: KubernetesSettings) -> str:
    return settings.node_agents_namespace or f"{settings.namespace}-node-agents"


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


class KubernetesPlatform(Platform):
    """A Kubernetes cluster: each service its Deployment, StatefulSet or DaemonSet, Service and
    NetworkPolicy in one namespace, which provision() creates with a default-deny policy.

    settings: the kubeconfig context (the current one when unset), the namespace and the storage
    class of claims. environment: the app.kubernetes.io/instance label of every object.
    protect_data: claims are protected and kept when the stack is destroyed.
    """

    kind = "kubernetes"

    def __init__(self, settings: Optional[KubernetesSettings] = None, *, environment: str,
                 protect_data: bool = False):
        self.settings = settings or KubernetesSettings()
        self.data_options = data_options(protect_data)
        # The app.kubernetes.io/instance label of every object: which stack it belongs to.
        self.environment = environment
        self.namespace = self.settings.namespace
        self.agents_namespace = node_agents_namespace(self.settings)
        # The headless Services of Workload.peers made so far (each with its first member).
        self._peers: set[Peers] = set()

    def provision(self, parent: Optional[pulumi.Resource] = None) -> None:
        self.provider = k8s.Provider(
            "kubernetes",
            context=self.settings.context,
            namespace=self.namespace,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        # The namespace of the stack's services runs them under Pod Security's `restricted`
        # profile; the per-node agents that need their node (its namespaces, files or root) run
        # in a namespace of their own, the only one at `privileged`.
        self.namespace_resource = self._namespace("namespace", self.namespace, "restricted", parent)
        self.agents_namespace_resource = self._namespace(
            "node-agents-namespace", self.agents_namespace, "privileged", parent)

    def _namespace(self, name: str, namespace: str, level: str, parent: Optional[pulumi.Resource]):
        labels = {**self._labels(name.removesuffix("-namespace")),
                  **{f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "audit", "warn")}}
        resource = k8s.core.v1.Namespace(
            name,
            metadata={"name": namespace, "labels": labels},
            opts=pulumi.ResourceOptions(parent=parent, provider=self.provider),
        )
        # No pod of the namespace takes or makes a connection unless its workload's own policy
        # allows it (see _network_policy).
        prefix = "" if namespace == self.namespace else "node-agents-"
        for direction in ("Ingress", "Egress"):
            k8s.networking.v1.NetworkPolicy(
                f"{prefix}default-deny-{direction.lower()}",
                metadata={"name": f"default-deny-{direction.lower()}", "namespace": namespace,
                          "labels": self._labels("network")},
                spec={"podSelector": {}, "policyTypes": [direction]},
                opts=pulumi.ResourceOptions(parent=parent, provider=self.provider, depends_on=[resource],
                                            delete_before_replace=True),
            )
        return resource

    def namespace_of(self, w: Workload) -> str:
        """The node agents' namespace for a workload that reaches into its node or runs as root;
        the stack's namespace for every other."""
        if w.host_access() or w.unrestricted_because is not None:
            if not w.per_node:
                raise ValueError(f"{w.name}: only per-node agents may reach into their node or run as root")
            return self.agents_namespace
        return self.namespace

    def _labels(self, name: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/instance": self.environment,
            "app.kubernetes.io/part-of": "observability",
            "app.kubernetes.io/managed-by": "pulumi",
        }

    @staticmethod
    def _stateful(w: Workload) -> bool:
        return w.data is not None and not w.per_node

    def addresses(self, w: Workload, port: str) -> list[str]:
        number = w.port(port).container_port
        if w.per_node:
            return []
        if self._stateful(w):
            # Each StatefulSet pod has a stable name under the headless Service.
            return [f"{w.name}-{i}.{w.name}:{number}" for i in range(w.replicas)]
        return [f"{w.name}:{number}"]

    def urls(self, w: Workload) -> dict[str, str]:
        # Inside the cluster, at the workload's Service; an Ingress adds an outside address.
        return {
            p.name: f"http://{w.name}.{self.namespace}.svc:{p.container_port}" for p in w.ports if p.host_port is not None
        }

    def scrape_job(self, w: Workload) -> ScrapeJob:
        if w.part_of is not None:
            return self.service_scrape_job(w.service, [w])
        if w.per_node or self._behind_one_address(w):
            return ScrapeJob(
                name=w.name,
                pods=PodDiscovery(self.namespace_of(w), (w.name,), w.port(w.metrics_port).container_port,
                                  by_node=w.per_node),
                metrics_path=w.metrics_path,
            )
        return super().scrape_job(w)

    def service_scrape_job(self, service: str, roles) -> ScrapeJob:
        """Every pod of every role, found through the API: a role's Service would hand each
        scrape to any one of its pods."""
        ports = {w.port(w.metrics_port).container_port for w in roles}
        paths = {w.metrics_path for w in roles}
        namespaces = {self.namespace_of(w) for w in roles}
        if len(ports) != 1 or len(paths) != 1 or len(namespaces) != 1:
            raise ValueError(f"{service}: its roles serve metrics on one port and path, in one namespace")
        return ScrapeJob(
            name=service,
            pods=PodDiscovery(namespaces.pop(), tuple(w.name for w in roles), ports.pop()),
            metrics_path=paths.pop(),
        )

    def _behind_one_address(self, w: Workload) -> bool:
        """A Deployment of several pods: its Service's one address reaches any one of them."""
        return not w.per_node and not self._stateful(w) and (w.replicas > 1 or w.autoscale is not None)

    def deploy(self, w: Workload, parent: pulumi.Resource) -> None:
        namespace = self.namespace_of(w)
        opts = pulumi.ResourceOptions(
            parent=parent, provider=self.provider,
            depends_on=[self.namespace_resource if namespace == self.namespace else self.agents_namespace_resource],
        )
        # Fixed names (the stack's DNS relies on them) must be removed before a replacement.
        fixed = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True))
        labels = self._labels(w.name)
        meta = {"namespace": namespace, "labels": labels}
        volumes: list[dict] = []
        mounts: list[dict] = []

        by_dir: dict[str, dict[str, str]] = {}
        for f in w.config_files:
            by_dir.setdefault(posixpath.dirname(f.path), {})[posixpath.basename(f.path)] = f.content
        for directory, files in sorted(by_dir.items()):
            config_map = k8s.core.v1.ConfigMap(
                f"{w.name}-{_slug(directory)}", metadata=meta, data=files, opts=opts
            )
            volume = f"config-{_slug(directory)}"
            volumes.append({"name": volume, "configMap": {"name": config_map.metadata.name}})
            mounts.append({"name": volume, "mountPath": directory, "readOnly": True})

        if w.secret_files:
            secret = k8s.core.v1.Secret(
                f"{w.name}-secrets",
                metadata=meta,
                string_data={s.name: s.value for s in w.secret_files},
                opts=opts,
            )
            volumes.append({"name": "secrets", "secret": {"secretName": secret.metadata.name}})
            mounts.append({"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True})

        for i, m in enumerate(w.host_mounts):
            volumes.append({"name": f"host-{i}", "hostPath": {"path": m.host_path}})
            mounts.append({"name": f"host-{i}", "mountPath": m.mount_path, "readOnly": m.read_only})
        if w.data is not None:
            if w.per_node:
                # A per-node workload keeps its small state (a log shipper's read positions)
                # on the node whose files it describes, under the stack's namespace's name.
                volumes.append({"name": "data", "hostPath": {"path": f"/var/lib/{self.namespace}-{w.name}", "type": "DirectoryOrCreate"}})
            mounts.append({"name": "data", "mountPath": w.data.mount_path})

        container = {
            "name": w.name,
            "image": w.image,
            "args": list(w.args),
            "env": [{"name": k, "value": v} for k, v in sorted(w.env.items())],
            "ports": [{"name": p.name, "containerPort": p.container_port} for p in w.ports],
            "volumeMounts": mounts,
            "resources": {
                "requests": {"cpu": w.resources.requests.cpu, "memory": w.resources.requests.memory},
                "limits": {"cpu": w.resources.limits.cpu, "memory": w.resources.limits.memory},
            },
        }
        for name, path in sorted(w.field_env.items()):
            container["env"].append({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
        if w.health is not None:
            probe = {"httpGet": {"path": w.health.path, "port": w.health.port}}
            container["readinessProbe"] = {**probe, "periodSeconds": 10, "failureThreshold": 3}
            if w.health.restart_when_failing:
                container["livenessProbe"] = {**probe, "periodSeconds": 20, "failureThreshold": 6, "initialDelaySeconds": 30}

        pod_spec: dict = {"containers": [container], "volumes": volumes}
        if w.privileged:
            # Docker's cAdvisor alone is privileged, and kubernetes does not run it.
            raise ValueError(f"{w.name}: no pod of the stack runs privileged")
        # Every pod: the runtime's default seccomp profile, no privilege escalation, no capability
        # but those the workload names, and a read-only root filesystem with scratch space in a
        # memory-backed /tmp. A restricted pod runs as its image's unprivileged user; one that
        # says why it cannot (unrestricted_because) runs as root, saying so.
        if w.unrestricted_because is None:
            uid = w.run_as_user
            pod_spec["securityContext"] = {
                "runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
                "seccompProfile": {"type": "RuntimeDefault"},
            }
        else:
            pod_spec["securityContext"] = {"runAsNonRoot": False, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}}
        capabilities: dict = {"drop": ["ALL"]}
        if w.capabilities:
            capabilities["add"] = list(w.capabilities)
        container["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": capabilities,
        }
        volumes.append({"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}})
        mounts.append({"name": "tmp", "mountPath": "/tmp"})
        for i, path in enumerate(w.scratch):
            volumes.append({"name": f"scratch-{i}", "emptyDir": {}})
            mounts.append({"name": f"scratch-{i}", "mountPath": path})
        if w.host_pid:
            pod_spec["hostPID"] = True
        if w.host_network:
            pod_spec["hostNetwork"] = True
            pod_spec["dnsPolicy"] = "ClusterFirstWithHostNet"
        if w.gpu is not None:
            if w.gpu.runtime_class:
                pod_spec["runtimeClassName"] = w.gpu.runtime_class
            pod_spec["nodeSelector"] = dict(w.gpu.node_selector)
            pod_spec["tolerations"] = [t.model_dump(exclude_none=True) for t in w.gpu.tolerations]
            # The NVIDIA runtime exposes every GPU of the node to this container; the exporter
            # watches GPUs, it does not claim one (so no nvidia.com/gpu request).
            container["env"].append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"})
        if w.per_node:
            tolerations = pod_spec.setdefault("tolerations", [])
            for toleration in (t.model_dump(exclude_none=True) for t in self.settings.node_agent_tolerations):
                if toleration not in tolerations:  # the GPU exporter's own may repeat one
                    tolerations.append(toleration)
        # An account of its own: no workload acts as another, or as the namespace's default.
        # Only those that call the API carry its token; for the rest, neither the account nor
        # the pod mounts one.
        account = k8s.core.v1.ServiceAccount(
            f"{w.name}-account", metadata={**meta, "name": w.name},
            automount_service_account_token=None if w.discovery else False, opts=fixed,
        )
        # Its name as the account's output: the pods wait for the account to exist.
        pod_spec["serviceAccountName"] = account.metadata.name
        if w.discovery:
            self._discovery_access(w, account, meta, fixed)
        else:
            pod_spec["automountServiceAccountToken"] = False

        selector = self._pods(w.name)["matchLabels"]
        self._network_policy(w, {**meta, "name": w.name}, fixed)
        if w.stop_grace_seconds is not None:
            pod_spec["terminationGracePeriodSeconds"] = w.stop_grace_seconds
        if (w.replicas > 1 or w.autoscale is not None) and not w.per_node:
            pod_spec["topologySpreadConstraints"] = spread(selector)
            # Never more than one pod down to an eviction (a node drain, an upgrade).
            k8s.policy.v1.PodDisruptionBudget(
                f"{w.name}-disruption-budget",
                metadata={**meta, "name": w.name},
                spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}},
                opts=fixed,
            )
        pod_labels = dict(labels)
        if w.role is not None:
            pod_labels["app.kubernetes.io/component"] = w.role
        for peers in w.peers:
            pod_labels[f"{PEERS}{peers.service}"] = "true"
            self._peers_service(peers, meta, fixed)
        annotations = {CONFIG_HASH: w.config_hash()}
        if w.unrestricted_because is not None:
            annotations[ROOT_BECAUSE] = w.unrestricted_because
        if w.host_access():
            annotations[HOST_ACCESS_BECAUSE] = w.host_access_because
        template = {"metadata": {"labels": pod_labels, "annotations": annotations}, "spec": pod_spec}
        named = {**meta, "name": w.name}
        if w.per_node:
            k8s.apps.v1.DaemonSet(
                w.name,
                metadata=named,
                spec={"selector": {"matchLabels": selector}, "template": template},
                opts=fixed,
            )
            return
        if self._stateful(w):
            claim = {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": w.data.size}},
                },
            }
            if self.settings.storage_class:
                claim["spec"]["storageClassName"] = self.settings.storage_class
            k8s.apps.v1.StatefulSet(
                w.name,
                metadata=named,
                spec={
                    "serviceName": w.name,
                    "replicas": w.replicas,
                    # Replicas start together: an HA pair does not wait on itself.
                    "podManagementPolicy": "Parallel",
                    "selector": {"matchLabels": selector},
                    "template": template,
                    "volumeClaimTemplates": [claim],
                    # Claims outlive their StatefulSet: deleting or scaling it keeps the data.
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                },
                opts=pulumi.ResourceOptions.merge(fixed, self.data_options),
            )
        else:
            spec = {"selector": {"matchLabels": selector}, "template": template}
            if w.autoscale is None:
                spec["replicas"] = w.replicas
            # Autoscaled: the replica count is the autoscaler's alone. The Deployment leaves it
            # unset, so a `pulumi up` never resets what the autoscaler chose.
            deployment = k8s.apps.v1.Deployment(w.name, metadata=named, spec=spec, opts=fixed)
            if w.autoscale is not None:
                self._autoscaler(w, named, deployment, fixed)
        service_spec: dict = {
            "selector": selector,
            "ports": [{"name": p.name, "port": p.container_port, "targetPort": p.name} for p in w.ports],
        }
        if self._stateful(w):
            # Headless: every replica gets its own DNS name, even before it is ready, so
            # clustered peers can find each other and Prometheus can list each replica.
            service_spec["clusterIP"] = "None"
            service_spec["publishNotReadyAddresses"] = True
        k8s.core.v1.Service(w.name, metadata=named, spec=service_spec, opts=fixed)
        if w.ingress is not None:
            self._ingress(w, named, fixed)

    def _autoscaler(self, w: Workload, named: dict, deployment, fixed: pulumi.ResourceOptions) -> None:
        a = w.autoscale
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{w.name}-autoscaler",
            metadata=named,
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.metadata.name},
                "minReplicas": a.min_replicas,
                "maxReplicas": a.max_replicas,
                "metrics": [{"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": a.cpu_utilization}}}],
            },
            opts=fixed,
        )

    def _peers_service(self, peers: Peers, meta: dict, fixed: pulumi.ResourceOptions) -> None:
        """A headless Service over the pods that share it, made with the first of them."""
        if peers in self._peers:
            return
        if any(p.service == peers.service for p in self._peers):
            raise ValueError(f"{peers.service}: every workload that shares it names the same port and readiness")
        self._peers.add(peers)
        k8s.core.v1.Service(
            f"{peers.service}-peers",
            metadata={**meta, "name": peers.service, "labels": self._labels(peers.service)},
            spec={
                "clusterIP": "None",
                "publishNotReadyAddresses": not peers.only_ready,
                "selector": {f"{PEERS}{peers.service}": "true", "app.kubernetes.io/instance": self.environment},
                "ports": [{"name": "peers", "port": peers.port, "targetPort": peers.port, "protocol": "TCP"}],
            },
            opts=fixed,
        )

    def _pods(self, name: str) -> dict:
        return {"matchLabels": {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": self.environment}}

    def _network_policy(self, w: Workload, named: dict, fixed: pulumi.ResourceOptions) -> None:
        """Admit on each port exactly the workloads that call it (Port.clients), Prometheus on the
        metrics port, and the ingress controller on an Ingress's port. The node (kubelet probes)
        is always admitted by Kubernetes. A port with no client stays closed."""
        if w.host_network:
            # A pod on the node's network is not subject to NetworkPolicies.
            return
        rules = []
        # A pod of the stack runs in either of its namespaces (the node agents in theirs).
        stack = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                       "values": [self.namespace, self.agents_namespace]}]}
        for p in w.ports:
            clients = set(p.clients) | ({PROMETHEUS} if p.name == w.metrics_port else set())
            ports = [{"protocol": "TCP", "port": p.container_port}]
            if p.udp:
                ports.append({"protocol": "UDP", "port": p.container_port})
            if ANYONE in clients:
                rules.append({"ports": ports})  # no `from`: every source
                continue
            sources = [{"namespaceSelector": stack, "podSelector": self._pods(name)} for name in sorted(clients)]
            if p.outside is not None:
                sources += _outside_sources(p.outside)
            if w.ingress is not None and w.ingress.port == p.name:
                sources.append({"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": w.ingress.controller_namespace}}})
            if sources:
                rules.append({"from": sources, "ports": ports})
        k8s.networking.v1.NetworkPolicy(
            f"{w.name}-network-policy",
            metadata=named,
            spec={"podSelector": self._pods(w.name), "policyTypes": ["Ingress", "Egress"], "ingress": rules,
                  "egress": self._egress(w, stack)},
            opts=fixed,
        )

    def _egress(self, w: Workload, stack: dict) -> list[dict]:
        """Where the workload may connect: the cluster's DNS; any pod of the stack (each admits only
        its own callers, so this opens no port the callee does not); the API server, for a
        workload that reads it; and what its Workload.egress names, at any address."""
        dns = self.settings.coredns
        rules: list[dict] = [
            {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": dns.namespace}},
                     "podSelector": {"matchLabels": dict(dns.pod_labels)}}],
             "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
            {"to": [{"namespaceSelector": stack,
                     "podSelector": {"matchLabels": {"app.kubernetes.io/instance": self.environment}}}]},
        ]
        # Addresses a policy cannot name in advance: the API server's, the nodes', and those
        # outside the cluster; pods anywhere in the cluster too (a database in another namespace).
        anywhere = [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}, {"namespaceSelector": {}}]
        reaches = list(w.egress)
        if w.discovery:
            # The API server, at its endpoints' addresses (443 on most clusters, 6443 on kubeadm's).
            reaches.insert(0, Egress("the Kubernetes API", (443, 6443)))
        for reach in reaches:
            # TCP alone: every port of it where the workload names none.
            ports = [{"protocol": "TCP", "port": port} for port in sorted(set(reach.ports))] or [{"protocol": "TCP"}]
            rules.append({"to": anywhere, "ports": ports})
        return rules

    def _ingress(self, w: Workload, named: dict, fixed: pulumi.ResourceOptions) -> None:
        i = w.ingress
        spec: dict = {
            "tls": [{"hosts": [i.host], "secretName": i.tls_secret}],
            "rules": [{"host": i.host, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": w.name, "port": {"name": i.port}}},
            }]}}],
        }
        if i.class_name:
            spec["ingressClassName"] = i.class_name
        metadata = {**named, "annotations": dict(sorted(i.annotations.items()))} if i.annotations else named
        k8s.networking.v1.Ingress(f"{w.name}-ingress", metadata=metadata, spec=spec, opts=fixed)

    def _discovery_access(self, w, account, meta, fixed) -> None:
        # Cluster-wide objects carry the namespace in their name: one cluster, many stacks.
        cluster_name = f"{self.namespace}-{w.name}"
        role = k8s.rbac.v1.ClusterRole(
            f"{w.name}-discovery",
            metadata={"name": cluster_name, "labels": meta["labels"]},
            # Exactly what the workload reads, nothing it might want later.
            rules=[_rule(read) for read in w.discovery],
            opts=fixed,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{w.name}-discovery",
            metadata={"name": cluster_name, "labels": meta["labels"]},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role.metadata.name},
            subjects=[{"kind": "ServiceAccount", "name": account.metadata.name, "namespace": self.namespace_of(w)}],
            opts=fixed,
        )


def spread(selector: dict[str, str]) -> list[dict]:
    """A workload's pods spread evenly over nodes, which the scheduler enforces, so that losing
    one node loses at most its share of them; and over zones where the cluster has them, as far
    as it can. A cordoned or tainted node counts for nothing (nodeTaintsPolicy Honor), so a drain
    can move its pods onto the others."""
    def over(key: str, when: str) -> dict:
        return {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": when,
                "labelSelector": {"matchLabels": selector}, "nodeTaintsPolicy": "Honor"}
    return [over("kubernetes.io/hostname", "DoNotSchedule"), over("topology.kubernetes.io/zone", "ScheduleAnyway")]


def _outside_sources(outside: Sources) -> list[dict]:
    """Peers of an ingress rule for callers outside the stack."""
    peers: list[dict] = []
    if outside.namespaces is None:
        peers.append({"namespaceSelector": {}})  # every pod of the cluster
    elif outside.namespaces:
        peers.append({"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(outside.namespaces)}]}})
    return peers + [{"ipBlock": {"cidr": cidr}} for cidr in outside.cidrs]


def _rule(read: ApiRead) -> dict:
    if read.urls:
        return {"nonResourceURLs": list(read.urls), "verbs": list(read.verbs)}
    return {"apiGroups": [read.group], "resources": list(read.resources), "verbs": list(read.verbs)}
