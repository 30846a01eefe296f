"""SharedStorageClass: a dedicated local-path-provisioner whose volumes live on the share.

The provisioner is rancher/local-path-provisioner, pinned, declared here as typed
Kubernetes objects instead of applied from a URL or a moving branch. It runs in its own
namespace under its own provisioner, class and cluster-object names: k3s ships a
local-path provisioner of its own under the upstream names and rewrites those objects
whenever it restarts, so sharing a name with it means fighting k3s.

`sharedFileSystemPath` makes every volume a directory on the one shared mount, reachable
from every node, so volumes carry no node affinity (the runbook's `nodePathMap` on a
shared mount pinned each user's volume to the node that first created it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.config import (
    CHART_POD_IDS,
    ConfigError,
    HubSettings,
    StorageSettings,
    is_pod_id,
    pod_id,
)
from components.node_scripts import VolumeOwners, volume_script

PROVISIONER_IMAGE = "docker.io/rancher/local-path-provisioner:v0.0.37"
CONFIG_MOUNT = "/etc/config/"
CAPACITY_ANNOTATION = "jupyterhub-platform/capacity-enforced"
HEALTH_PORT = 8080


def provisioner_name(class_name: str) -> str:
    """The provisioner this class names; never k3s's `rancher.io/local-path`."""
    return f"jupyterhub-platform/{class_name}"


def volume_owners(hub: HubSettings) -> VolumeOwners:
    """The ids the hub's pods run as: the chart's defaults, or what hub.extraValues sets."""
    ids = {}
    for path in CHART_POD_IDS:
        value = pod_id(hub.extra_values, path)
        # The config model refuses these already; kept for a HubSettings built otherwise.
        if not is_pod_id(value):
            key = ".".join(path)
            raise ConfigError(
                f"hub.extraValues.{key}: {value!r} is not a numeric uid/gid (0 to 2147483647)"
            )
        ids[path[-1]] = value
    return VolumeOwners(
        user_uid=ids["uid"],
        user_gid=ids["fsGid"],
        hub_uid=ids["runAsUser"],
        hub_gid=ids["fsGroup"],
        hub_namespace=hub.namespace,
    )


def provisioner_config(
    shared_path: str, owners: VolumeOwners, storage: StorageSettings
) -> dict[str, str]:
    """The provisioner's ConfigMap data: config.json, setup, teardown and helperPod.yaml."""
    helper_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": "system-node-critical",
            "tolerations": [{"key": "node.kubernetes.io/disk-pressure", "operator": "Exists"}],
            "containers": [
                {
                    "name": "helper-pod",
                    "image": storage.helper_image,
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
        },
    }
    return {
        # nodePathMap must be empty when sharedFileSystemPath is set: the two exclude
        # each other.
        "config.json": json.dumps(
            {"sharedFileSystemPath": shared_path, "nodePathMap": []}, indent=2
        ),
        "setup": volume_script(
            "volume-setup.sh", shared_path, owners, enforce_capacity=storage.enforce_capacity
        ),
        "teardown": volume_script("volume-teardown.sh", shared_path),
        "helperPod.yaml": yaml.safe_dump(helper_pod, sort_keys=False),
    }


@dataclass
class SharedStorageClassArgs:
    storage: StorageSettings
    """Class name, reclaim policy and the provisioner's namespace."""
    shared_path: str
    """Where every node mounts the share (nodes.mountPath)."""
    volume_owners: VolumeOwners
    """The uid and group that own a new volume: the pods' (see `volume_owners`)."""
    mounts: Sequence[pulumi.Resource] = field(default_factory=list)
    """The node mounts: no volume may be made before the share is mounted everywhere."""


class SharedStorageClass(pulumi.ComponentResource):
    class_name: pulumi.Output[str]
    provisioner: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: SharedStorageClassArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("jupyterhub-platform:storage:SharedStorageClass", name, None, opts)
        storage = args.storage
        child = pulumi.ResourceOptions(parent=self)
        namespace_name = storage.namespace
        base = f"{storage.class_name}-provisioner"
        # Cluster-scoped names carry the project's prefix so they never meet k3s's
        # local-path-provisioner-role / -bind.
        cluster_name = f"jupyterhub-platform-{base}"
        provisioner = provisioner_name(storage.class_name)
        labels = {
            "app.kubernetes.io/name": "local-path-provisioner",
            "app.kubernetes.io/instance": base,
            "app.kubernetes.io/managed-by": "jupyterhub-platform",
        }

        def meta(object_name: str, namespaced: bool = True) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=object_name,
                namespace=namespace.metadata.name if namespaced else None,
                labels=labels,
            )

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=namespace_name, labels=labels),
            opts=child,
        )
        account = k8s.core.v1.ServiceAccount(f"{name}-account", metadata=meta(base), opts=child)
        role = k8s.rbac.v1.Role(
            f"{name}-role",
            metadata=meta(base),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""],
                    resources=["pods"],
                    verbs=["get", "list", "watch", "create", "patch", "update", "delete"],
                )
            ],
            opts=child,
        )
        cluster_role = k8s.rbac.v1.ClusterRole(
            f"{name}-cluster-role",
            metadata=meta(cluster_name, namespaced=False),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""],
                    resources=["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"],
                    verbs=["get", "list", "watch"],
                ),
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""],
                    resources=["persistentvolumes"],
                    verbs=["get", "list", "watch", "create", "patch", "update", "delete"],
                ),
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""], resources=["events"], verbs=["create", "patch"]
                ),
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=["storage.k8s.io"],
                    resources=["storageclasses"],
                    verbs=["get", "list", "watch"],
                ),
            ],
            opts=child,
        )
        subject = k8s.rbac.v1.SubjectArgs(
            kind="ServiceAccount", name=account.metadata.name, namespace=namespace.metadata.name
        )
        role_binding = k8s.rbac.v1.RoleBinding(
            f"{name}-role-binding",
            metadata=meta(base),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="Role", name=role.metadata.name
            ),
            subjects=[subject],
            opts=child,
        )
        cluster_role_binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-cluster-role-binding",
            metadata=meta(cluster_name, namespaced=False),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io",
                kind="ClusterRole",
                name=cluster_role.metadata.name,
            ),
            subjects=[subject],
            opts=child,
        )
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=meta(f"{base}-config"),
            data=provisioner_config(args.shared_path, args.volume_owners, storage),
            opts=child,
        )
        probe = k8s.core.v1.ProbeArgs
        deployment = k8s.apps.v1.Deployment(
            f"{name}-provisioner",
            metadata=meta(base),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=account.metadata.name,
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="local-path-provisioner",
                                image=PROVISIONER_IMAGE,
                                image_pull_policy="IfNotPresent",
                                command=[
                                    "local-path-provisioner",
                                    "--debug",
                                    "start",
                                    "--config",
                                    f"{CONFIG_MOUNT}config.json",
                                    "--provisioner-name",
                                    provisioner,
                                    "--service-account-name",
                                    base,
                                    "--configmap-name",
                                    f"{base}-config",
                                    "--helper-image",
                                    storage.helper_image,
                                ],
                                env=[
                                    k8s.core.v1.EnvVarArgs(
                                        name="POD_NAMESPACE",
                                        value_from=k8s.core.v1.EnvVarSourceArgs(
                                            field_ref=k8s.core.v1.ObjectFieldSelectorArgs(
                                                field_path="metadata.namespace"
                                            )
                                        ),
                                    ),
                                    k8s.core.v1.EnvVarArgs(
                                        name="CONFIG_MOUNT_PATH", value=CONFIG_MOUNT
                                    ),
                                ],
                                ports=[
                                    k8s.core.v1.ContainerPortArgs(
                                        name="health", container_port=HEALTH_PORT
                                    )
                                ],
                                liveness_probe=probe(
                                    http_get=k8s.core.v1.HTTPGetActionArgs(
                                        path="/health", port="health"
                                    ),
                                    period_seconds=10,
                                ),
                                readiness_probe=probe(
                                    http_get=k8s.core.v1.HTTPGetActionArgs(
                                        path="/ready", port="health"
                                    ),
                                    period_seconds=10,
                                ),
                                volume_mounts=[
                                    k8s.core.v1.VolumeMountArgs(
                                        name="config-volume", mount_path=CONFIG_MOUNT
                                    )
                                ],
                            )
                        ],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="config-volume",
                                config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                                    name=config_map.metadata.name
                                ),
                            )
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[role_binding, cluster_role_binding, *args.mounts],
            ),
        )
        self.storage_class = k8s.storage.v1.StorageClass(
            f"{name}-class",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=storage.class_name,
                labels=labels,
                # Read by the capacity-enforced policy: whether claims' sizes are quotas.
                annotations={CAPACITY_ANNOTATION: str(storage.enforce_capacity).lower()},
            ),
            provisioner=provisioner,
            reclaim_policy=storage.reclaim_policy.value,
            # A shared path gives volumes no node affinity, so binding need not wait
            # for a pod to be scheduled.
            volume_binding_mode="Immediate",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment, *args.mounts]),
        )

        self.class_name = self.storage_class.metadata.name
        self.provisioner = pulumi.Output.from_input(provisioner)
        self.register_outputs({"class_name": self.class_name, "provisioner": self.provisioner})
