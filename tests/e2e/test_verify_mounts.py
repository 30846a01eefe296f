"""`sitectl verify --only node-mounts` against real SSH test hosts and a real CephFS.

The share is mounted on each host by the program's own mount step (run over SSH as
pulumi-command runs it, as in test_node_mounts.py), each host with a k3s unit so that the
step writes its kubelet guard (a stand-in `systemctl` on the host takes its daemon-reload:
the hosts run no systemd). Verify then connects as the operator's machine would: the system
ssh client, the stack's one key from the environment, only the pinned host keys trusted.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.sites import site
from tests.verify_runner import run_verify, write_stack

from .ceph_cluster import CephCluster
from .ssh_host import SshHost
from .test_node_mounts import MOUNT, create, new_share, ok, settings

pytestmark = pytest.mark.e2e


def _as_a_k3s_node(host: SshHost) -> None:
    script = (
        "mkdir -p /etc/systemd/system /usr/local/bin"
        " && printf '[Unit]\\nDescription=k3s (test stand-in)\\n' > /etc/systemd/system/k3s.service"
        " && printf '#!/bin/sh\\nexit 0\\n' > /usr/local/bin/systemctl"
        " && chmod 755 /usr/local/bin/systemctl"
    )
    proc = host.nsenter("bash", "-c", script)
    assert proc.returncode == 0, proc.stderr


def _verify(
    tmp_path: Path,
    hosts: list[SshHost],
    share_user: str,
    export: str,
    key: str,
    *,
    bastion: SshHost | None = None,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    jump = {}
    if bastion is not None:
        jump = {
            "nodes.bastion": {
                "host": bastion.address,
                "user": "root",
                "hostKey": bastion.host_key_public,
            }
        }
    settings_ = site(
        **jump,
        **{
            "nodes.hosts": [
                {"name": f"node-{i}", "address": h.address, "hostKey": h.host_key_public}
                for i, h in enumerate(hosts)
            ],
            "nodes.sshUser": "root",
            "nodes.mountPath": MOUNT,
            "nodes.mountClient": "fuse",
            "share.cephUser": share_user,
        },
    )
    stack = write_stack(tmp_path / "Pulumi.e2e.yaml", settings_)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "hub_url": "https://notebook.espsrc.iaa.csic.es/",
                "oauth_callback_url": "https://notebook.espsrc.iaa.csic.es/hub/oauth_callback",
                "share_export_path": export,
                "storage_class": "cephfs-shared",
            }
        )
    )
    proc, report = run_verify(
        "e2e",
        "--stack-file",
        str(stack),
        "--outputs",
        str(outputs),
        "--only",
        "node-mounts",
        env={"JHP_SECRET_sshPrivateKey": key, **(env or {})},
        report=tmp_path / "report.json",
        hidden=[key.strip().splitlines()[1]],
        timeout=120,
    )
    assert report is not None, proc.stderr
    return proc, {r["name"]: r for r in report["results"]}


def test_verify_names_each_node_without_the_share_as_mounted(
    ceph_cluster: CephCluster, test_host: Callable[[], SshHost], tmp_path: Path
) -> None:
    share = new_share(ceph_cluster)
    hosts = [test_host() for _ in range(3)]
    bastion = test_host()
    key = hosts[0].private_key
    public = (hosts[0].directory / "id_ed25519.pub").read_text()
    for i, host in enumerate([*hosts, bastion]):
        if i:
            # The stack has one SSH key for every node and the bastion.
            with (host.directory / "authorized_keys").open("a") as keys:
                keys.write(public)
    for i, host in enumerate(hosts):
        _as_a_k3s_node(host)
        ok(create(host, settings(share, node=f"node-{i}"), share.key))

    proc, results = _verify(tmp_path, hosts, share.user, share.export, key)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [r["status"] for r in results.values()] == ["ok", "ok", "ok"], proc.stdout

    # The same through the stack's bastion: each node sees the bastion connect to it. Under
    # a TMPDIR with a space and a `%`, which ssh would split and expand in the paths of the
    # key and the known hosts (in the ProxyCommand too) if verify put its files there.
    odd = tmp_path / "tmp dir %d"
    odd.mkdir()
    proc, results = _verify(
        tmp_path, hosts, share.user, share.export, key, bastion=bastion, env={"TMPDIR": str(odd)}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [r["status"] for r in results.values()] == ["ok", "ok", "ok"], proc.stdout
    for host in hosts:
        log = (host.directory / "sshd.log").read_text(errors="replace")
        assert f"Connection from {bastion.address} " in log, host.name

    unmounted, bad_fstab, open_key = hosts
    assert unmounted.nsenter("umount", MOUNT).returncode == 0
    mountpoint = f"ceph.client_mountpoint={share.path}"
    edit = f"sed -i 's|{mountpoint}|ceph.client_mountpoint=/volumes|' /etc/fstab"
    assert bad_fstab.nsenter("bash", "-c", edit).returncode == 0
    assert open_key.nsenter("chmod", "644", share.keyring()).returncode == 0

    proc, results = _verify(tmp_path, hosts, share.user, share.export, key)
    assert proc.returncode == 1, proc.stdout
    assert {name: r["status"] for name, r in results.items()} == {
        "share node-0": "FAIL",
        "share node-1": "FAIL",
        "share node-2": "FAIL",
    }
    first = results["share node-0"]
    assert first["detail"] == f"node-0: nothing is mounted at {MOUNT}"
    assert first["advice"].startswith(f"node node-0 does not have the share at {MOUNT}")
    second = results["share node-1"]
    assert f"no ceph.client_mountpoint={share.path}" in second["detail"]
    assert "fstab line" in second["advice"] and "node-1" in second["advice"]
    third = results["share node-2"]
    assert "mode/owner '644 root'" in third["detail"]
    assert (
        third["advice"]
        == f"on node-2: `chmod 600 {share.keyring()}` (the cephx key must be readable by root only)"
    )
    for line in ("FAIL    node-mounts        share node-0", "advice: node node-0 does not have"):
        assert line in proc.stdout
