"""NodeMounts: the CephFS share mounted at one path on every node, over SSH.

One `remote.Command` per node, none depending on another, so the engine runs them all
at once. The create step is `scripts/mount-cephfs.sh` (idempotent, key on stdin); the
delete step is `scripts/unmount-cephfs.sh`, which never touches the data. A change of
what is mounted (the path on the share, the monitors as a set, the cephx user, the mount
path or the client) replaces the step, deleting the old mount first: the other order
would let the old step's delete remove the new mount's key and fstab line. The same
monitors in another order only update it: the create script runs again and rewrites
the fstab line in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_command as command

from components.config import NodeHost, NodesSettings
from components.node_scripts import MountSettings, mount_triggers, remote_command

# Give up on an unreachable node after about a minute, rather than the provider's default
# of ten 15-second attempts.
DIAL_ERROR_LIMIT = 4
PER_DIAL_TIMEOUT = 15


@dataclass
class NodeMountsArgs:
    nodes: NodesSettings
    """Mount path, SSH user and bastion, and the hosts."""
    export_path: pulumi.Input[str]
    """The share's export location, mon:port[,...]:/path."""
    ceph_user: pulumi.Input[str]
    """The cephx user of the share's access rule."""
    access_key: pulumi.Input[str]
    """The cephx key (secret): sent on stdin, never on a command line."""
    ssh_private_key: pulumi.Input[str]
    """Private key for the nodes and the bastion (secret)."""
    enforce_capacity: bool = False
    """storage.enforceCapacity: each node's step checks that the client may set quotas."""


class NodeMounts(pulumi.ComponentResource):
    commands: dict[str, command.remote.Command]
    nodes: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: NodeMountsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jupyterhub-platform:storage:NodeMounts", name, None, opts)
        nodes = args.nodes
        proxy = None
        if nodes.bastion is not None:
            proxy = command.remote.ProxyConnectionArgs(
                host=nodes.bastion.host,
                port=nodes.bastion.port,
                user=nodes.bastion.user or nodes.ssh_user,
                private_key=args.ssh_private_key,
                host_key=nodes.bastion.host_key,
                dial_error_limit=DIAL_ERROR_LIMIT,
                per_dial_timeout=PER_DIAL_TIMEOUT,
            )

        # One Output for what every node's scripts need, shared by all the nodes.
        share = pulumi.Output.all(args.export_path, args.ceph_user)
        self.commands = {}
        for host in nodes.hosts:
            self.commands[host.name] = self._mount(name, args, host, proxy, share)

        self.nodes = pulumi.Output.from_input([h.name for h in nodes.hosts])
        self.register_outputs({"nodes": self.nodes})

    def _mount(
        self,
        name: str,
        args: NodeMountsArgs,
        host: NodeHost,
        proxy: command.remote.ProxyConnectionArgs | None,
        share: pulumi.Output[list[Any]],
    ) -> command.remote.Command:
        nodes = args.nodes

        resource_name = f"{name}-{host.name}"
        # Unique per stack and step: a renamed host is a new step with a new owner, and
        # the old step's delete then finds the mount owned by another and leaves it.
        owner = f"{pulumi.get_project()}/{pulumi.get_stack()}/{resource_name}"

        def settings(values: list[Any]) -> MountSettings:
            export_path, ceph_user = values
            return MountSettings(
                node_name=host.name,
                export_path=export_path,
                mount_path=nodes.mount_path,
                ceph_user=ceph_user,
                mount_client=nodes.mount_client.value,
                install_packages=nodes.install_packages,
                owner=owner,
                enforce_capacity=args.enforce_capacity,
            )

        return command.remote.Command(
            resource_name,
            connection=command.remote.ConnectionArgs(
                host=host.address,
                port=host.port or nodes.ssh_port,
                user=nodes.ssh_user,
                private_key=args.ssh_private_key,
                host_key=host.host_key,
                proxy=proxy,
                dial_error_limit=DIAL_ERROR_LIMIT,
                per_dial_timeout=PER_DIAL_TIMEOUT,
            ),
            create=share.apply(
                lambda v: remote_command(settings(v).create_script(), nodes.ssh_user)
            ),
            delete=share.apply(
                lambda v: remote_command(settings(v).delete_script(), nodes.ssh_user)
            ),
            stdin=args.access_key,
            triggers=share.apply(
                lambda v: mount_triggers(v[0], v[1], nodes.mount_path, nodes.mount_client.value)
            ),
            # Only the scripts' own output is logged; they never print the key, and stdin
            # is not a logged stream.
            logging=command.remote.Logging.STDOUT_AND_STDERR,
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
