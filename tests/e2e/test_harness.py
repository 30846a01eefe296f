"""Smoke tests of the end-to-end harness itself, before any node-mount script uses it.

They mount a Manila-like share by hand with ceph-fuse over real SSH on two test hosts and
check what the mount scripts' tests will rely on: data written on one host is seen on the
other and on the cluster, mounts outlive the SSH session that made them, each host has its
own /etc (fstab, ceph) apart from the machine's, a cephx user is held to its path, a mount
against monitors nobody answers on can be bounded in time, and nothing is left behind.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from .ceph_cluster import CephCluster, machine_fuse_mounts
from .ssh_host import Bridge, SshHost

pytestmark = pytest.mark.e2e

MOUNTPOINT = "/mnt/share"


def _configure_client(host: SshHost, monitors: str, client: str, key: str) -> None:
    """Write the minimal ceph.conf and keyring a node needs, as a mount script would."""
    host.run(
        f"mkdir -p /etc/ceph && printf '[global]\\nmon host = {monitors}\\n' > /etc/ceph/ceph.conf",
        check=True,
    )
    # The key travels on stdin, never on a command line that `ps` would show.
    host.run(
        f"umask 077 && cat > /etc/ceph/ceph.client.{client}.keyring",
        stdin=f"[client.{client}]\n\tkey = {key}\n".encode(),
        check=True,
    )


def _share(cluster: CephCluster) -> tuple[str, str, str]:
    """A subvolume and a cephx user for it, as a Manila share plus access rule gives."""
    suffix = uuid.uuid4().hex[:8]
    path = cluster.create_subvolume(f"share-{suffix}")
    client = f"manila-{suffix}"
    return path, client, cluster.authorize(client, path)


def test_cluster_is_healthy(ceph_cluster: CephCluster) -> None:
    health = ceph_cluster.ceph("health", "detail")
    assert health["status"] == "HEALTH_OK", health["checks"]


def test_two_hosts_share_a_subvolume(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost]
) -> None:
    path, client, key = _share(ceph_cluster)
    assert path.startswith("/volumes/_nogroup/share-")
    assert ceph_cluster.caps(client) == {
        "mds": f"allow rw fsname={ceph_cluster.fs_name} path={path}",
        "mon": f"allow r fsname={ceph_cluster.fs_name}",
        "osd": f"allow rw tag cephfs data={ceph_cluster.fs_name}",
    }

    hosts = [test_host(), test_host()]
    # Manila's export path names the msgr1 port; the second host proves msgr2 works too.
    for host, monitors in zip(
        hosts, (ceph_cluster.monitors, ceph_cluster.monitors_v2), strict=True
    ):
        _configure_client(host, monitors, client, key)
        result = host.run(
            f"mkdir -p {MOUNTPOINT} && ceph-fuse -n client.{client} -r {path} {MOUNTPOINT}",
            timeout=60,
        )
        assert result.returncode == 0, result.stderr

    first, second = hosts
    # Each run() is a separate SSH session: the mount made by an earlier one is still there.
    listed = first.run(f"findmnt -n -o FSTYPE,SOURCE {MOUNTPOINT}", check=True).stdout
    assert listed.split() == ["fuse.ceph-fuse", "ceph-fuse"]
    assert first.fuse_mounts() == [MOUNTPOINT]

    first.run(f"echo 'hello from {first.name}' > {MOUNTPOINT}/hello.txt", check=True)
    read = second.run(f"cat {MOUNTPOINT}/hello.txt", check=True).stdout
    assert read == f"hello from {first.name}\n"
    assert ceph_cluster.read_file(f"{path}/hello.txt") == f"hello from {first.name}\n".encode()

    # The mounts live in the hosts' namespaces only, never in the machine's.
    assert MOUNTPOINT not in machine_fuse_mounts()

    first.run(f"umount {MOUNTPOINT}", check=True)
    assert first.fuse_mounts() == []
    # The second host keeps its mount: the fixture's teardown must unmount it and end its
    # ceph-fuse before the cluster goes away.


def test_host_has_its_own_etc(test_host: Callable[[], SshHost]) -> None:
    machine_fstab = Path("/etc/fstab").read_bytes()
    first, second = test_host(), test_host()

    # sed -i renames a temporary file over /etc/fstab, which a bind-mounted file would
    # refuse (EBUSY); mount scripts edit fstab that way.
    first.run(
        "echo 'none /mnt/x fuse.ceph ceph.id=x 0 0' >> /etc/fstab && "
        "sed -i 's|/mnt/x|/mnt/y|' /etc/fstab",
        check=True,
    )
    assert "/mnt/y" in first.run("cat /etc/fstab", check=True).stdout
    assert "/mnt/y" not in second.run("cat /etc/fstab", check=True).stdout
    assert Path("/etc/fstab").read_bytes() == machine_fstab

    first.run("echo '[global]' > /etc/ceph/ceph.conf", check=True)
    assert second.run("ls -A /etc/ceph", check=True).stdout == ""
    assert not Path("/etc/ceph/ceph.conf").exists()

    assert first.run("hostname", check=True).stdout.strip() == first.name
    # Stock sshd drops environment sent by the client, as on a Debian or Ubuntu node.
    env = subprocess.run(
        first.ssh_command("echo ${JHP_PROBE:-unset}", options=("SetEnv=JHP_PROBE=1",)),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert env.stdout.strip() == "unset"


def test_restricted_client_cannot_mount_fs_root(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost]
) -> None:
    _, client, key = _share(ceph_cluster)
    host = test_host()
    _configure_client(host, ceph_cluster.monitors, client, key)
    for root in ("/", "/volumes", "/volumes/_nogroup"):
        result = host.run(
            f"mkdir -p /mnt/root && ceph-fuse -n client.{client} -r {root} /mnt/root", timeout=60
        )
        assert result.returncode != 0
        assert "Operation not permitted" in result.stderr, result.stderr
    assert host.fuse_mounts() == []


@pytest.mark.parametrize("unreachable", ["silent-address", "refused-port"])
def test_unreachable_monitor_mount_is_bounded(
    ceph_cluster: CephCluster,
    e2e_bridge: Bridge,
    test_host: Callable[[], SshHost],
    unreachable: str,
) -> None:
    if unreachable == "silent-address":
        # No host holds this address: connection attempts get no answer at all.
        monitor = f"{e2e_bridge.network[250]}:6789"
    else:
        # The cluster's own address, a port nobody listens on: connections are refused.
        monitor = f"{ceph_cluster.address}:6790"
    path, client, key = _share(ceph_cluster)
    host = test_host()
    _configure_client(host, monitor, client, key)
    started = time.monotonic()
    result = host.run(
        f"mkdir -p {MOUNTPOINT} && ceph-fuse -n client.{client} "
        f"--client_mount_timeout=3 -r {path} {MOUNTPOINT}",
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert "failed to fetch mon config" in result.stderr, result.stderr
    assert 2.5 < elapsed < 10
    assert host.fuse_mounts() == []
