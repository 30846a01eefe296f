"""A throwaway single-node Ceph cluster for end-to-end tests of the node-mount scripts.

`CephCluster` builds a real Ceph (Debian's 16.2 packages) in a temporary directory: one
monitor listening on msgr2 (3300) and msgr1 (6789) on a given address, one manager (for the
`volumes` module that Manila drives), one memstore OSD, one MDS and a CephFS whose pools keep
a single replica. Everything the daemons write (config, keyrings, data, sockets, logs) stays
in that directory, so the CI machine's /etc/ceph and /var/lib/ceph are never read or written.
It hands out what a Manila CephFS share gives a consumer: a subvolume path, a cephx user
restricted to that path and its key, and the monitor address list.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .proc_util import pid_alive, terminate, unmount_fuse

# The daemons and tools this module runs; conftest skips the e2e tests when any is missing.
REQUIRED_BINARIES = (
    "ceph",
    "ceph-authtool",
    "monmaptool",
    "ceph-mon",
    "ceph-mgr",
    "ceph-osd",
    "ceph-mds",
    "ceph-fuse",
)

MON_ID = "a"
MGR_ID = "x"
MDS_ID = "a"
OSD_ID = 0

# The pid of the test run is part of the directory name, so cleanup_stale() can tell the
# leftovers of a dead run from a cluster that is running.
DIR_PREFIX = "jhp-ceph-"

# Set KEEP_ENV to keep the temporary directory (logs, data) after stop() for debugging.
KEEP_ENV = "JHP_E2E_KEEP"


class CephClusterError(RuntimeError):
    """The cluster did not come up, or an admin command failed."""


class CephCluster:
    """One mon, mgr, memstore OSD and MDS plus a CephFS, all under a temporary directory."""

    def __init__(
        self,
        address: str,
        *,
        fs_name: str = "cephfs",
        memstore_bytes: int = 256 * 1024 * 1024,
        start_timeout: float = 90.0,
    ) -> None:
        self.address = address
        self.fs_name = fs_name
        self.fsid = str(uuid.uuid4())
        self._memstore_bytes = memstore_bytes
        self._start_timeout = start_timeout
        self._dir: Path | None = None
        self._daemons: dict[str, subprocess.Popen[bytes]] = {}
        self._admin_mount: Path | None = None
        self._admin_fuse: subprocess.Popen[bytes] | None = None

    # -- public properties -------------------------------------------------------------------

    @property
    def monitors(self) -> str:
        """The monitor list as Manila puts it in export paths (msgr1 port)."""
        return f"{self.address}:6789"

    @property
    def monitors_v2(self) -> str:
        """The same monitor as a msgr2-only `mon host` value."""
        return f"[v2:{self.address}:3300]"

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise CephClusterError("cluster not started")
        return self._dir

    @property
    def conf_path(self) -> Path:
        return self.directory / "ceph.conf"

    @property
    def admin_keyring(self) -> Path:
        return self.directory / "ceph.client.admin.keyring"

    @property
    def log_dir(self) -> Path:
        return self.directory / "log"

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> CephCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Create and start the cluster; on failure print the daemon logs and clean up."""
        self._dir = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))
        try:
            self._start()
        except BaseException:
            self.dump_logs()
            self.stop()
            raise

    def _start(self) -> None:
        deadline = time.monotonic() + self._start_timeout
        d = self.directory
        for sub in ("run", "log", "crash", "mon", "mgr", "osd", "mds", "mnt"):
            (d / sub).mkdir()
        self.conf_path.write_text(self._config())

        self._bootstrap_mon()
        self._spawn("mon", MON_ID)
        self._wait(deadline, "monitor quorum", self._mon_up)

        # The mgr, OSD and MDS register with the monitor independently, so they boot in
        # parallel while the pools and the file system are created.
        self._auth_to_file(
            f"mgr.{MGR_ID}",
            d / "mgr" / f"ceph-{MGR_ID}" / "keyring",
            "mon",
            "allow profile mgr",
            "osd",
            "allow *",
            "mds",
            "allow *",
        )
        self._spawn("mgr", MGR_ID)
        self._create_osd()
        self._spawn("osd", str(OSD_ID))
        self._auth_to_file(
            f"mds.{MDS_ID}",
            d / "mds" / f"ceph-{MDS_ID}" / "keyring",
            "mon",
            "allow profile mds",
            "osd",
            "allow rwx",
            "mds",
            "allow",
            "mgr",
            "allow profile mds",
        )
        self._spawn("mds", MDS_ID)

        meta, data = f"cephfs.{self.fs_name}.meta", f"cephfs.{self.fs_name}.data"
        self.ceph("osd", "pool", "create", meta, "8", json_out=False)
        self.ceph("osd", "pool", "create", data, "8", json_out=False)
        self.ceph("fs", "new", self.fs_name, meta, data, json_out=False)
        # No standby MDS will ever exist here; without this the cluster stays HEALTH_WARN.
        self.ceph("fs", "set", self.fs_name, "standby_count_wanted", "0", json_out=False)

        self._wait(deadline, "OSD up and in", self._osd_up)
        self._wait(deadline, "MDS active", self._mds_active)
        self._wait(deadline, "all PGs active", self._pgs_active)
        self._wait(deadline, "mgr volumes module", self._volumes_ready)
        self._check_daemons()

    def stop(self) -> None:
        """Unmount our FUSE mounts, stop the daemons (MDS first) and remove the directory."""
        self._unmount_admin()
        for kind in ("mds", "osd", "mgr", "mon"):
            proc = self._daemons.pop(kind, None)
            if proc is not None:
                # The MDS spends seconds on a clean shutdown that a throwaway cluster
                # does not need.
                terminate(proc, grace=2.0 if kind == "mds" else 10.0)
        if self._dir is not None:
            if os.environ.get(KEEP_ENV):
                print(f"ceph cluster directory kept: {self._dir}", file=sys.stderr)
            else:
                shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- admin operations -------------------------------------------------------------------

    def ceph(
        self,
        *args: str,
        json_out: bool = True,
        stdin: bytes | None = None,
        timeout: float = 30.0,
        check: bool = True,
    ) -> Any:
        """Run the `ceph` CLI as client.admin against this cluster.

        Returns parsed JSON when json_out, else stdout text. With check=False returns the
        CompletedProcess instead, for callers that expect errors.
        """
        cmd = [
            "ceph",
            "--conf",
            str(self.conf_path),
            "--name",
            "client.admin",
            "--connect-timeout",
            str(int(timeout)),
        ]
        if json_out:
            cmd += ["--format", "json"]
        cmd += list(args)
        proc = subprocess.run(
            cmd,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout + 10,
            check=False,
        )
        if not check:
            return proc
        if proc.returncode != 0:
            raise CephClusterError(
                f"{' '.join(args)} failed ({proc.returncode}): "
                f"{proc.stderr.decode(errors='replace').strip()}"
            )
        out = proc.stdout.decode()
        if json_out:
            return json.loads(out) if out.strip() else None
        return out

    def create_subvolume(self, name: str, *, size: int | None = None) -> str:
        """Create a subvolume like Manila does and return its path in the file system."""
        args = ["fs", "subvolume", "create", self.fs_name, name, "--mode", "755"]
        if size is not None:
            args += ["--size", str(size)]
        self.ceph(*args, json_out=False)
        path = self.ceph("fs", "subvolume", "getpath", self.fs_name, name, json_out=False)
        return str(path).strip()

    def authorize(self, client_name: str, path: str, access: str = "rw") -> str:
        """Create client.<client_name> allowed only below `path` and return its cephx key."""
        self.ceph(
            "fs", "authorize", self.fs_name, f"client.{client_name}", path, access, json_out=False
        )
        return str(self.ceph("auth", "get-key", f"client.{client_name}", json_out=False)).strip()

    def caps(self, client_name: str) -> dict[str, str]:
        entry = self.ceph("auth", "get", f"client.{client_name}")
        return dict(entry[0]["caps"])

    def read_file(self, path: str) -> bytes:
        """Read a file by its absolute path in the file system through an admin mount."""
        return (self._admin_root() / path.lstrip("/")).read_bytes()

    def write_file(self, path: str, data: bytes) -> None:
        target = self._admin_root() / path.lstrip("/")
        target.write_bytes(data)

    def dump_logs(self, lines: int = 40) -> None:
        """Print the tail of every daemon log, for a start that failed."""
        if self._dir is None or not self.log_dir.is_dir():
            return
        for log in sorted(self.log_dir.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            print(f"===== {log.name} (last {len(tail)} lines) =====", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)

    # -- internals --------------------------------------------------------------------------

    def _config(self) -> str:
        d = self.directory
        return textwrap.dedent(f"""\
            [global]
            fsid = {self.fsid}
            mon host = [v2:{self.address}:3300,v1:{self.address}:6789]
            public addr = {self.address}
            auth cluster required = cephx
            auth service required = cephx
            auth client required = cephx
            auth allow insecure global id reclaim = false
            run dir = {d}/run
            admin socket = {d}/run/$cluster-$name.$pid.asok
            log file = {d}/log/$cluster-$name.log
            mon cluster log file = {d}/log/$cluster.$channel.log
            crash dir = {d}/crash
            ms bind ipv6 = false
            osd pool default size = 1
            osd pool default min size = 1
            osd pool default pg autoscale mode = off
            osd crush chooseleaf type = 0
            mon allow pool size one = true
            mon allow pool delete = true
            mon warn on pool no redundancy = false
            # CI disks are often fuller than Ceph's defaults tolerate; at 5 % free the mon
            # would shut itself down, which says nothing about the scripts under test.
            mon data avail warn = 1
            mon data avail crit = 0
            client mount timeout = 20

            [mon]
            mon data = {d}/mon/$cluster-$id

            [mgr]
            mgr data = {d}/mgr/$cluster-$id
            # The default modules (restful, iostat, nfs) only slow the start; volumes is
            # always on.
            mgr initial modules =

            [osd]
            osd data = {d}/osd/$cluster-$id
            osd objectstore = memstore
            memstore device bytes = {self._memstore_bytes}
            osd crush update on start = true

            [mds]
            mds data = {d}/mds/$cluster-$id

            [client.admin]
            keyring = {self.admin_keyring}
            """)

    def _bootstrap_mon(self) -> None:
        d = self.directory
        mon_keyring = d / "mon.keyring"
        _run(
            [
                "ceph-authtool",
                "--create-keyring",
                str(mon_keyring),
                "--gen-key",
                "-n",
                "mon.",
                "--cap",
                "mon",
                "allow *",
            ]
        )
        _run(
            [
                "ceph-authtool",
                "--create-keyring",
                str(self.admin_keyring),
                "--gen-key",
                "-n",
                "client.admin",
                "--cap",
                "mon",
                "allow *",
                "--cap",
                "osd",
                "allow *",
                "--cap",
                "mds",
                "allow *",
                "--cap",
                "mgr",
                "allow *",
            ]
        )
        self.admin_keyring.chmod(0o600)
        _run(["ceph-authtool", str(mon_keyring), "--import-keyring", str(self.admin_keyring)])
        monmap = d / "monmap"
        _run(
            [
                "monmaptool",
                "--create",
                "--fsid",
                self.fsid,
                "--addv",
                MON_ID,
                f"[v2:{self.address}:3300,v1:{self.address}:6789]",
                str(monmap),
            ]
        )
        _run(
            [
                "ceph-mon",
                "--conf",
                str(self.conf_path),
                "--mkfs",
                "-i",
                MON_ID,
                "--monmap",
                str(monmap),
                "--keyring",
                str(mon_keyring),
            ]
        )

    def _auth_to_file(self, entity: str, keyring: Path, *caps: str) -> None:
        keyring.parent.mkdir(parents=True, exist_ok=True)
        self.ceph("auth", "get-or-create", entity, *caps, "-o", str(keyring), json_out=False)

    def _create_osd(self) -> None:
        osd_dir = self.directory / "osd" / f"ceph-{OSD_ID}"
        osd_dir.mkdir()
        osd_uuid = str(uuid.uuid4())
        key = _run(["ceph-authtool", "--gen-print-key"]).strip()
        (osd_dir / "keyring").write_text(f"[osd.{OSD_ID}]\n\tkey = {key}\n")
        secrets = json.dumps({"cephx_secret": key}).encode()
        osd_id = self.ceph("osd", "new", osd_uuid, "-i", "-", stdin=secrets, json_out=False)
        if osd_id.strip() != str(OSD_ID):
            raise CephClusterError(f"expected osd.{OSD_ID}, got {osd_id!r}")
        _run(
            [
                "ceph-osd",
                "--conf",
                str(self.conf_path),
                "-i",
                str(OSD_ID),
                "--mkfs",
                "--osd-uuid",
                osd_uuid,
            ]
        )

    def _spawn(self, kind: str, ident: str) -> None:
        # -f keeps the daemon in the foreground (logging to its file) so we own its pid.
        out = (self.log_dir / f"{kind}.{ident}.stdout").open("wb")
        self._daemons[kind] = subprocess.Popen(
            [f"ceph-{kind}", "--conf", str(self.conf_path), "-i", ident, "-f"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()

    def _check_daemons(self) -> None:
        for kind, proc in self._daemons.items():
            if proc.poll() is not None:
                raise CephClusterError(f"ceph-{kind} exited with {proc.returncode}")

    def _wait(self, deadline: float, what: str, ready: Callable[[], bool]) -> None:
        while True:
            self._check_daemons()
            with contextlib.suppress(CephClusterError, subprocess.TimeoutExpired):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise CephClusterError(f"timed out waiting for {what}")
            time.sleep(0.3)

    def _mon_up(self) -> bool:
        stat = self.ceph("mon", "stat", timeout=5)
        return bool(stat.get("quorum"))

    def _osd_up(self) -> bool:
        stat = self.ceph("osd", "stat", timeout=5)
        return bool(stat.get("num_up_osds") == 1 and stat.get("num_in_osds") == 1)

    def _mds_active(self) -> bool:
        dump = self.ceph("fs", "dump", timeout=5)
        for fs in dump.get("filesystems", []):
            if fs["mdsmap"]["fs_name"] == self.fs_name:
                infos = fs["mdsmap"]["info"].values()
                return any(i["state"] == "up:active" for i in infos)
        return False

    def _pgs_active(self) -> bool:
        stat = self.ceph("pg", "stat", timeout=5)
        summary = stat.get("pg_summary", stat)
        total = summary.get("num_pgs", 0)
        states = summary.get("num_pg_by_state", [])
        active = sum(s["num"] for s in states if s["name"].startswith("active"))
        return bool(total) and active == total

    def _volumes_ready(self) -> bool:
        proc = self.ceph("fs", "subvolume", "ls", self.fs_name, check=False, timeout=5)
        return bool(proc.returncode == 0)

    def _admin_root(self) -> Path:
        """Mount the whole file system as client.admin (once); return a path to read it by.

        ceph-fuse runs in a mount namespace of its own, so the mount shows up neither in
        the machine's mount table nor, by propagation, in the test hosts'; it is reached
        through /proc/<pid>/root. Were the daemon ever to hang, killing it would also take
        the namespace and mount away, with nothing left to block a later umount.
        """
        if self._admin_mount is not None and self._admin_fuse is not None:
            return Path(f"/proc/{self._admin_fuse.pid}/root") / str(self._admin_mount).lstrip("/")
        mnt = self.directory / "mnt" / "admin"
        mnt.mkdir(exist_ok=True)
        out = (self.log_dir / "ceph-fuse.admin.stdout").open("wb")
        self._admin_fuse = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "ceph-fuse",
                "--conf",
                str(self.conf_path),
                "-n",
                "client.admin",
                "-f",
                "--client_mountpoint",
                "/",
                str(mnt),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + 30
        while not _mounted_in(self._admin_fuse.pid, mnt):
            if self._admin_fuse.poll() is not None:
                raise CephClusterError(f"admin ceph-fuse exited with {self._admin_fuse.returncode}")
            if time.monotonic() > deadline:
                raise CephClusterError("admin ceph-fuse mount timed out")
            time.sleep(0.1)
        self._admin_mount = mnt
        return self._admin_root()

    def _unmount_admin(self) -> None:
        mnt, proc = self._admin_mount, self._admin_fuse
        self._admin_mount, self._admin_fuse = None, None
        if proc is None:
            return
        if mnt is not None and proc.poll() is None:
            unmount_fuse(mnt, nsenter=("nsenter", "-t", str(proc.pid), "-m", "--"))
        # ceph-fuse exits by itself once unmounted; give it a moment before a signal.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        terminate(proc, grace=5.0)


def _mounted_in(pid: int, target: Path) -> bool:
    try:
        mountinfo = Path(f"/proc/{pid}/mountinfo").read_text()
    except OSError:
        return False
    return any(line.split()[4] == str(target) for line in mountinfo.splitlines())


def machine_fuse_mounts() -> list[str]:
    """The ceph-fuse mount points in this machine's own mount namespace."""
    return subprocess.run(
        ["findmnt", "-rn", "-o", "TARGET", "-t", "fuse.ceph-fuse"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()


def _run(cmd: list[str], timeout: float = 30.0) -> str:
    proc = subprocess.run(
        cmd, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise CephClusterError(
            f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace').strip()}"
        )
    return proc.stdout.decode()


def cleanup_stale() -> list[str]:
    """Kill the daemons of clusters whose test run died and remove their directories.

    A surviving monitor would keep its port on the bridge address bound, so the next run's
    monitor could not listen there.
    """
    removed: list[str] = []
    tmp = Path(tempfile.gettempdir())
    stale = [
        p
        for p in tmp.glob(f"{DIR_PREFIX}*-*")
        if (m := re.match(rf"^{DIR_PREFIX}(\d+)-", p.name)) and not pid_alive(int(m.group(1)))
    ]
    for d in stale:
        for pid_dir in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (pid_dir / "cmdline").read_bytes()
            except OSError:
                continue
            # Killing ceph-fuse also drops its mount, which lives in its own namespace.
            if f"{d}/".encode() in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid_dir.name), signal.SIGKILL)
                removed.append(f"process {pid_dir.name}")
        shutil.rmtree(d, ignore_errors=True)
        removed.append(f"dir {d}")
    return removed
