"""Render the node scripts in `components/scripts/` into the commands that run them.

A script's settings become shell assignments, quoted with `shlex.quote`, placed right
under its shebang; the result is a complete script that can be read, shellchecked and run
as is. The remote command runs that text with `bash -c` (through `sudo -n` for a non-root
SSH user). Values never travel as SSH environment variables: sshd's default `AcceptEnv`
passes only LANG and LC_*, so they would arrive empty.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"

# A monitor starts with a letter or digit (never '-', which mount helpers would read as an
# option, nor '.'); path parts as for the mount path. mount-cephfs.sh checks the same.
_MONITOR = r"([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:]+\]):[0-9]+"
_EXPORT_PATH = re.compile(rf"{_MONITOR}(,{_MONITOR})*:(/[A-Za-z0-9_][A-Za-z0-9._-]*)+")
EXPORT_PATH_MAX = 1024


def check_export_path(value: str) -> str:
    """Manila's export location, as the scripts accept it: mon:port[,mon:port...]:/path."""
    if len(value) > EXPORT_PATH_MAX or _EXPORT_PATH.fullmatch(value) is None:
        raise ValueError(
            f"the share's export location {value!r} is not of the form "
            "mon1:6789,mon2:6789:/volumes/_nogroup/<id>/<id>"
        )
    return value


def mount_triggers(export_path: str, ceph_user: str, mount_path: str, client: str) -> list[str]:
    """What makes a node's mount a different mount, so that a change replaces its step.

    The path on the share, the monitors as a set, the cephx user, the mount path and the
    client. Not the export location as a string: Manila may list the same monitors in
    another order, and replacing every node's step (unmount, mount: a drain of the
    cluster) for that is needless; the update re-runs the create script, which finds the
    share mounted and rewrites the fstab line in place.
    """
    check_export_path(export_path)
    monitors, _, path = export_path.partition(":/")
    return [f"/{path}", ",".join(sorted(set(monitors.split(",")))), ceph_user, mount_path, client]


_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,254}")


def check_owner(value: str) -> str:
    """An owner as the scripts accept it: project/stack/resource-name."""
    if _OWNER.fullmatch(value) is None:
        raise ValueError(f"the mount step's owner {value!r} is not of the form project/stack/name")
    return value


@cache
def _script(name: str) -> tuple[str, str]:
    """The script's shebang line and the rest, read once per process."""
    text = (SCRIPTS_DIR / name).read_text()
    shebang, _, body = text.partition("\n")
    return shebang, body


def render(name: str, settings: dict[str, str]) -> str:
    """The script `name` with `settings` assigned at its head."""
    shebang, body = _script(name)
    lines = [shebang, "# Settings for this run, written by jupyterhub-platform:"]
    lines += [f"{key}={shlex.quote(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n" + body


_RUNNERS = ("bash -c ", "sudo -n bash -c ")


def remote_command(script: str, ssh_user: str) -> str:
    """The command line that runs `script` as root on a node reached as `ssh_user`."""
    runner = _RUNNERS[0] if ssh_user == "root" else _RUNNERS[1]
    return runner + shlex.quote(script)


def script_of(command: str) -> str:
    """The script a `remote_command` line runs (its inverse, without a full shell parse)."""
    for runner in _RUNNERS:
        if command.startswith(runner + "'") and command.endswith("'"):
            return command[len(runner) + 1 : -1].replace("'\"'\"'", "'")
    raise ValueError("not a command line made by remote_command")


@dataclass(frozen=True)
class MountSettings:
    """Everything the mount scripts need for one node, none of it secret."""

    node_name: str
    export_path: str
    mount_path: str
    ceph_user: str
    mount_client: str
    install_packages: bool
    owner: str
    """Who set the mount up: the stack and the step's resource name. The create step
    records it on the node and the delete step acts only on a mount it owns, so a renamed
    step's delete cannot undo what the new step took over."""
    enforce_capacity: bool = False
    """Check, once at deploy, that the client may set CephFS quotas (storage.enforceCapacity)."""

    def create_script(self) -> str:
        return render(
            "mount-cephfs.sh",
            {
                "NODE_NAME": self.node_name,
                "EXPORT_PATH": check_export_path(self.export_path),
                "MOUNT_PATH": self.mount_path,
                "CEPH_USER": self.ceph_user,
                "MOUNT_CLIENT": self.mount_client,
                "INSTALL_PACKAGES": "yes" if self.install_packages else "no",
                "OWNER": check_owner(self.owner),
                "ENFORCE_CAPACITY": "yes" if self.enforce_capacity else "no",
            },
        )

    def check_script(self) -> str:
        """The read-only check `sitectl verify` runs: is the node as the create left it?"""
        return render(
            "check-cephfs.sh",
            {
                "NODE_NAME": self.node_name,
                "EXPORT_PATH": check_export_path(self.export_path),
                "MOUNT_PATH": self.mount_path,
                "CEPH_USER": self.ceph_user,
                "MOUNT_CLIENT": self.mount_client,
            },
        )

    def delete_script(self) -> str:
        return render(
            "unmount-cephfs.sh",
            {
                "NODE_NAME": self.node_name,
                "MOUNT_PATH": self.mount_path,
                "CEPH_USER": self.ceph_user,
                "OWNER": check_owner(self.owner),
            },
        )


VOLUME_ACTIONS = {"volume-setup.sh": "create", "volume-teardown.sh": "delete"}


@dataclass(frozen=True)
class VolumeOwners:
    """Who owns a new volume's directory: the uid and group the pods that use it run as."""

    user_uid: int
    """singleuser.uid: the notebook user."""
    user_gid: int
    """singleuser.fsGid: the group the notebook's files get."""
    hub_uid: int
    """hub.containerSecurityContext.runAsUser: for the hub database's volume."""
    hub_gid: int
    """hub.podSecurityContext.fsGroup."""
    hub_namespace: str
    """The hub's namespace: its database's folder is <pv>_<namespace>_hub-db-dir."""

    def settings(self) -> dict[str, str]:
        return {
            "USER_UID": str(self.user_uid),
            "USER_GID": str(self.user_gid),
            "HUB_UID": str(self.hub_uid),
            "HUB_GID": str(self.hub_gid),
            "HUB_NAMESPACE": self.hub_namespace,
        }


def volume_script(
    name: str,
    shared_path: str,
    owners: VolumeOwners | None = None,
    enforce_capacity: bool = False,
) -> str:
    """The provisioner's setup or teardown script: the shared guard, then the action.
    Setup needs `owners`."""
    settings = {"SHARED_PATH": shared_path, "ACTION": VOLUME_ACTIONS[name]}
    if name == "volume-setup.sh":
        if owners is None:
            raise ValueError("volume-setup.sh needs the volume owners")
        settings.update(owners.settings())
        settings["ENFORCE_CAPACITY"] = "yes" if enforce_capacity else "no"
    return render("volume-guard.sh", settings) + _script(name)[1]
