"""CephFSShare: the Manila CephFS share that holds every user's home, and its cephx rule.

The share is protected and retained on delete: neither `pulumi destroy`, nor a rename,
nor a replacement can delete it (see docs/tearing-down.md). A site that already has its
share adopts it by id instead of creating a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_openstack as openstack

from components.config import ShareSettings
from components.node_scripts import check_export_path


def preferred_export_path(locations: Sequence[Any] | None) -> str:
    """The export location Manila marks preferred, else the first one."""
    if not locations:
        raise ValueError("the share has no export location; is the share available?")

    def is_preferred(location: Any) -> bool:
        return str(location.preferred).lower() == "true"

    chosen = next((loc for loc in locations if is_preferred(loc)), locations[0])
    return check_export_path(chosen.path)


@dataclass
class CephFSShareArgs:
    share: ShareSettings
    """Name, share type, size, cephx user and, to adopt one, the existing share's id."""


class CephFSShare(pulumi.ComponentResource):
    export_path: pulumi.Output[str]
    ceph_user: pulumi.Output[str]
    access_key: pulumi.Output[str]

    def __init__(
        self, name: str, args: CephFSShareArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jupyterhub-platform:storage:CephFSShare", name, None, opts)
        settings = args.share
        self.share = openstack.sharedfilesystem.Share(
            f"{name}-share",
            name=settings.name,
            share_proto="CEPHFS",
            share_type=settings.share_type,
            size=settings.size_gb,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=True,
                retain_on_delete=True,
                import_=settings.existing_id,
            ),
        )
        self.access = openstack.sharedfilesystem.ShareAccess(
            f"{name}-access",
            share_id=self.share.id,
            access_type="cephx",
            access_to=settings.ceph_user,
            access_level="rw",
            opts=pulumi.ResourceOptions(
                parent=self,
                # The provider's import id for an access rule is <share id>/<rule id>.
                import_=(
                    f"{settings.existing_id}/{settings.access_rule_id}"
                    if settings.access_rule_id
                    else None
                ),
            ),
        )

        self.export_path = self.share.export_locations.apply(preferred_export_path)
        self.ceph_user = self.access.access_to
        # The provider marks accessKey secret; say so here too, so the component's output
        # stays secret whatever the provider version does.
        self.access_key = pulumi.Output.secret(self.access.access_key)
        self.register_outputs(
            {
                "export_path": self.export_path,
                "ceph_user": self.ceph_user,
                "access_key": self.access_key,
            }
        )
