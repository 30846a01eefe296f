"""The node scripts: shellcheck, then run for real in the sandbox (tests/sandbox.py)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.node_scripts import (
    SCRIPTS_DIR,
    MountSettings,
    VolumeOwners,
    remote_command,
    render,
    volume_script,
)
from sitectl.mockrun import FAKE_MONITORS, fake_cephx_key
from tests.sandbox import KEY, Sandbox, requires_sandbox

SHELLCHECK = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "shellcheck"
EXPORT = f"{FAKE_MONITORS}:/volumes/_nogroup/9f1c/6e33"
OTHER_EXPORT = f"{FAKE_MONITORS}:/volumes/_nogroup/aaaa/bbbb"
USER = "spsrc-k8-cluster00"
SECRET = f"ceph/jupyterhub-platform-{USER}.secret"
FUSE_KEYRING = f"ceph/jupyterhub-platform-{USER}.keyring"
FUSE_CONF = f"ceph/jupyterhub-platform-{USER}.conf"
OWNER = "jupyterhub-platform/espsrc/mounts-node-a"
# The chart's defaults for the notebook user (uid, fsGid) and the hub (uid, fsGroup).
OWNERS = VolumeOwners(1000, 100, 1000, 1000, "jhub")
# Well formed, but not the key the fake cluster accepts.
WRONG_KEY = fake_cephx_key("not-the-access-rule")


def shellcheck(path: Path, shell: str | None = None) -> subprocess.CompletedProcess[str]:
    args = [str(SHELLCHECK), "--severity=style"]
    if shell:
        args += ["--shell", shell]
    return subprocess.run([*args, str(path)], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS_DIR.glob("*.sh")))
def test_scripts_in_the_repository_pass_shellcheck(script: str) -> None:
    result = shellcheck(SCRIPTS_DIR / script)
    assert result.returncode == 0, result.stdout


def test_rendered_scripts_pass_shellcheck(tmp_path: Path) -> None:
    settings = MountSettings("node-a", EXPORT, "/mnt/k8s-shared", USER, "kernel", True, OWNER)
    for name, text, shell in (
        ("create.sh", settings.create_script(), None),
        ("delete.sh", settings.delete_script(), None),
        ("check.sh", settings.check_script(), None),
        ("setup.sh", volume_script("volume-setup.sh", "/mnt/k8s-shared", OWNERS), "sh"),
        ("teardown.sh", volume_script("volume-teardown.sh", "/mnt/k8s-shared"), "sh"),
    ):
        path = tmp_path / name
        path.write_text(text)
        result = shellcheck(path, shell)
        assert result.returncode == 0, f"{name}: {result.stdout}"


def test_shellcheck_is_not_vacuous(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    assert shellcheck(bad).returncode != 0


def settings_for(box: Sandbox, **changes: Any) -> MountSettings:
    base = MountSettings(
        node_name="node-a",
        export_path=EXPORT,
        mount_path=box.mount_path(),
        ceph_user=USER,
        mount_client="kernel",
        install_packages=False,
        owner=OWNER,
    )
    return dataclasses.replace(base, **changes)


def create(
    box: Sandbox, settings: MountSettings, user: str = "root", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return box.run(remote_command(settings.create_script(), user), stdin=KEY + "\n", env=env)


def delete(
    box: Sandbox, settings: MountSettings, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return box.run(remote_command(settings.delete_script(), "root"), env=env)


def fstab_lines_for(box: Sandbox, mount_path: str) -> list[str]:
    return [
        line
        for line in box.etc("fstab").read_text().splitlines()
        if not line.startswith("#") and len(line.split()) > 1 and line.split()[1] == mount_path
    ]


@requires_sandbox
def test_create_twice_mounts_once_and_changes_nothing(box: Sandbox) -> None:
    settings = settings_for(box)
    first = create(box, settings)
    assert first.returncode == 0, first.stderr
    assert f"{settings.mount_path} mounted (kernel client" in first.stdout
    assert len(first.stdout.splitlines()) == 1, "one summary line"
    fstab = box.etc("fstab").read_bytes()
    assert fstab_lines_for(box, settings.mount_path) == [
        f"{EXPORT} {settings.mount_path} ceph name={USER},secretfile=/etc/{SECRET},"
        "noatime,_netdev,nofail 0 0"
    ]
    key_file = box.etc(SECRET)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == KEY
    assert box.mounts() == [f"ceph {EXPORT} {settings.mount_path}"]

    second = create(box, settings)
    assert second.returncode == 0, second.stderr
    assert "already mounted" in second.stdout and "fstab unchanged" in second.stdout
    assert box.etc("fstab").read_bytes() == fstab
    assert box.mounts() == [f"ceph {EXPORT} {settings.mount_path}"]
    for run in (first, second):
        assert KEY not in run.stdout + run.stderr


@requires_sandbox
def test_the_key_goes_nowhere_but_its_file(box: Sandbox) -> None:
    settings = settings_for(box)
    command = remote_command(settings.create_script(), "ubuntu")
    assert KEY not in command
    result = create(box, settings, user="ubuntu")
    assert result.returncode == 0, result.stderr
    assert "sudo -n" in box.calls()
    holders = [
        p for p in box.upper.rglob("*") if p.is_file() and KEY in p.read_text(errors="replace")
    ]
    assert holders == [box.etc(SECRET)]
    marker = Path(settings.mount_path) / ".jupyterhub-platform-share"
    assert KEY not in marker.read_text()


@requires_sandbox
def test_mount_failure_leaves_fstab_as_it_was(box: Sandbox) -> None:
    settings = settings_for(box)
    before = box.etc("fstab").read_bytes()
    result = create(box, settings, env={"FAKE_MOUNT_FAIL": "connection timed out"})
    assert result.returncode != 0
    assert "error: mounting /volumes/_nogroup/9f1c/6e33" in result.stderr
    assert "connection timed out" in result.stderr
    assert box.etc("fstab").read_bytes() == before
    assert box.mounts() == []


@requires_sandbox
def test_wrong_key_fails_and_leaves_no_fstab_line(box: Sandbox) -> None:
    settings = settings_for(box)
    before = box.etc("fstab").read_bytes()
    result = box.run(remote_command(settings.create_script(), "root"), stdin=WRONG_KEY + "\n")
    assert result.returncode != 0
    assert "Permission denied" in result.stderr
    assert f"the cluster refused client.{USER}" in result.stderr
    assert box.etc("fstab").read_bytes() == before
    assert not box.etc(SECRET).exists(), "a failed first run leaves no key behind"
    assert not Path(settings.mount_path).exists(), "nor the mount point it made"


@requires_sandbox
@pytest.mark.parametrize(
    "key",
    [
        # The right characters, but not a cephx secret: ceph-fuse would print it back.
        "AQBzb21lLW90aGVyLWtleS10aGF0LWlzLXdyb25nAA==",
        # Says its secret is 32 bytes long, holds 16.
        base64.b64encode(b"\x01\x00" + bytes(8) + b"\x20\x00" + bytes(range(16))).decode(),
        "c2hvcnQ=",
    ],
)
def test_a_key_that_is_not_a_cephx_secret_is_refused(box: Sandbox, key: str) -> None:
    result = box.run(remote_command(settings_for(box).create_script(), "root"), stdin=key)
    assert result.returncode != 0
    assert "stdin does not hold a cephx key" in result.stderr
    assert key not in result.stdout + result.stderr
    assert box.mounts() == [] and box.calls() == []


@requires_sandbox
def test_the_key_needs_no_newline(box: Sandbox) -> None:
    """pulumi-command writes the access key to stdin as is, without a newline."""
    result = box.run(remote_command(settings_for(box).create_script(), "root"), stdin=KEY)
    assert result.returncode == 0, result.stderr
    assert box.etc(SECRET).read_text() == KEY + "\n"


@requires_sandbox
def test_no_key_on_stdin_is_refused(box: Sandbox) -> None:
    result = box.run(remote_command(settings_for(box).create_script(), "root"), stdin="")
    assert result.returncode != 0
    assert "stdin does not hold a cephx key" in result.stderr
    assert box.mounts() == []


@requires_sandbox
def test_k3s_dropin_guards_the_kubelet(box: Sandbox) -> None:
    box.write_etc(
        "systemd/system/k3s-agent.service", "[Service]\nExecStart=/usr/local/bin/k3s agent\n"
    )
    settings = settings_for(box)
    result = create(box, settings)
    assert result.returncode == 0, result.stderr
    dropin = box.etc("systemd/system/k3s-agent.service.d/50-jupyterhub-platform-share.conf")
    assert f"RequiresMountsFor={settings.mount_path}" in dropin.read_text().splitlines()
    assert dropin.read_text().startswith("[Unit]\n")
    assert "systemctl daemon-reload" in box.calls()
    assert "kubelet guard: k3s-agent" in result.stdout
    assert not box.etc("systemd/system/k3s.service.d").exists()
    reloads = box.calls().count("systemctl daemon-reload")
    assert create(box, settings).returncode == 0
    assert box.calls().count("systemctl daemon-reload") == reloads, "nothing changed: no reload"


@requires_sandbox
def test_without_k3s_unit_it_warns(box: Sandbox) -> None:
    result = create(box, settings_for(box))
    assert result.returncode == 0
    assert "no k3s or k3s-agent unit found" in result.stderr


@requires_sandbox
def test_delete_unmounts_and_leaves_the_data(box: Sandbox) -> None:
    box.write_etc("systemd/system/k3s.service", "[Service]\n")
    settings = settings_for(box)
    assert create(box, settings).returncode == 0
    home = Path(settings.mount_path) / "pvc-1234_jhub_claim-alice"
    home.mkdir()
    (home / "thesis.ipynb").write_text("{}")
    result = delete(box, settings)
    assert result.returncode == 0, result.stderr
    assert "unmounted" in result.stdout
    assert box.mounts() == []
    assert fstab_lines_for(box, settings.mount_path) == []
    assert not box.etc(SECRET).exists()
    assert not box.etc("systemd/system/k3s.service.d/50-jupyterhub-platform-share.conf").exists()
    # The files went with the share (the fake umount moves them to its store), none was
    # deleted, and the unused mount point on the node's disk is empty.
    assert (box.share(EXPORT) / home.name / "thesis.ipynb").read_text() == "{}"
    assert (box.share(EXPORT) / ".jupyterhub-platform-share").exists()
    assert list(Path(settings.mount_path).iterdir()) == []
    again = delete(box, settings)
    assert again.returncode == 0 and "not mounted" in again.stdout


@requires_sandbox
def test_busy_mount_is_not_lazily_unmounted(box: Sandbox) -> None:
    settings = settings_for(box)
    assert create(box, settings).returncode == 0
    holder = subprocess.Popen(["sleep", "30"], cwd=settings.mount_path)
    try:
        result = delete(box, settings, env={"FAKE_UMOUNT_BUSY": "1"})
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode != 0
    assert "target is busy" in result.stderr
    assert f"{holder.pid} (sleep)" in result.stderr
    # By argument: the sandbox's random directory name may itself hold "-l".
    umounts = [call.split() for call in box.calls() if call.startswith("umount")]
    assert umounts and not any("-l" in args or "--lazy" in args for args in umounts), umounts
    assert box.mounts(), "still mounted"
    assert fstab_lines_for(box, settings.mount_path), "fstab line kept while mounted"


@requires_sandbox
def test_replacing_a_mount_deletes_the_old_one_first(box: Sandbox) -> None:
    """The engine's order under delete_before_replace keeps the new mount and its key."""
    old = settings_for(box, export_path=EXPORT, mount_path=box.mount_path("old"))
    new = settings_for(box, export_path=OTHER_EXPORT, mount_path=box.mount_path("new"))
    assert create(box, old).returncode == 0
    assert delete(box, old).returncode == 0
    assert create(box, new).returncode == 0
    assert box.mounts() == [f"ceph {OTHER_EXPORT} {new.mount_path}"]
    assert box.etc(SECRET).read_text().strip() == KEY
    assert len(fstab_lines_for(box, new.mount_path)) == 1
    assert fstab_lines_for(box, old.mount_path) == []


@requires_sandbox
def test_create_before_delete_would_lose_the_key(box: Sandbox) -> None:
    """Why delete_before_replace: the default order removes the new mount's key."""
    old = settings_for(box, mount_path=box.mount_path("old"))
    new = settings_for(box, export_path=OTHER_EXPORT, mount_path=box.mount_path("new"))
    assert create(box, old).returncode == 0
    assert create(box, new).returncode == 0
    assert delete(box, old).returncode == 0
    assert not box.etc(SECRET).exists()


@requires_sandbox
def test_something_else_mounted_there_is_not_touched(box: Sandbox) -> None:
    settings = settings_for(box)
    Path(settings.mount_path).mkdir(parents=True)
    box.mounts_file.write_text(f"nfs 10.0.0.9:/export {settings.mount_path}\n")
    before = box.etc("fstab").read_bytes()
    result = create(box, settings)
    assert result.returncode != 0
    assert "already has nfs 10.0.0.9:/export mounted" in result.stderr
    assert box.etc("fstab").read_bytes() == before


@requires_sandbox
def test_hand_mounted_kernel_share_is_adopted_without_unmounting(box: Sandbox) -> None:
    """Issue 10: a node mounted by hand keeps its mount; its fstab line becomes ours."""
    settings = settings_for(box)
    Path(settings.mount_path).mkdir(parents=True)
    hand_line = (
        f"{EXPORT} {settings.mount_path}/ ceph "
        f"name={USER},secretfile=/etc/ceph/hand.secret,_netdev,noatime 0 2"
    )
    box.write_etc("ceph/hand.secret", KEY + "\n")
    box.write_etc(
        "fstab", f"# by hand, from the runbook\n{hand_line}\nproc /proc proc defaults 0 0\n"
    )
    box.mounts_file.write_text(f"ceph {EXPORT} {settings.mount_path}\n")

    result = create(box, settings)
    assert result.returncode == 0, result.stderr
    assert "already mounted" in result.stdout and "fstab updated" in result.stdout
    managed = (
        f"{EXPORT} {settings.mount_path} ceph name={USER},secretfile=/etc/{SECRET},"
        "noatime,_netdev,nofail 0 0"
    )
    assert fstab_lines_for(box, settings.mount_path) == [managed]
    assert box.etc("fstab").read_text() == (
        f"# by hand, from the runbook\nproc /proc proc defaults 0 0\n{managed}\n"
    )
    assert not any(call.startswith(("umount", "mount")) for call in box.calls())
    assert box.mounts() == [f"ceph {EXPORT} {settings.mount_path}"]
    assert box.etc("ceph/hand.secret").read_text() == KEY + "\n", "the runbook's file stays"


@requires_sandbox
def test_fuse_create_writes_its_own_files_and_one_fstab_line(box: Sandbox) -> None:
    settings = settings_for(box, mount_client="fuse")
    result = create(box, settings)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"cephfs-mount[node-a]: {settings.mount_path} mounted (fuse client, "
        f"/volumes/_nogroup/9f1c/6e33 from {FAKE_MONITORS}); fstab updated; kubelet guard: none"
    ]
    assert fstab_lines_for(box, settings.mount_path) == [
        f"none {settings.mount_path} fuse.ceph ceph.id={USER},"
        f"ceph.client_mountpoint=/volumes/_nogroup/9f1c/6e33,ceph.conf=/etc/{FUSE_CONF},"
        f"ceph.keyring=/etc/{FUSE_KEYRING},ceph.no-mon-config,_netdev,nofail 0 0"
    ]
    keyring = box.etc(FUSE_KEYRING)
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    assert keyring.read_text() == f"[client.{USER}]\n\tkey = {KEY}\n"
    conf = box.etc(FUSE_CONF).read_text()
    assert f"\tmon host = {FAKE_MONITORS.replace(',', ' ')}\n" in conf
    assert f"\tkeyring = /etc/{FUSE_KEYRING}\n" in conf
    holders = [p for p in box.upper.rglob("*") if p.is_file() and KEY in p.read_text()]
    assert holders == [keyring]
    assert box.mounts() == [f"fuse.ceph-fuse ceph-fuse {settings.mount_path}"]
    # No ceph-fuse process here to ask: the marker the first run left identifies the share.
    again = create(box, settings)
    assert again.returncode == 0, again.stderr
    assert "already mounted" in again.stdout and "fstab unchanged" in again.stdout


@requires_sandbox
def test_fuse_mount_that_exits_0_without_mounting_fails(box: Sandbox) -> None:
    """mount.fuse.ceph exits 0 when ceph-fuse fails; the script looks at what is mounted."""
    settings = settings_for(box, mount_client="fuse")
    before = box.etc("fstab").read_bytes()
    result = box.run(remote_command(settings.create_script(), "root"), stdin=WRONG_KEY)
    assert result.returncode != 0
    assert f"error: mounting /volumes/_nogroup/9f1c/6e33 from {FAKE_MONITORS}" in result.stderr
    assert "(13) Permission denied" in result.stderr
    assert WRONG_KEY not in result.stdout + result.stderr
    assert box.etc("fstab").read_bytes() == before
    assert not box.etc(FUSE_KEYRING).exists() and not box.etc(FUSE_CONF).exists()
    assert box.mounts() == []


@requires_sandbox
def test_unidentified_fuse_mount_is_left_alone(box: Sandbox) -> None:
    """A ceph-fuse mount with no process or marker to say which share it is: refused."""
    settings = settings_for(box, mount_client="fuse")
    Path(settings.mount_path).mkdir(parents=True)
    box.mounts_file.write_text(f"fuse.ceph-fuse ceph-fuse {settings.mount_path}\n")
    before = box.etc("fstab").read_bytes()
    result = create(box, settings)
    assert result.returncode != 0
    assert "neither a ceph-fuse process here nor the marker" in result.stderr
    assert box.etc("fstab").read_bytes() == before
    assert not any(call.startswith(("umount", "mount")) for call in box.calls())
    (Path(settings.mount_path) / ".jupyterhub-platform-share").write_text("/volumes/other\n")
    assert create(box, settings).returncode != 0, "a marker naming another share"


@requires_sandbox
def test_delete_removes_only_its_own_files(box: Sandbox) -> None:
    box.write_etc("ceph/ceph.conf", "[global]\n\tmon host = 10.0.0.1\n")
    box.write_etc(f"ceph/ceph.client.{USER}.keyring", f"[client.{USER}]\n\tkey = {KEY}\n")
    settings = settings_for(box, mount_client="fuse")
    assert create(box, settings).returncode == 0
    result = delete(box, settings)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in box.etc("ceph").iterdir()) == [
        "ceph.client.spsrc-k8-cluster00.keyring",
        "ceph.conf",
    ]


@requires_sandbox
@pytest.mark.parametrize(
    "changes",
    [
        {"export_path": "mon:6789:/volumes/$(touch /tmp/pwned)"},
        {"mount_path": "/mnt/x; touch /tmp/pwned"},
        {"ceph_user": "user`touch /tmp/pwned`"},
        {"export_path": "mon:6789:/volumes/a\n/tmp/pwned"},
        {"export_path": "-rf:6789:/volumes/a"},
        {"export_path": "..:6789:/volumes/a"},
        {"export_path": "mon:6789:/volumes/" + "a" * 1100},
    ],
)
def test_hostile_values_are_inert(box: Sandbox, tmp_path: Path, changes: dict[str, Any]) -> None:
    """Quoted into the script, a hostile value is data: refused, never executed."""
    pwned = Path("/tmp/pwned")
    pwned.unlink(missing_ok=True)
    settings = settings_for(box)
    hostile = dataclasses.replace(settings, **changes)
    if "export_path" in changes:
        # The program refuses it (the export comes from Manila, not from config) ...
        with pytest.raises(ValueError, match="export location"):
            hostile.create_script()
        # ... and the script's own check is the second line of defence.
        script = render(
            "mount-cephfs.sh",
            {
                "NODE_NAME": "node-a",
                "EXPORT_PATH": changes["export_path"],
                "MOUNT_PATH": settings.mount_path,
                "CEPH_USER": USER,
                "MOUNT_CLIENT": "kernel",
                "INSTALL_PACKAGES": "no",
            },
        )
    else:
        script = hostile.create_script()
    result = box.run(remote_command(script, "root"), stdin=KEY + "\n")
    assert result.returncode != 0
    assert not pwned.exists()
    assert box.mounts() == []


def run_volume_script(name: str, shared: Path, vol_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", volume_script(name, str(shared), OWNERS)],
        env={"VOL_DIR": str(vol_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_provisioner_refuses_a_volume_without_the_marker(tmp_path: Path) -> None:
    shared = tmp_path / "k8s-shared"
    shared.mkdir()
    vol = shared / "pvc-1_jhub_claim-alice"
    result = run_volume_script("volume-setup.sh", shared, vol)
    assert result.returncode != 0
    assert "refusing to create volume" in result.stderr
    assert "the CephFS share is not mounted" in result.stderr
    assert not vol.exists()

    (shared / ".jupyterhub-platform-share").write_text("/volumes/_nogroup/a/b\n")
    result = run_volume_script("volume-setup.sh", shared, vol)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(vol.stat().st_mode) == 0o770


@pytest.mark.parametrize("vol", ["elsewhere/pvc-1", "k8s-shared/a/b", "k8s-shared/.hidden"])
def test_provisioner_scripts_stay_directly_under_the_share(tmp_path: Path, vol: str) -> None:
    shared = tmp_path / "k8s-shared"
    shared.mkdir()
    (shared / ".jupyterhub-platform-share").write_text("x\n")
    for name in ("volume-setup.sh", "volume-teardown.sh"):
        result = run_volume_script(name, shared, tmp_path / vol)
        assert result.returncode != 0, name
        assert "refusing" in result.stderr


def test_teardown_needs_the_marker_too(tmp_path: Path) -> None:
    shared = tmp_path / "k8s-shared"
    vol = shared / "pvc-1_jhub_claim-alice"
    vol.mkdir(parents=True)
    (vol / "work.txt").write_text("data")
    result = run_volume_script("volume-teardown.sh", shared, vol)
    assert result.returncode != 0
    assert (vol / "work.txt").exists()
    (shared / ".jupyterhub-platform-share").write_text("x\n")
    assert run_volume_script("volume-teardown.sh", shared, vol).returncode == 0
    assert not vol.exists()


@requires_sandbox
def test_create_refuses_to_hide_files_on_the_nodes_own_disk(box: Sandbox) -> None:
    # What a node whose boot mount failed collects: writes that missed the share.
    settings = settings_for(box)
    Path(settings.mount_path).mkdir(parents=True)
    (Path(settings.mount_path) / "pvc-stray").mkdir()
    box.write_etc(SECRET, "the key of an earlier run\n")
    etc_before = sorted(p.relative_to(box.upper) for p in box.upper.rglob("*"))
    result = create(box, settings)
    assert result.returncode != 0
    assert f"{settings.mount_path} is not empty on this node's own disk (it holds 'pvc-stray')" in (
        result.stderr
    )
    assert box.mounts() == []
    assert fstab_lines_for(box, settings.mount_path) == []
    assert (Path(settings.mount_path) / "pvc-stray").is_dir()
    # Refused before anything changed: no file added to /etc, the earlier key as it was.
    assert sorted(p.relative_to(box.upper) for p in box.upper.rglob("*")) == etc_before
    assert box.etc(SECRET).read_text() == "the key of an earlier run\n"


@requires_sandbox
def test_delete_locks_the_unused_mount_point_and_create_unlocks_it(box: Sandbox) -> None:
    settings = settings_for(box)
    assert create(box, settings).returncode == 0
    result = delete(box, settings)
    assert result.returncode == 0, result.stderr
    assert "mount point locked against writes (chattr +i)" in result.stdout
    # What a pod left pointing at a volume under it would do: fail, not write locally.
    with pytest.raises(PermissionError):
        (Path(settings.mount_path) / "pvc-new").mkdir()
    again = create(box, settings)
    assert again.returncode == 0, again.stderr
    assert box.mounts() == [f"ceph {EXPORT} {settings.mount_path}"]
    lsattr = subprocess.run(
        ["lsattr", "-d", settings.mount_path], capture_output=True, text=True, check=True
    )
    assert "i" not in lsattr.stdout.split()[0]


@requires_sandbox
def test_failed_create_keeps_the_lock(box: Sandbox) -> None:
    settings = settings_for(box)
    assert create(box, settings).returncode == 0
    assert delete(box, settings).returncode == 0
    failed = create(box, settings, env={"FAKE_MOUNT_FAIL": "no route to host"})
    assert failed.returncode != 0
    lsattr = subprocess.run(
        ["lsattr", "-d", settings.mount_path], capture_output=True, text=True, check=True
    )
    assert "i" in lsattr.stdout.split()[0], "still locked after a failed mount"


@requires_sandbox
def test_delete_leaves_a_foreign_filesystem_mounted(box: Sandbox) -> None:
    settings = settings_for(box)
    Path(settings.mount_path).mkdir(parents=True)
    box.mounts_file.write_text(f"nfs 10.0.0.9:/export {settings.mount_path}\n")
    result = delete(box, settings)
    assert result.returncode != 0
    assert "has a nfs filesystem mounted, not CephFS: left alone" in result.stderr
    assert not any(call.startswith("umount") for call in box.calls())
    assert box.mounts() == [f"nfs 10.0.0.9:/export {settings.mount_path}"]


@requires_sandbox
def test_a_changed_fstab_line_reloads_systemd(box: Sandbox) -> None:
    box.write_etc("systemd/system/k3s.service", "[Service]\n")
    settings = settings_for(box)
    assert create(box, settings).returncode == 0
    reloads = box.calls().count("systemctl daemon-reload")
    fstab = box.etc("fstab")
    fstab.write_text(fstab.read_text().replace(",nofail", ""))  # a hand edit of the line
    result = create(box, settings)
    assert "fstab updated" in result.stdout
    assert box.calls().count("systemctl daemon-reload") == reloads + 1


# -- installing the client ------------------------------------------------------------------
FUSE_TOOLS = ("ceph-fuse", "mount.fuse.ceph")
FAKE_APT = """#!/usr/bin/env bash
# Test double for apt-get: records the call; `install ceph-fuse` puts the client's
# (fake) programs on PATH, as the package would.
printf 'apt-get %s\\n' "$*" >>"$FAKE_LOG"
if [[ $1 == install && " $* " == *" ceph-fuse "* ]]; then
    for tool in {tools}; do cp "{fakes}/$tool" "{bin}/$tool"; done
fi
"""


def path_without_fuse_client(tmp_path: Path) -> Path:
    """A PATH directory with every program of this machine and the sandbox's doubles,
    except the FUSE client's, and an apt-get that installs them."""
    from tests.sandbox import FAKES, SYSTEM_PATH

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for fake in FAKES.iterdir():
        if fake.name not in FUSE_TOOLS:
            (bin_dir / fake.name).symlink_to(fake)
    for directory in SYSTEM_PATH:
        for tool in Path(directory).iterdir() if Path(directory).is_dir() else ():
            link = bin_dir / tool.name
            if tool.name not in (*FUSE_TOOLS, "apt-get") and not link.is_symlink():
                link.symlink_to(tool)
    apt = bin_dir / "apt-get"
    apt.write_text(FAKE_APT.format(tools=" ".join(FUSE_TOOLS), fakes=FAKES, bin=bin_dir))
    apt.chmod(0o755)
    return bin_dir


@requires_sandbox
@pytest.mark.parametrize("allowed", [True, False])
def test_a_missing_fuse_client_is_installed_only_when_allowed(
    box: Sandbox, tmp_path: Path, allowed: bool
) -> None:
    bin_dir = path_without_fuse_client(tmp_path)
    settings = settings_for(box, mount_client="fuse", install_packages=allowed)
    result = create(box, settings, env={"PATH": str(bin_dir)})
    installs = [c for c in box.calls() if c.startswith("apt-get install")]
    if allowed:
        assert result.returncode == 0, result.stderr
        assert installs == ["apt-get install -y -q ceph-fuse"]
        assert box.mounts() == [f"fuse.ceph-fuse ceph-fuse {settings.mount_path}"]
    else:
        assert result.returncode != 0
        assert "ceph-fuse is missing and nodes.installPackages is false: install ceph-fuse" in (
            result.stderr
        )
        assert installs == []
        assert box.mounts() == []
        assert fstab_lines_for(box, settings.mount_path) == []


# -- issue 17: each step owns what it set up ----------------------------------------------


@requires_sandbox
@pytest.mark.parametrize("client", ["kernel", "fuse"])
def test_renaming_a_node_keeps_it_mounted(box: Sandbox, client: str) -> None:
    """A host renamed in nodes.hosts (same address): the engine creates the new step,
    which finds the share mounted, then deletes the old one on the same machine."""
    box.write_etc("systemd/system/k3s.service", "[Service]\n")
    old = settings_for(box, mount_client=client)
    new = dataclasses.replace(
        old, node_name="node-b", owner="jupyterhub-platform/espsrc/mounts-node-b"
    )
    assert create(box, old).returncode == 0
    taken = create(box, new)
    assert taken.returncode == 0, taken.stderr
    assert "already mounted" in taken.stdout
    assert f"taken over from {OWNER}" in taken.stdout
    before = {p: p.read_bytes() for p in box.upper.rglob("*") if p.is_file()}
    mounts = box.mounts()

    result = delete(box, old)
    assert result.returncode == 0, result.stderr
    assert f"owned by {new.owner}, not by {OWNER}: nothing changed" in result.stdout
    assert box.mounts() == mounts, "still mounted"
    assert {p: p.read_bytes() for p in box.upper.rglob("*") if p.is_file()} == before, (
        "fstab line, key, owner and kubelet guard as the new step left them"
    )
    assert not any(call.startswith("umount") for call in box.calls())

    # The new step's own delete still undoes it all.
    gone = delete(box, new)
    assert gone.returncode == 0, gone.stderr
    assert "unmounted; fstab line removed" in gone.stdout
    assert box.mounts() == [] and fstab_lines_for(box, new.mount_path) == []
    assert sorted(p.name for p in box.etc("ceph").iterdir()) == []


@requires_sandbox
def test_a_node_set_up_before_owners_is_still_removed(box: Sandbox) -> None:
    """No owner file (a node mounted by an earlier version): the delete is its step's."""
    settings = settings_for(box)
    assert create(box, settings).returncode == 0
    box.etc(f"ceph/jupyterhub-platform-{USER}.owner").unlink()
    result = delete(box, settings)
    assert result.returncode == 0, result.stderr
    assert "unmounted" in result.stdout and box.mounts() == []


@requires_sandbox
@pytest.mark.parametrize("client", ["kernel", "fuse"])
def test_a_failed_run_keeps_the_working_key(box: Sandbox, client: str) -> None:
    """A node whose share is not mounted (a boot without Ceph), then a run with a wrong
    key: it fails, and every file it touched is as it was, so the next boot mounts."""
    settings = settings_for(box, mount_client=client)
    assert create(box, settings).returncode == 0
    assert box.run(f"umount {settings.mount_path}").returncode == 0
    key_file = SECRET if client == "kernel" else FUSE_KEYRING
    before = {
        p.relative_to(box.upper): (p.read_bytes(), p.stat().st_mode, p.stat().st_ino)
        for p in box.upper.rglob("*")
        if p.is_file()
    }
    assert box.etc(key_file) in [box.upper / p for p in before]

    result = box.run(remote_command(settings.create_script(), "root"), stdin=WRONG_KEY)
    assert result.returncode != 0
    assert f"the cluster refused client.{USER}" in result.stderr
    after = {
        p.relative_to(box.upper): (p.read_bytes(), p.stat().st_mode, p.stat().st_ino)
        for p in box.upper.rglob("*")
        if p.is_file()
    }
    assert after == before, "every file as it was: the same content, mode and inode"
    assert KEY in box.etc(key_file).read_text()
    # What the next boot does: mount(8) from fstab and the key file alone.
    assert box.run("mount -a").returncode == 0
    assert len(box.mounts()) == 1


def as_uid(uid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can reach (pytest's tmp_path is under a 0700 one)."""
    path = Path(tempfile.mkdtemp(prefix="jhp-volumes-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@requires_sandbox
def test_volumes_are_their_pods_own(open_dir: Path) -> None:
    """The volume root is 0700 root; a user's volume is 0770 uid:fsGid of the notebook,
    the hub database's the hub's; a node's SSH user (uid 1000 too) reads no home."""
    shared = open_dir / "k8s-shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    (shared / ".jupyterhub-platform-share").write_text("/volumes/_nogroup/a/b\n")
    home = shared / "pvc-1_jhub_claim-alice"
    db = shared / "pvc-2_jhub_hub-db-dir"
    other_db = shared / "pvc-3_other_hub-db-dir"
    for vol in (home, db, other_db):
        result = run_volume_script("volume-setup.sh", shared, vol)
        assert result.returncode == 0, result.stderr
    ids = {vol: (vol.stat().st_uid, vol.stat().st_gid) for vol in (home, db, other_db)}
    assert ids == {home: (1000, 100), db: (1000, 1000), other_db: (1000, 100)}
    root = shared.stat()
    assert (stat.S_IMODE(root.st_mode), root.st_uid, root.st_gid) == (0o700, 0, 0)
    assert all(stat.S_IMODE(vol.stat().st_mode) == 0o770 for vol in ids)
    (home / "thesis.ipynb").write_text("{}")
    (home / "thesis.ipynb").chmod(0o644)
    denied = as_uid(1000, "cat", str(home / "thesis.ipynb"))
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    # Run again (a retried claim): the same, nothing opened up.
    assert run_volume_script("volume-setup.sh", shared, home).returncode == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o770


def test_pod_ids_are_the_charts_and_follow_extra_values() -> None:
    from components.config import ConfigError, parse_site_config
    from components.storage_class import CHART_POD_IDS, volume_owners
    from tests.sites import chart_defaults, site

    for version in ("3.1.0", "3.3.8"):
        defaults = chart_defaults(version)
        for path, value in CHART_POD_IDS.items():
            found: Any = defaults
            for key in path:
                found = found[key]
            assert found == value, f"{version}: {'.'.join(path)}"
    hub = parse_site_config(site()).hub
    assert volume_owners(hub) == VolumeOwners(1000, 100, 1000, 1000, hub.namespace)
    changed = hub.model_copy(update={"extra_values": {"singleuser": {"uid": 1001, "fsGid": 1001}}})
    assert volume_owners(changed) == VolumeOwners(1001, 1001, 1000, 1000, hub.namespace)
    bad = hub.model_copy(update={"extra_values": {"singleuser": {"uid": "jovyan"}}})
    with pytest.raises(ConfigError, match=r"^hub.extraValues.singleuser.uid: 'jovyan' is not"):
        volume_owners(bad)


# -- storage.enforceCapacity --------------------------------------------------------------


@requires_sandbox
def test_enforce_capacity_checks_the_quota_cap_once_at_deploy(box: Sandbox) -> None:
    settings = settings_for(box, enforce_capacity=True)
    before = box.etc("fstab").read_bytes()
    refused = create(box, settings, env={"FAKE_NO_QUOTA_CAP": "1"})
    assert refused.returncode != 0
    assert (
        f"storage.enforceCapacity is on, but client.{USER} may not set CephFS quotas "
        "(setfattr ceph.quota.max_bytes: Permission denied): ask the Ceph operators for the "
        f"p flag in its MDS cap (mds 'allow rwp path=/volumes/_nogroup/9f1c/6e33')"
    ) in refused.stderr
    # The failed deploy leaves the node as it found it: unmounted, no line, no key.
    assert box.mounts() == [] and box.etc("fstab").read_bytes() == before
    assert not box.etc(SECRET).exists()

    result = create(box, settings)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("; quotas: allowed")
    probes = [c for c in box.calls() if c.startswith("setfattr ceph.quota.max_bytes")]
    assert len(probes) == 2
    assert probes[-1].split()[3].startswith(f"{settings.mount_path}/.jupyterhub-platform-quota")
    assert [p.name for p in Path(settings.mount_path).iterdir()] == [
        ".jupyterhub-platform-share"
    ], "the scratch directory is gone"


def run_setup(
    shared: Path, vol: Path, size: str, env: dict[str, str] | None = None, enforce: bool = True
) -> subprocess.CompletedProcess[str]:
    from tests.sandbox import FAKES

    return subprocess.run(
        ["/bin/sh", "-c", volume_script("volume-setup.sh", str(shared), OWNERS, enforce)],
        env={
            "VOL_DIR": str(vol),
            "VOL_SIZE_BYTES": size,
            "PATH": f"{FAKES}:/usr/bin:/bin",
            "FAKE_XATTRS": str(shared.parent / "xattrs"),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        check=False,
    )


def test_enforced_volumes_get_their_claims_size_as_quota(tmp_path: Path) -> None:
    shared = tmp_path / "k8s-shared"
    shared.mkdir()
    (shared / ".jupyterhub-platform-share").write_text("x\n")
    home, db = shared / "pvc-1_jhub_claim-alice", shared / "pvc-2_jhub_hub-db-dir"
    assert run_setup(shared, home, "10737418240").returncode == 0
    assert run_setup(shared, db, "1073741824").returncode == 0
    assert (tmp_path / "xattrs").read_text().splitlines() == [
        f"{home}\tceph.quota.max_bytes\t10737418240",
        f"{db}\tceph.quota.max_bytes\t1073741824",
    ]
    # Without the cap, or without a size, no volume is made.
    alice2 = shared / "pvc-3_jhub_claim-bob"
    denied = run_setup(shared, alice2, "1073741824", env={"FAKE_NO_QUOTA_CAP": "1"})
    assert denied.returncode != 0
    assert "cannot set its CephFS quota to 1073741824 bytes" in denied.stderr
    assert "needs the p flag in its MDS cap" in denied.stderr
    assert not alice2.exists()
    for size in ("", "0", "1Gi"):
        bad = run_setup(shared, alice2, size)
        assert bad.returncode != 0 and "is not a number of bytes" in bad.stderr, size
        assert not alice2.exists()
    # Off: no quota is set.
    assert run_setup(shared, alice2, "1073741824", enforce=False).returncode == 0
    assert str(alice2) not in (tmp_path / "xattrs").read_text()


def test_a_helper_image_without_setfattr_is_named(tmp_path: Path) -> None:
    shared = tmp_path / "k8s-shared"
    shared.mkdir()
    (shared / ".jupyterhub-platform-share").write_text("x\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("mkdir", "chown", "chmod", "rmdir"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or tool)
    vol = shared / "pvc-1_jhub_claim-alice"
    result = run_setup(shared, vol, "1073741824", env={"PATH": str(bin_dir)})
    assert result.returncode != 0
    assert "the helper image has no setfattr" in result.stderr
    assert "storage.helperImage" in result.stderr
    assert not vol.exists()


# -- where a mount and a volume may be ----------------------------------------------------


@requires_sandbox
def test_a_mount_path_through_a_symlink_is_refused(box: Sandbox) -> None:
    """`find` does not follow its starting point: files behind a symlinked mount path
    would be hidden unseen, and the share would land elsewhere."""
    real = Path(box.mount_path("real"))
    real.mkdir(parents=True)
    (real / "pvc-stray").mkdir()
    for link in (box.mount_path("link"), box.mount_path("via") + "/sub"):
        Path(link).parent.mkdir(parents=True, exist_ok=True)
    Path(box.mount_path("link")).symlink_to(real)
    Path(box.mount_path("via")).rmdir()
    Path(box.mount_path("via")).symlink_to(real.parent)
    for path, resolved in (
        (box.mount_path("link"), str(real)),
        (box.mount_path("via") + "/real", str(real)),
    ):
        before = box.etc("fstab").read_bytes()
        result = create(box, settings_for(box, mount_path=path))
        assert result.returncode != 0, path
        assert (
            f"mount path {path} is not its own real path on this node (it resolves to "
            f"{resolved} through a symlink)"
        ) in result.stderr
        assert box.mounts() == [] and box.etc("fstab").read_bytes() == before
        assert not box.etc(SECRET).exists()
    assert (real / "pvc-stray").is_dir()


@requires_sandbox
@pytest.mark.parametrize("path", ["/tmp/k8s-shared", "/var/tmp/share", "/tmp"])
def test_a_mount_path_under_tmp_is_refused(box: Sandbox, path: str) -> None:
    result = create(box, settings_for(box, mount_path=path))
    assert result.returncode != 0
    assert f"mount path {path} is under /tmp or /var/tmp" in result.stderr
    assert box.mounts() == [] and box.calls() == []


@pytest.mark.parametrize("path", ["/tmp/k8s-shared", "/var/tmp/share", "/tmp"])
def test_the_config_refuses_a_mount_path_under_tmp(path: str) -> None:
    from components.config import ConfigError, parse_site_config
    from tests.sites import site

    with pytest.raises(ConfigError, match=rf"^nodes.mountPath: \"{path}\" is "):
        parse_site_config(site(**{"nodes.mountPath": path}))


@pytest.mark.parametrize("name", ["volume-setup.sh", "volume-teardown.sh"])
def test_a_volume_that_is_a_symlink_out_of_the_share_is_refused(tmp_path: Path, name: str) -> None:
    shared = tmp_path / "k8s-shared"
    shared.mkdir()
    (shared / ".jupyterhub-platform-share").write_text("x\n")
    outside = tmp_path / "node-disk"
    outside.mkdir()
    (outside / "keep.txt").write_text("the node's own\n")
    vol = shared / "pvc-1_jhub_claim-alice"
    vol.symlink_to(outside)
    result = run_volume_script(name, shared, vol)
    assert result.returncode != 0
    assert f"{vol} is a symlink" in result.stderr
    assert stat.S_IMODE(outside.stat().st_mode) == 0o755 and outside.stat().st_uid == 0
    assert (outside / "keep.txt").read_text() == "the node's own\n"


@requires_sandbox
def test_fstab_is_on_disk_before_it_replaces_the_old_one(box: Sandbox) -> None:
    """Renamed without fsync, a crash can leave an empty /etc/fstab: the node then boots
    without any of its filesystems."""
    settings = settings_for(box)

    def synced_before_rename() -> list[str]:
        digest = hashlib.sha256(box.etc("fstab").read_bytes()).hexdigest()
        calls = box.calls()
        files = [
            i for i, c in enumerate(calls)
            if c.startswith("sync /etc/.jupyterhub-platform.") and c.endswith(digest)
        ]  # fmt: skip
        assert files, f"the new fstab was never synced: {calls}"
        return calls[files[-1] + 1 :]

    assert create(box, settings).returncode == 0
    assert "sync /etc" in synced_before_rename(), "nor the directory after the rename"
    # The key file too.
    assert any(c.startswith("sync /etc/ceph/.jupyterhub-platform.") for c in box.calls())
    assert delete(box, settings).returncode == 0
    assert "sync /etc" in synced_before_rename()


@requires_sandbox
@pytest.mark.parametrize("client", ["kernel", "fuse"])
def test_monitors_in_another_order_update_the_line_in_place(box: Sandbox, client: str) -> None:
    """What the update runs when Manila lists the same monitors in another order: the
    create script again, which keeps the mount and rewrites its fstab line."""
    settings = settings_for(box, mount_client=client)
    assert create(box, settings).returncode == 0
    mons = FAKE_MONITORS.split(",")
    reordered = ",".join(mons[1:] + mons[:1]) + ":/volumes/_nogroup/9f1c/6e33"
    assert reordered != EXPORT
    calls = len(box.calls())
    result = create(box, dataclasses.replace(settings, export_path=reordered))
    assert result.returncode == 0, result.stderr
    assert "already mounted" in result.stdout
    assert not any(c.startswith(("mount", "umount")) for c in box.calls()[calls:])
    [line] = fstab_lines_for(box, settings.mount_path)
    if client == "kernel":
        assert "fstab updated" in result.stdout
        assert line.startswith(f"{reordered} ")
    else:
        # ceph-fuse's fstab line names its conf, which holds the monitors.
        conf = box.etc(FUSE_CONF).read_text()
        assert f"\tmon host = {reordered.split(':/')[0].replace(',', ' ')}\n" in conf


@requires_sandbox
def test_a_private_fstab_stays_private(box: Sandbox) -> None:
    """A node whose fstab an administrator made 0600 (it holds another mount's password)
    keeps it 0600 through the mount and the unmount: rewriting it must not make those
    credentials readable by every local user."""
    settings = settings_for(box)
    box.write_etc("fstab", "//files/home /mnt/files cifs username=u,password=PLANTED-pw 0 0\n")
    box.etc("fstab").chmod(0o600)
    result = create(box, settings)
    assert result.returncode == 0, result.stderr
    assert fstab_lines_for(box, settings.mount_path), "the managed line is written"
    assert stat.S_IMODE(box.etc("fstab").stat().st_mode) == 0o600
    box.mounts_file.write_text("")  # unmounted: the delete then has nothing to unmount
    result = delete(box, settings)
    assert result.returncode == 0, result.stderr
    assert fstab_lines_for(box, settings.mount_path) == []
    assert stat.S_IMODE(box.etc("fstab").stat().st_mode) == 0o600
    assert "PLANTED-pw" in box.etc("fstab").read_text()


@requires_sandbox
def test_a_private_dropin_directory_stays_private(box: Sandbox) -> None:
    """k3s's drop-in directory, closed by an administrator (0700: a drop-in of theirs may
    hold a token in an Environment= line), stays closed when the guard goes in beside it."""
    box.write_etc("systemd/system/k3s.service", "[Service]\n")
    box.write_etc("systemd/system/k3s.service.d/10-site.conf", "[Service]\nEnvironment=T=x\n")
    box.etc("systemd/system/k3s.service.d").chmod(0o700)
    result = create(box, settings_for(box))
    assert result.returncode == 0, result.stderr
    assert box.etc("systemd/system/k3s.service.d/50-jupyterhub-platform-share.conf").is_file()
    assert stat.S_IMODE(box.etc("systemd/system/k3s.service.d").stat().st_mode) == 0o700


@requires_sandbox
def test_a_private_ceph_directory_stays_private(box: Sandbox) -> None:
    """An /etc/ceph an administrator closed (0750: it holds a keyring written 0644 by hand)
    stays closed: the mount step creates the directory when missing, never opens it."""
    settings = settings_for(box)
    box.write_etc("ceph/ceph.client.backup.keyring", "[client.backup]\n\tkey = PLANTED\n")
    box.etc("ceph").chmod(0o750)
    result = create(box, settings)
    assert result.returncode == 0, result.stderr
    assert box.etc(SECRET).read_text() == KEY + "\n"
    assert stat.S_IMODE(box.etc("ceph").stat().st_mode) == 0o750
