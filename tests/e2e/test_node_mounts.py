"""The node-mount scripts end to end: a real Ceph cluster, real SSH, the exact command line.

Every create and delete here runs `remote_command(MountSettings(...).create_script(), ...)`
over SSH with the cephx key on stdin, as pulumi-command does, on test hosts whose /etc,
/run and /mnt are their own. What a test checks on a host it reads directly in the host's
namespaces (findmnt, cat, stat), never through the scripts; what it checks on the share it
reads from the cluster side, through the cluster's admin mount.

The FUSE client runs for real. The kernel client has no ceph module on this machine, so
its test bind-mounts a stand-in `mount.ceph` (tests/e2e/shims/) on its host: every step of
the scripts is real except the kernel's own mount, which the stand-in records and performs
with ceph-fuse from the same source, options and secret file.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.config import StorageSettings
from components.node_scripts import SCRIPTS_DIR, MountSettings, VolumeOwners, remote_command
from components.storage_class import provisioner_config

from .ceph_cluster import CephCluster
from .ssh_host import Bridge, SshHost

pytestmark = pytest.mark.e2e

MOUNT = "/mnt/k8s-shared"
SHIM = Path(__file__).resolve().parent / "shims" / "mount.ceph"
SHIM_CALLS = "/run/mount.ceph-shim.calls"
MARKER = ".jupyterhub-platform-share"
# Base64 of the right characters, but not a cephx secret Ceph can decode.
MALFORMED_KEY = "AQBzb21lLW90aGVyLWtleS10aGF0LWlzLXdyb25nAA=="


def script_setting(name: str) -> int:
    """A number the create script sets for itself, e.g. its mount timeout."""
    found = re.search(
        rf"^readonly {name}=(\d+)$", (SCRIPTS_DIR / "mount-cephfs.sh").read_text(), re.MULTILINE
    )
    assert found is not None, f"mount-cephfs.sh sets no {name}"
    return int(found.group(1))


# The create script's bound on a mount against monitors that do not answer.
MOUNT_TIMEOUT = script_setting("MOUNT_TIMEOUT")


@dataclass(frozen=True)
class Share:
    """What a Manila share and its access rule give a consumer."""

    path: str
    user: str
    key: str
    monitors: str

    @property
    def export(self) -> str:
        return f"{self.monitors}:{self.path}"

    def keyring(self) -> str:
        return f"/etc/ceph/jupyterhub-platform-{self.user}.keyring"

    def conf(self) -> str:
        return f"/etc/ceph/jupyterhub-platform-{self.user}.conf"

    def secret_file(self) -> str:
        return f"/etc/ceph/jupyterhub-platform-{self.user}.secret"

    def fuse_fstab_line(self) -> str:
        return (
            f"none {MOUNT} fuse.ceph ceph.id={self.user},ceph.client_mountpoint={self.path},"
            f"ceph.conf={self.conf()},ceph.keyring={self.keyring()},ceph.no-mon-config,"
            "_netdev,nofail 0 0"
        )


def new_share(cluster: CephCluster) -> Share:
    suffix = uuid.uuid4().hex[:8]
    path = cluster.create_subvolume(f"share-{suffix}")
    user = f"manila-{suffix}"
    return Share(path, user, cluster.authorize(user, path), cluster.monitors)


def settings(
    share: Share, client: str = "fuse", node: str = "node-a", export: str | None = None
) -> MountSettings:
    return MountSettings(
        node_name=node,
        export_path=export or share.export,
        mount_path=MOUNT,
        ceph_user=share.user,
        mount_client=client,
        install_packages=False,
        owner=f"jupyterhub-platform/e2e/mounts-{node}",
    )


# -- running the scripts as pulumi-command does ----------------------------------------------


def create(host: SshHost, s: MountSettings, key: str) -> subprocess.CompletedProcess[str]:
    # pulumi-command writes the access rule's key to stdin as is, without a newline.
    return host.run(remote_command(s.create_script(), "root"), stdin=key.encode())


def delete(host: SshHost, s: MountSettings) -> subprocess.CompletedProcess[str]:
    return host.run(remote_command(s.delete_script(), "root"))


def ok(result: subprocess.CompletedProcess[str], *keys: str) -> subprocess.CompletedProcess[str]:
    """The run succeeded and printed no key; returns it for more checks."""
    assert result.returncode == 0, result.stderr
    assert_no_key(result, *keys)
    return result


def assert_no_key(result: subprocess.CompletedProcess[str], *keys: str) -> None:
    for key in keys:
        assert key not in result.stdout + result.stderr, "a cephx key was printed"


# -- looking at a host directly --------------------------------------------------------------


def sh(host: SshHost, command: str) -> str:
    """Run a shell command in the host's namespaces (not over SSH) and return stdout."""
    proc = host.nsenter("bash", "-c", command)
    assert proc.returncode == 0, f"{command}: {proc.stderr}"
    return proc.stdout


def mounts_at(host: SshHost, path: str = MOUNT) -> list[str]:
    """`FSTYPE SOURCE` of every mount at path."""
    proc = host.nsenter("findmnt", "-rn", "-o", "FSTYPE,SOURCE", "--mountpoint", path)
    return proc.stdout.splitlines()


def mount_ids(host: SshHost, path: str = MOUNT) -> list[str]:
    return host.nsenter("findmnt", "-rn", "-o", "ID", "--mountpoint", path).stdout.split()


def fstab(host: SshHost) -> str:
    return sh(host, "cat /etc/fstab")


def fstab_lines(host: SshHost) -> list[str]:
    return [
        line
        for line in fstab(host).splitlines()
        if not line.startswith("#") and len(line.split()) > 1 and line.split()[1] == MOUNT
    ]


def exists(host: SshHost, path: str) -> bool:
    return host.nsenter("test", "-e", path).returncode == 0


def mode(host: SshHost, path: str) -> int:
    return int(sh(host, f"stat -c %a {shlex.quote(path)}"), 8)


def identity(host: SshHost, path: str) -> str:
    """Inode and modification time: the same only if the file was never rewritten."""
    return sh(host, f"stat -c '%i %Y' {shlex.quote(path)}").strip()


def ceph_fuse_pids(host: SshHost) -> list[int]:
    pids = []
    for pid in host.pids():
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm == "ceph-fuse":
            pids.append(pid)
    return sorted(pids)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def assert_nothing_left(host: SshHost, fstab_before: str) -> None:
    """A failed create left the host as it found it."""
    assert fstab(host) == fstab_before
    assert mounts_at(host) == []
    assert sh(host, "ls -A /etc/ceph") == "", "key material left behind"
    assert not exists(host, MOUNT), "mount point left behind"
    assert wait_until(lambda: ceph_fuse_pids(host) == []), "ceph-fuse left running"


# -- the FUSE client -------------------------------------------------------------------------


def test_create_mounts_the_share_on_a_fresh_host(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost]
) -> None:
    share, host = new_share(ceph_cluster), test_host()
    before = fstab(host)
    result = ok(create(host, settings(share), share.key), share.key)
    assert result.stdout.splitlines() == [
        f"cephfs-mount[node-a]: {MOUNT} mounted (fuse client, {share.path} from "
        f"{share.monitors}); fstab updated; kubelet guard: none"
    ]

    assert mounts_at(host) == ["fuse.ceph-fuse ceph-fuse"]
    assert fstab(host) == before + share.fuse_fstab_line() + "\n"
    assert mode(host, share.keyring()) == 0o600
    assert sh(host, f"cat {share.keyring()}") == f"[client.{share.user}]\n\tkey = {share.key}\n"
    assert mode(host, share.conf()) == 0o644
    assert f"mon host = {share.monitors}" in sh(host, f"cat {share.conf()}")
    holders = [
        path
        for path, copy in host.written_files().items()
        if share.key in copy.read_text(errors="replace")
    ]
    assert holders == [share.keyring()], "the key is in its keyring and nowhere else"

    host.run(f"echo 'hello from {host.name}' > {MOUNT}/hello.txt", check=True)
    assert ceph_cluster.read_file(f"{share.path}/hello.txt") == f"hello from {host.name}\n".encode()
    assert ceph_cluster.read_file(f"{share.path}/{MARKER}") == f"{share.path}\n".encode()


def test_create_again_changes_nothing(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost]
) -> None:
    share, host = new_share(ceph_cluster), test_host()
    s = settings(share)
    ok(create(host, s, share.key), share.key)
    files = (share.keyring(), share.conf(), "/etc/fstab", f"{MOUNT}/{MARKER}")
    before = {path: (sh(host, f"cat {path}"), identity(host, path)) for path in files}
    daemons, ids = ceph_fuse_pids(host), mount_ids(host)
    assert len(daemons) == 1 and len(ids) == 1

    again = ok(create(host, s, share.key), share.key)
    assert "already mounted" in again.stdout and "fstab unchanged" in again.stdout
    assert {path: (sh(host, f"cat {path}"), identity(host, path)) for path in files} == before
    assert ceph_fuse_pids(host) == daemons, "never remounted"
    assert mount_ids(host) == ids
    assert mounts_at(host) == ["fuse.ceph-fuse ceph-fuse"]


def test_mount_a_brings_it_back_from_fstab_alone(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost]
) -> None:
    share, host = new_share(ceph_cluster), test_host()
    ok(create(host, settings(share), share.key), share.key)
    ceph_cluster.write_file(f"{share.path}/from-cluster.txt", b"written on the cluster\n")

    host.run(f"umount {MOUNT}", check=True)
    assert mounts_at(host) == []
    assert wait_until(lambda: ceph_fuse_pids(host) == [])

    # What a boot does: mount(8) with nothing but /etc/fstab and the files it names.
    result = host.run("mount -a", timeout=60)
    assert result.returncode == 0, result.stderr
    assert mounts_at(host) == ["fuse.ceph-fuse ceph-fuse"]
    seen = host.run(f"cat {MOUNT}/from-cluster.txt", check=True).stdout
    assert seen == "written on the cluster\n"


def test_delete_unmounts_and_keeps_the_data(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost]
) -> None:
    share, host = new_share(ceph_cluster), test_host()
    s = settings(share)
    ok(create(host, s, share.key), share.key)
    home = f"{MOUNT}/pvc-1234_jhub_claim-alice"
    host.run(f"mkdir {home} && echo '{{}}' > {home}/thesis.ipynb", check=True)

    result = ok(delete(host, s), share.key)
    assert f"{MOUNT} unmounted; fstab line removed" in result.stdout
    assert mounts_at(host) == []
    assert fstab_lines(host) == []
    assert sh(host, "ls -A /etc/ceph") == ""
    assert wait_until(lambda: ceph_fuse_pids(host) == []), "ceph-fuse exits once unmounted"

    data = f"{share.path}/pvc-1234_jhub_claim-alice/thesis.ipynb"
    assert ceph_cluster.read_file(data) == b"{}\n"
    assert ceph_cluster.read_file(f"{share.path}/{MARKER}") == f"{share.path}\n".encode()
    again = ok(delete(host, s))
    assert "not mounted" in again.stdout


@pytest.mark.parametrize("wrong", ["unknown-key", "malformed-key"])
def test_wrong_key_fails_cleanly(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost], wrong: str
) -> None:
    share, host = new_share(ceph_cluster), test_host()
    if wrong == "unknown-key":
        key = subprocess.run(
            ["ceph-authtool", "--gen-print-key"], capture_output=True, text=True, check=True
        ).stdout.strip()
    else:
        key = MALFORMED_KEY
    before = fstab(host)
    result = create(host, settings(share), key)
    assert result.returncode != 0
    assert_no_key(result, key, share.key)
    if wrong == "unknown-key":
        assert f"the cluster refused client.{share.user}" in result.stderr
        assert "Permission denied" in result.stderr
    else:
        assert "stdin does not hold a cephx key" in result.stderr
    assert_nothing_left(host, before)


def test_unreachable_monitors_fail_in_bounded_time(
    ceph_cluster: CephCluster, e2e_bridge: Bridge, test_host: Callable[[], SshHost]
) -> None:
    share, host = new_share(ceph_cluster), test_host()
    # No host holds this address: nothing answers, not even with a refusal.
    silent = f"{e2e_bridge.network[250]}:6789"
    s = settings(share, export=f"{silent}:{share.path}")
    before = fstab(host)
    started = time.monotonic()
    result = create(host, s, share.key)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert_no_key(result, share.key)
    assert f"no monitor of {silent} answered within {MOUNT_TIMEOUT} s" in result.stderr
    assert "Connection timed out" in result.stderr
    assert MOUNT_TIMEOUT - 1 < elapsed < MOUNT_TIMEOUT + 10, elapsed
    assert_nothing_left(host, before)


def test_two_hosts_mount_at_once(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost]
) -> None:
    share = new_share(ceph_cluster)
    hosts = [test_host(), test_host()]
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(
            pool.map(
                lambda i: create(hosts[i], settings(share, node=f"node-{i}"), share.key), (0, 1)
            )
        )
    for run in runs:
        ok(run, share.key)
        assert f"{MOUNT} mounted (fuse client" in run.stdout
    for host in hosts:
        assert mounts_at(host) == ["fuse.ceph-fuse ceph-fuse"]
        assert len(fstab_lines(host)) == 1
        host.run(f"echo 'written on {host.name}' > {MOUNT}/{host.name}.txt", check=True)
    for host, other in (hosts, hosts[::-1]):
        seen = host.run(f"cat {MOUNT}/{other.name}.txt", check=True).stdout
        assert seen == f"written on {other.name}\n"
        assert ceph_cluster.read_file(f"{share.path}/{other.name}.txt") == seen.encode()


def test_another_share_mounted_there_is_left_alone(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost]
) -> None:
    share, other, host = new_share(ceph_cluster), new_share(ceph_cluster), test_host()
    # Another share, mounted at the mount path with ceph-fuse run by hand (`-r PATH`).
    host.run(
        "umask 077; cat > /root/other.keyring",
        stdin=f"[client.{other.user}]\n\tkey = {other.key}\n".encode(),
        check=True,
    )
    host.run(
        f"mkdir -p {MOUNT} && ceph-fuse --conf /dev/null -m {other.monitors} "
        f"--id {other.user} --keyring /root/other.keyring -r {other.path} {MOUNT}",
        check=True,
    )
    # Even a marker claiming the share does not outweigh what ceph-fuse says it serves.
    host.run(f"echo {share.path} > {MOUNT}/{MARKER}", check=True)
    daemons, before = ceph_fuse_pids(host), fstab(host)

    result = create(host, settings(share), share.key)
    assert result.returncode != 0
    assert_no_key(result, share.key, other.key)
    assert f"already has fuse.ceph-fuse ceph-fuse mounted, not the share {share.path}" in (
        result.stderr
    )
    assert ceph_fuse_pids(host) == daemons and mounts_at(host) == ["fuse.ceph-fuse ceph-fuse"]
    assert fstab(host) == before
    assert sh(host, "ls -A /etc/ceph") == "", "this run's key files are removed again"


# -- the kernel client, up to the kernel's mount -------------------------------------------


def test_kernel_client_script_runs_up_to_mount_ceph(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost]
) -> None:
    share, host = new_share(ceph_cluster), test_host()
    # Only in this host's mount namespace: the machine keeps its real mount.ceph.
    sh(host, f"mount --bind {shlex.quote(str(SHIM))} /usr/sbin/mount.ceph")
    s = settings(share, client="kernel")
    before = fstab(host)

    result = ok(create(host, s, share.key), share.key)
    assert f"{MOUNT} mounted (kernel client, {share.path} from {share.monitors})" in result.stdout
    # mount(8) read the managed fstab line and called mount.ceph as it would for the kernel.
    calls = [line.split("\t") for line in sh(host, f"cat {SHIM_CALLS}").splitlines()]
    assert len(calls) == 1
    source, target, options = calls[0]
    assert (source, target) == (share.export, MOUNT)
    assert f"name={share.user},secretfile={share.secret_file()}" in options
    # This run's own bound, on the line it mounted with but not in fstab (checked below).
    assert f"mount_timeout={MOUNT_TIMEOUT}" in options.split(",")
    assert mode(host, share.secret_file()) == 0o600
    assert sh(host, f"cat {share.secret_file()}") == f"{share.key}\n"
    assert fstab(host) == before + (
        f"{share.export} {MOUNT} ceph name={share.user},secretfile={share.secret_file()},"
        "noatime,_netdev,nofail 0 0\n"
    )
    assert not exists(host, share.keyring()) and not exists(host, share.conf())
    host.run(f"echo kernel > {MOUNT}/kernel.txt", check=True)
    assert ceph_cluster.read_file(f"{share.path}/kernel.txt") == b"kernel\n"

    again = ok(create(host, s, share.key), share.key)
    assert "already mounted" in again.stdout and "fstab unchanged" in again.stdout
    assert len(sh(host, f"cat {SHIM_CALLS}").splitlines()) == 1, "not mounted twice"

    gone = ok(delete(host, s), share.key)
    assert "unmounted; fstab line removed" in gone.stdout
    assert mounts_at(host) == [] and fstab(host) == before
    assert not exists(host, share.secret_file())
    assert ceph_cluster.read_file(f"{share.path}/kernel.txt") == b"kernel\n"


# -- issue 10: a node mounted by hand before the program took over -------------------------


def test_hand_mounted_share_is_adopted_without_remount(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost]
) -> None:
    share, host = new_share(ceph_cluster), test_host()
    # The runbook: the stock ceph.conf and keyring names, a fuse.ceph line, `mount`.
    runbook_conf = f"[global]\n\tmon host = {share.monitors}\n"
    runbook_keyring = f"[client.{share.user}]\n\tkey = {share.key}\n"
    host.run(f"printf '%s' {shlex.quote(runbook_conf)} > /etc/ceph/ceph.conf", check=True)
    host.run(
        f"umask 077; cat > /etc/ceph/ceph.client.{share.user}.keyring",
        stdin=runbook_keyring.encode(),
        check=True,
    )
    hand_line = (
        f"none {MOUNT} fuse.ceph ceph.id={share.user},ceph.client_mountpoint={share.path},"
        "_netdev,defaults 0 0"
    )
    host.run(f"echo {shlex.quote(hand_line)} >> /etc/fstab", check=True)
    fstab_by_hand = fstab(host)
    host.run(f"mkdir -p {MOUNT} && mount {MOUNT}", check=True)
    assert mounts_at(host) == ["fuse.ceph-fuse ceph-fuse"]
    daemons, ids = ceph_fuse_pids(host), mount_ids(host)

    # A user's kernel keeps a file open on the share and writes to it all along.
    log = f"{MOUNT}/notebook.log"
    writer = host.popen(
        [
            "bash",
            "-c",
            f"exec 3>>{log}; i=0; while :; do echo $i >&3; i=$((i + 1)); sleep 0.02; done",
        ]
    )

    def size() -> int:
        return len(sh(host, f"cat {log} 2>/dev/null || true"))

    try:
        assert wait_until(lambda: size() > 0)
        result = ok(create(host, settings(share), share.key), share.key)
        assert "already mounted" in result.stdout and "fstab updated" in result.stdout
        assert ceph_fuse_pids(host) == daemons, "the hand-made mount is kept, never remounted"
        assert mount_ids(host) == ids
        assert fstab_lines(host) == [share.fuse_fstab_line()]
        assert fstab(host) == fstab_by_hand.replace(hand_line, share.fuse_fstab_line())
        grown = size()
        assert wait_until(lambda: size() > grown), "the writer keeps writing"
        assert writer.poll() is None
    finally:
        writer.terminate()
        writer.wait(timeout=10)

    lines = sh(host, f"cat {log}").splitlines()
    assert lines == [str(i) for i in range(len(lines))], "the file is intact"
    assert (
        ceph_cluster.read_file(f"{share.path}/notebook.log")
        == "".join(f"{line}\n" for line in lines).encode()
    )

    # The runbook's own files are not the scripts' to remove.
    ok(delete(host, settings(share)), share.key)
    assert sh(host, "cat /etc/ceph/ceph.conf") == runbook_conf
    assert sh(host, f"cat /etc/ceph/ceph.client.{share.user}.keyring") == runbook_keyring
    assert not exists(host, share.keyring()) and not exists(host, share.conf())
    assert mounts_at(host) == [] and fstab_lines(host) == []


def test_delete_refuses_while_a_container_uses_the_share(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost]
) -> None:
    """A pod's volume is a bind mount in the container's own mount namespace: the host's
    umount would succeed and leave the pod on the share, unseen. The delete refuses."""
    share, host = new_share(ceph_cluster), test_host()
    s = settings(share)
    ok(create(host, s, share.key), share.key)
    # A process in a mount namespace of its own, holding a copy of the host's mounts:
    # what a container runtime makes for a pod.
    container = host.popen(["unshare", "--mount", "--propagation", "private", "sleep", "300"])
    try:
        assert wait_until(lambda: len(host.pids()) > 2)
        time.sleep(0.5)
        refused = delete(host, s)
        assert refused.returncode != 0
        assert "is in use by containers (other mount namespaces)" in refused.stderr
        assert "(sleep)" in refused.stderr
        assert mounts_at(host) == ["fuse.ceph-fuse ceph-fuse"], "still mounted"
        assert len(fstab_lines(host)) == 1
    finally:
        container.kill()
        container.wait()
    result = ok(delete(host, s), share.key)
    assert f"{MOUNT} unmounted" in result.stdout
    # The unused mount point is locked, so a pod still pointing under it cannot write to
    # the host's own disk there.
    if "locked against writes" in result.stdout:
        assert host.nsenter("mkdir", f"{MOUNT}/pvc-new").returncode != 0
    else:
        assert "could not be locked" in result.stdout
    ok(create(host, s, share.key), share.key)
    assert mounts_at(host) == ["fuse.ceph-fuse ceph-fuse"], "mounts again over the lock"


# -- issue 17: node scripts and storage hardening ----------------------------------------


def test_renaming_a_node_keeps_it_mounted(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost]
) -> None:
    """The engine's order for a host renamed in nodes.hosts: create the new step (it
    finds the share mounted), then delete the old one on the same machine."""
    share, host = new_share(ceph_cluster), test_host()
    old, new = settings(share, node="node-a"), settings(share, node="node-b")
    ok(create(host, old, share.key), share.key)
    daemons, ids = ceph_fuse_pids(host), mount_ids(host)
    taken = ok(create(host, new, share.key), share.key)
    assert f"taken over from {old.owner}" in taken.stdout
    files = ("/etc/fstab", share.keyring(), share.conf())
    before = {path: sh(host, f"cat {path}") for path in files}

    result = ok(delete(host, old), share.key)
    assert f"owned by {new.owner}, not by {old.owner}: nothing changed" in result.stdout
    assert ceph_fuse_pids(host) == daemons and mount_ids(host) == ids, "still mounted"
    assert {path: sh(host, f"cat {path}") for path in files} == before
    # What a reboot does: the fstab line and the key still bring the share back.
    host.run(f"umount {MOUNT}", check=True)
    assert wait_until(lambda: ceph_fuse_pids(host) == [])
    assert host.run("mount -a", timeout=60).returncode == 0
    assert mounts_at(host) == ["fuse.ceph-fuse ceph-fuse"]
    ok(delete(host, new), share.key)
    assert mounts_at(host) == [] and fstab_lines(host) == []


def unknown_key() -> str:
    return subprocess.run(
        ["ceph-authtool", "--gen-print-key"], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.parametrize("client", ["fuse", "kernel"])
def test_a_failed_run_keeps_the_working_key(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost], client: str
) -> None:
    """The share was mounted and is not now (a boot without Ceph); a run with a wrong key
    fails, and leaves every file as it was: the next boot's mount still works."""
    share, host = new_share(ceph_cluster), test_host()
    if client == "kernel":
        sh(host, f"mount --bind {shlex.quote(str(SHIM))} /usr/sbin/mount.ceph")
    s = settings(share, client=client)
    ok(create(host, s, share.key), share.key)
    host.run(f"umount {MOUNT}", check=True)
    assert wait_until(lambda: ceph_fuse_pids(host) == [])
    files = ["/etc/fstab", f"/etc/ceph/jupyterhub-platform-{share.user}.owner"]
    files += [share.keyring(), share.conf()] if client == "fuse" else [share.secret_file()]
    before = {
        path: (sh(host, f"cat {path}"), identity(host, path), mode(host, path)) for path in files
    }
    listing = sh(host, "ls -A /etc/ceph")

    wrong = unknown_key()
    result = create(host, s, wrong)
    assert result.returncode != 0
    assert_no_key(result, wrong, share.key)
    assert f"the cluster refused client.{share.user}" in result.stderr
    after = {
        path: (sh(host, f"cat {path}"), identity(host, path), mode(host, path)) for path in files
    }
    assert after == before
    assert sh(host, "ls -A /etc/ceph") == listing, "no backup left behind"
    assert mounts_at(host) == []

    boot = host.run("mount -a", timeout=60)
    assert boot.returncode == 0, boot.stderr
    assert mounts_at(host) == ["fuse.ceph-fuse ceph-fuse"]
    ok(delete(host, s), share.key)


def mounted_in(pid: int, path: str = MOUNT) -> bool:
    """Whether the mount namespace of process `pid` has something mounted at path."""
    lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    return any(line.split()[4] == path for line in lines)


def test_delete_ignores_copies_that_only_propagation_made(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost]
) -> None:
    """systemd's PrivateTmp/ProtectSystem services hold slave copies of the host's mounts:
    the unmount propagates to them, so they do not make the node refuse. A container's
    private copy still does, and a busy slave copy makes the unmount itself fail."""
    share, host = new_share(ceph_cluster), test_host()
    s = settings(share)
    # As on a systemd node, where / is shared: the share's mount gets a peer group.
    sh(host, "mount --make-shared /mnt")
    ok(create(host, s, share.key), share.key)
    service = host.popen(["unshare", "--mount", "--propagation", "slave", "sleep", "300"])
    container = host.popen(["unshare", "--mount", "--propagation", "private", "sleep", "300"])
    busy = None
    try:
        assert wait_until(lambda: mounted_in(service.pid) and mounted_in(container.pid))
        refused = delete(host, s)
        assert refused.returncode != 0
        assert f"in use by containers (other mount namespaces): {container.pid} (sleep)" in (
            refused.stderr
        )
        assert str(service.pid) not in refused.stderr, "the service's copy does not count"
        container.kill()
        container.wait()

        result = ok(delete(host, s), share.key)
        assert f"{MOUNT} unmounted" in result.stdout
        assert mounts_at(host) == []
        assert not mounted_in(service.pid), "the unmount propagated to the service's copy"

        ok(create(host, s, share.key), share.key)
        busy = host.popen(
            ["unshare", "--mount", "--propagation", "slave", "bash", "-c",
             f"cd {MOUNT} && exec sleep 300"]
        )  # fmt: skip
        assert wait_until(
            lambda: mounted_in(busy.pid) and "sleep" in (Path(f"/proc/{busy.pid}/comm").read_text())
        )
        held = delete(host, s)
        assert held.returncode != 0
        assert "cannot unmount" in held.stderr and "busy" in held.stderr
        assert mounts_at(host) == ["fuse.ceph-fuse ceph-fuse"], "still mounted"
        assert len(fstab_lines(host)) == 1
    finally:
        for proc in (service, container, busy):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    ok(delete(host, s), share.key)
    assert mounts_at(host) == []


# -- the provisioner's scripts, as its helper pod runs them -------------------------------

BUSYBOX = shutil.which("busybox") or "busybox"
OWNERS = VolumeOwners(user_uid=1000, user_gid=100, hub_uid=1000, hub_gid=1000, hub_namespace="jhub")


@pytest.fixture(scope="module")
def busybox_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PATH of busybox's applets alone, as in the helper pod's image (busybox:1.37).
    Debian's busybox is built without the setfattr applet that image has: attr's
    setfattr stands in for it."""
    bin_dir = tmp_path_factory.mktemp("busybox-bin")
    bin_dir.chmod(0o755)
    subprocess.run(["busybox", "--install", "-s", str(bin_dir)], check=True)
    for tool in ("setfattr", "getfattr"):
        (bin_dir / tool).unlink(missing_ok=True)
        (bin_dir / tool).symlink_to(subprocess.run(
            ["which", tool], capture_output=True, text=True, check=True
        ).stdout.strip())  # fmt: skip
    return bin_dir


def provisioner(
    host: SshHost,
    bin_dir: Path,
    action: str,
    vol_dir: str,
    *,
    size: int = 1 << 30,
    enforce_capacity: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the ConfigMap's `setup` or `teardown` under busybox sh, with the environment
    local-path-provisioner gives its helper pod."""
    storage = StorageSettings(enforce_capacity=enforce_capacity)
    script = provisioner_config(MOUNT, OWNERS, storage)[action]
    return host.nsenter(
        "env", "-i", f"PATH={bin_dir}", f"VOL_DIR={vol_dir}", "VOL_MODE=Filesystem",
        f"VOL_SIZE_BYTES={size}", BUSYBOX, "sh", "-c", script,
    )  # fmt: skip


def test_volumes_belong_to_their_pods_on_the_share(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost], busybox_bin: Path
) -> None:
    share, host = new_share(ceph_cluster), test_host()
    ok(create(host, settings(share), share.key), share.key)
    home, db = f"{MOUNT}/pvc-1_jhub_claim-alice", f"{MOUNT}/pvc-2_jhub_hub-db-dir"
    for vol in (home, db):
        result = provisioner(host, busybox_bin, "setup", vol)
        assert result.returncode == 0, result.stderr
    assert sh(host, f"stat -c '%a %u %g' {MOUNT}").split() == ["700", "0", "0"]
    assert sh(host, f"stat -c '%a %u %g' {home}").split() == ["770", "1000", "100"]
    assert sh(host, f"stat -c '%a %u %g' {db}").split() == ["770", "1000", "1000"]
    # The notebook user writes its home through a bind mount, as the kubelet gives it
    # to the pod (in a mount namespace of its own, as a container's).
    pod = (
        f"mkdir -p /run/pod-home && mount --bind {home} /run/pod-home && exec setpriv "
        "--reuid=1000 --regid=100 --clear-groups sh -c \"echo '{}' > /run/pod-home/thesis.ipynb\""
    )
    writer = host.nsenter("unshare", "--mount", "--propagation", "private", "sh", "-c", pod)
    assert writer.returncode == 0, writer.stderr
    # The node's SSH user, uid 1000 like the notebook user, reads no home, and cannot
    # replace the hub's database.
    for argv in (["cat", f"{home}/thesis.ipynb"], ["ls", db], ["touch", f"{db}/jupyterhub.sqlite"]):
        denied = host.nsenter("setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", *argv)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, argv
    assert ceph_cluster.read_file(f"{share.path}/pvc-1_jhub_claim-alice/thesis.ipynb") == b"{}\n"
    ok(delete(host, settings(share)), share.key)


def test_capacity_is_enforced_with_the_p_flag_and_refused_without(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost], busybox_bin: Path
) -> None:
    """storage.enforceCapacity against the real MDS: Manila's cap (rw) cannot set a quota,
    so the deploy fails naming the cap; with rwp the volume gets its claim's size as quota
    and a write past it fails."""
    share, host = new_share(ceph_cluster), test_host()
    with_p = Share(share.path, f"{share.user}-p", ceph_cluster.authorize(
        f"{share.user}-p", share.path, "rwp"), share.monitors)  # fmt: skip
    assert "rwp" in ceph_cluster.caps(with_p.user)["mds"]
    enforced = dataclasses.replace(settings(share), enforce_capacity=True)
    before = fstab(host)

    refused = create(host, enforced, share.key)
    assert refused.returncode != 0
    assert_no_key(refused, share.key)
    assert (
        f"storage.enforceCapacity is on, but client.{share.user} may not set CephFS quotas "
        "(setfattr ceph.quota.max_bytes: Permission denied): ask the Ceph operators for the "
        f"p flag in its MDS cap (mds 'allow rwp path={share.path}')"
    ) in refused.stderr
    assert_nothing_left(host, before)

    # Mounted without the check, the provisioner's setup still refuses a volume it cannot
    # give a quota.
    ok(create(host, settings(share), share.key), share.key)
    vol = f"{MOUNT}/pvc-1_jhub_claim-alice"
    setup = provisioner(host, busybox_bin, "setup", vol, size=4 << 20, enforce_capacity=True)
    assert setup.returncode != 0
    assert "cannot set its CephFS quota to 4194304 bytes" in setup.stderr
    assert not exists(host, vol), "no volume without its quota"
    ok(delete(host, settings(share)), share.key)

    s = dataclasses.replace(settings(with_p), enforce_capacity=True)
    result = ok(create(host, s, with_p.key), with_p.key)
    assert result.stdout.rstrip().endswith("; quotas: allowed")
    assert sh(host, f"ls -A {MOUNT}").split() == [MARKER], "the scratch directory is gone"
    setup = provisioner(host, busybox_bin, "setup", vol, size=4 << 20, enforce_capacity=True)
    assert setup.returncode == 0, setup.stderr
    assert sh(host, f"getfattr --only-values -n ceph.quota.max_bytes {vol}") == "4194304"
    # A write past the quota stops near it: the client checks the quota as it writes.
    write = host.nsenter("dd", "if=/dev/zero", f"of={vol}/big", "bs=1M", "count=32", "conv=fsync")
    assert write.returncode != 0
    assert "Disk quota exceeded" in write.stderr
    assert int(sh(host, f"stat -c %s {vol}/big")) < 16 << 20
    ok(delete(host, s), with_p.key)
