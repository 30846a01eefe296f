"""The program's shape with nothing of ours around it: the SDK's own cost, for the benchmark.

    python -m tools.bare_sdk NODES [--tuned-gc]

Registers the resources the program registers for a site with NODES nodes (the share and
its rule, one remote command per node with a command line and stdin of the same size, the
provisioner's objects, the storage class, the hub's namespace, token, settings and
release) as plain resources under the SDK's stock mocks: no config model, no components,
no script rendering, no recording, no plan. What this costs per node is what any program
registering these resources pays; ours can only add to it.
"""

from __future__ import annotations

import sys
from typing import Any, cast

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import pulumi_openstack as openstack
import pulumi_random as random
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

# About the size of a rendered mount script, so command lines weigh what ours weigh.
SCRIPT = "#" * 7000


class EchoMocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


def program(nodes: int) -> None:
    share = openstack.sharedfilesystem.Share(
        "share",
        share_proto="CEPHFS",
        share_type="cephfs",
        size=20480,
        opts=pulumi.ResourceOptions(protect=True, retain_on_delete=True),
    )
    access = openstack.sharedfilesystem.ShareAccess(
        "access", share_id=share.id, access_type="cephx", access_to="user", access_level="rw"
    )
    key = pulumi.Output.secret("private-key")
    inputs = pulumi.Output.all(share.id, access.access_to)
    mounts = [
        command.remote.Command(
            f"mount-{i}",
            connection=command.remote.ConnectionArgs(
                host=f"10.0.{i // 256}.{i % 256}",
                port=22,
                user="ubuntu",
                private_key=key,
                host_key=None,
                proxy=None,
                dial_error_limit=4,
                per_dial_timeout=15,
            ),
            create=inputs.apply(lambda _: SCRIPT),
            delete=inputs.apply(lambda _: SCRIPT[:3000]),
            stdin=access.access_key,
            triggers=[share.id, access.access_to, "/mnt/shared", "kernel"],
            logging=command.remote.Logging.STDOUT_AND_STDERR,
            opts=pulumi.ResourceOptions(delete_before_replace=True),
        )
        for i in range(nodes)
    ]
    # Plain dicts, as a bare script would write them (typed as Any for the SDK's overloads).
    meta: Any = {"name": "provisioner", "namespace": "storage"}
    k8s.core.v1.Namespace("storage-ns", metadata=cast(Any, {"name": "storage"}))
    k8s.core.v1.ServiceAccount("storage-sa", metadata=meta)
    rules: Any = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    k8s.rbac.v1.Role("storage-role", metadata=meta, rules=rules)
    k8s.rbac.v1.ClusterRole("storage-cr", metadata={"name": "provisioner"}, rules=rules)
    ref: Any = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "provisioner"}
    subjects: Any = [{"kind": "ServiceAccount", "name": "provisioner", "namespace": "storage"}]
    k8s.rbac.v1.RoleBinding("storage-rb", metadata=meta, role_ref=ref, subjects=subjects)
    k8s.rbac.v1.ClusterRoleBinding(
        "storage-crb", metadata={"name": "provisioner"}, role_ref=ref, subjects=subjects
    )
    k8s.core.v1.ConfigMap("storage-cm", metadata=meta, data={"config.json": "{}"})
    deployment = k8s.apps.v1.Deployment(
        "storage-deploy",
        metadata=meta,
        spec=cast(
            Any,
            {
                "selector": {"matchLabels": {"app": "p"}},
                "template": {
                    "metadata": {"labels": {"app": "p"}},
                    "spec": {
                        "containers": [
                            {"name": "p", "image": "rancher/local-path-provisioner:v0.0.37"}
                        ]
                    },
                },
            },
        ),
        opts=pulumi.ResourceOptions(depends_on=mounts),
    )
    storage_class = k8s.storage.v1.StorageClass(
        "storage-class",
        metadata={"name": "cephfs-shared"},
        provisioner="x/y",
        opts=pulumi.ResourceOptions(depends_on=[deployment, *mounts]),
    )
    namespace = k8s.core.v1.Namespace("hub-ns", metadata={"name": "hub"})
    token = random.RandomBytes("hub-token", length=32)
    k8s.core.v1.ConfigMap(
        "hub-settings",
        metadata={"name": "settings", "namespace": "hub"},
        data={"values.json": storage_class.metadata.apply(lambda _: "{}")},
    )
    k8s.helm.v3.Release(
        "hub-release",
        chart="jupyterhub",
        version="3.1.0",
        namespace=namespace.metadata.name,
        values=pulumi.Output.secret({"proxy": {"secretToken": token.hex}}),
        opts=pulumi.ResourceOptions(depends_on=[storage_class]),
    )


def main() -> int:
    nodes = int(sys.argv[1])
    if "--tuned-gc" in sys.argv[2:]:
        # The plan's garbage-collector settings, for a like-for-like comparison.
        from sitectl import gc_tuning

        gc_tuning.tune(gc_tuning.SDK_MODULES)
    pulumi.runtime.set_mocks(EchoMocks(), project="bare", stack="bench")
    _sync_await(run_pulumi_func(lambda: program(nodes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
