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
            },
        )


VOLUME_ACTIONS = {"volume-setup.sh": "create", "volume-teardown.sh": "delete"}


def volume_script(name: str, shared_path: str) -> str:
    """The provisioner's setup or teardown script: the shared guard, then the action."""
    guarded = render(
        "volume-guard.sh", {"SHARED_PATH": shared_path, "ACTION": VOLUME_ACTIONS[name]}
    )
    return guarded + _script(name)[1]
