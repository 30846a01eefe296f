"""Fixtures for the end-to-end tests: a real Ceph cluster and SSH test hosts on a bridge.

The session brings up one bridge and one Ceph cluster listening on the bridge address; each
test asks `test_host()` for as many SSH hosts as it needs, and they are torn down after the
test, before the cluster stops. Missing packages are installed with
tools/install-test-deps.sh; the tests skip only when that is impossible (not root, no
apt-get). Once the packages are there, a cluster or host that fails to start is an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import ceph_cluster as ceph_mod
from . import ssh_host as host_mod
from .ceph_cluster import CephCluster
from .proc_util import pid_alive
from .ssh_host import Bridge, SshHost

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "tools" / "install-test-deps.sh"


# The provisioner's scripts run under busybox, as in its helper pod; quotas need attr's
# setfattr/getfattr (Debian's busybox has no setfattr applet).
VOLUME_BINARIES = ("busybox", "setfattr", "getfattr", "setpriv")


def _missing() -> list[str]:
    binaries = (*ceph_mod.REQUIRED_BINARIES, *host_mod.REQUIRED_BINARIES, *VOLUME_BINARIES)
    return [b for b in binaries if shutil.which(b) is None]


@pytest.fixture(scope="session")
def e2e_requirements() -> None:
    """Skip unless root with the packages present or installable, and FUSE available."""
    if os.geteuid() != 0:
        pytest.skip("e2e tests need root (network namespaces, mounts, sshd)")
    if _missing():
        proc = subprocess.run(
            ["bash", str(INSTALL_SCRIPT), "e2e"],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        still = _missing()
        if still:
            said = (proc.stdout.strip().splitlines() or [""])[-1]
            pytest.skip(
                f"e2e packages missing ({', '.join(still)}) and not installed: {said}"
                f" {proc.stderr.strip()[-500:]}"
            )
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is missing: ceph-fuse cannot mount")


@pytest.fixture(scope="session")
def e2e_bridge(e2e_requirements: None) -> Iterator[Bridge]:
    # A run that was killed leaves its namespaces, bridge and daemons; a surviving monitor
    # would keep the bridge address's ports.
    host_mod.cleanup_stale()
    ceph_mod.cleanup_stale()
    bridge = Bridge().acquire()
    yield bridge
    bridge.release()


@pytest.fixture(scope="session")
def ceph_cluster(e2e_bridge: Bridge) -> Iterator[CephCluster]:
    cluster = CephCluster(e2e_bridge.address)
    cluster.start()
    yield cluster
    cluster.stop()
    leftovers = _leftover_processes()
    assert not leftovers, f"processes left after the cluster stopped: {leftovers}"
    mine = [
        m for m in ceph_mod.machine_fuse_mounts() if f"/{ceph_mod.DIR_PREFIX}{os.getpid()}-" in m
    ]
    assert not mine, f"FUSE mounts left behind: {mine}"


@pytest.fixture
def test_host(e2e_bridge: Bridge) -> Iterator[Callable[[], SshHost]]:
    """Factory: each call starts one more SSH test host; all are removed after the test."""
    hosts: list[SshHost] = []

    def make() -> SshHost:
        host = SshHost(e2e_bridge)
        host.start()
        hosts.append(host)
        return host

    yield make
    pids = [pid for host in hosts for pid in host.pids()]
    for host in reversed(hosts):
        host.stop()
    namespaces = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout.split()
    left = [h.name for h in hosts if h.name in namespaces]
    assert not left, f"network namespaces left behind: {left}"
    alive = [pid for pid in pids if pid_alive(pid)]
    assert not alive, f"test host processes left behind: {alive}"


def _leftover_processes() -> list[str]:
    """Processes of this run's Ceph clusters or test hosts that are still alive."""
    mine = (f"/{ceph_mod.DIR_PREFIX}{os.getpid()}-", f"/{host_mod.NAME_PREFIX}-{os.getpid()}-")
    found = []
    for pid_dir in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(m in cmdline for m in mine):
            found.append(f"{pid_dir.name}: {cmdline.strip()}")
    return found
