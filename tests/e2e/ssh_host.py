"""SSH "test hosts" for end-to-end tests: sshd in a network namespace with a private view.

Each `SshHost` is a network namespace wired to a Linux bridge on the CI machine (where the
test Ceph cluster listens) and running Debian's own sshd with a throwaway host key and a
throwaway root key. Commands reach it exactly as pulumi-command's remote.Command sends them:
one SSH exec request carrying the command string, stdin piped, no pty, no environment.
sshd runs in its own mount and UTS namespaces (hostname = the namespace name) in which
/etc, /run, /var, /usr/local, /opt, /srv and /mnt are copy-on-write overlays of the
machine's directories, with a fresh /etc/fstab, an empty /etc/ceph and a fresh /root. So
whatever a script writes there, or mounts anywhere, stays with that one host, and every SSH
session (a child of sshd) sees the mounts that earlier sessions made, as on a real node.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .proc_util import pid_alive, unmount_fuse

# Directories a node-mount script may write to; each becomes a per-host overlay. /tmp is
# left shared because the hosts' own state (sshd config, keys, overlay layers) lives there.
DEFAULT_PRIVATE_DIRS = ("/etc", "/run", "/var", "/root", "/usr/local", "/opt", "/srv", "/mnt")

REQUIRED_BINARIES = ("ip", "nsenter", "findmnt", "ssh", "ssh-keygen", "/usr/sbin/sshd")

DEFAULT_SUBNET = "10.200.0.0/24"

# Every name carries the pid of the pytest process that made it, so that a later run can
# tell leftovers of a dead run (cleanup_stale) from those of a run still going.
NAME_PREFIX = "jhp"
_NETNS_RE = re.compile(rf"^{NAME_PREFIX}-(\d+)-\d+$")
_BRIDGE_RE = re.compile(rf"^{NAME_PREFIX}br(\d+)$")

FRESH_FSTAB = "# /etc/fstab: static file system information (test host).\n"


class SshHostError(RuntimeError):
    """A test host could not be set up or torn down."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise SshHostError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


class Bridge:
    """A Linux bridge holding the first address of `subnet`; hosts attach to it.

    Reference counted: the bridge exists from the first acquire() to the last release(),
    so the Ceph cluster (which listens on its address) and the hosts can share it.
    """

    def __init__(self, subnet: str = DEFAULT_SUBNET, name: str | None = None) -> None:
        self.network = ipaddress.IPv4Network(subnet)
        hosts = self.network.hosts()
        self.address = str(next(hosts))
        self._free = (str(a) for a in hosts)
        self.name = name or f"{NAME_PREFIX}br{os.getpid()}"
        if len(self.name) > 15:
            raise SshHostError(f"interface name too long: {self.name}")
        self._refs = 0

    def acquire(self) -> Bridge:
        if self._refs == 0:
            self._create()
        self._refs += 1
        return self

    def release(self) -> None:
        self._refs -= 1
        if self._refs == 0:
            _ip("link", "del", self.name, check=False)

    def next_address(self) -> str:
        try:
            return next(self._free)
        except StopIteration:
            raise SshHostError(f"no free address left in {self.network}") from None

    def _mac(self) -> str:
        """A locally administered unicast MAC, from this run's pid."""
        pid = os.getpid().to_bytes(4, "big")
        return ":".join(f"{b:02x}" for b in (0x02, 0x6A, *pid))

    def _create(self) -> None:
        # Two bridges holding the same subnet would split the traffic unpredictably.
        addrs = _ip("-o", "-4", "addr", "show").stdout
        for line in addrs.splitlines():
            fields = line.split()
            cidr = fields[fields.index("inet") + 1]
            if ipaddress.IPv4Interface(cidr).network.overlaps(self.network):
                raise SshHostError(
                    f"{self.network} is already in use on {fields[1]} ({cidr}); "
                    "a previous test run may have left it behind"
                )
        _ip("link", "add", self.name, "type", "bridge")
        try:
            # Without an address of its own a bridge takes the lowest of its ports' MACs,
            # so it changes when a host's veth goes away; the other hosts' ARP entries for
            # the bridge address (where the cluster listens) then point nowhere for about
            # a minute, and their Ceph clients hang until the entries expire.
            _ip("link", "set", self.name, "address", self._mac())
            _ip("addr", "add", f"{self.address}/{self.network.prefixlen}", "dev", self.name)
            _ip("link", "set", self.name, "up")
        except BaseException:
            _ip("link", "del", self.name, check=False)
            raise


class SshHost:
    """One test host: a network namespace with sshd, reachable from the machine over SSH."""

    _counter = itertools.count(1)

    def __init__(
        self,
        bridge: Bridge,
        *,
        private_dirs: tuple[str, ...] = DEFAULT_PRIVATE_DIRS,
    ) -> None:
        self.bridge = bridge
        self.name = f"{NAME_PREFIX}-{os.getpid()}-{next(self._counter)}"
        self.address = ""
        self.port = 22
        self._private_dirs = tuple(d for d in private_dirs if os.path.isdir(d))
        self._dir: Path | None = None
        self._sshd: subprocess.Popen[bytes] | None = None
        self._veth = f"{NAME_PREFIX}v{self.name[len(NAME_PREFIX) + 1 :]}"
        self._bridge_held = False

    # -- public API ---------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise SshHostError("host not started")
        return self._dir

    @property
    def private_key_path(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def private_key(self) -> str:
        """The root login key (OpenSSH PEM text), as pulumi's connection.privateKey takes it."""
        return self.private_key_path.read_text()

    @property
    def host_key_public(self) -> str:
        """`ssh-ed25519 AAAA...`: the line pulumi pins as connection.hostKey."""
        fields = (self.directory / "ssh_host_ed25519_key.pub").read_text().split()
        return f"{fields[0]} {fields[1]}"

    @property
    def known_hosts_path(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def sshd_pid(self) -> int:
        if self._sshd is None:
            raise SshHostError("host not started")
        return self._sshd.pid

    def __enter__(self) -> SshHost:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ssh_command(self, command: str, options: tuple[str, ...] = ()) -> list[str]:
        """The ssh client argv that runs `command` on this host; options are extra `-o`s."""
        extra = [arg for opt in options for arg in ("-o", opt)]
        return [
            "ssh",
            # Ignore ~/.ssh/config and /etc/ssh/ssh_config: pulumi's Go client reads neither,
            # and it sends no environment (SendEnv) either.
            "-F",
            "none",
            "-i",
            str(self.private_key_path),
            "-p",
            str(self.port),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts_path}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            *extra,
            f"root@{self.address}",
            command,
        ]

    def run(
        self,
        command: str,
        stdin: bytes | None = None,
        timeout: float = 120.0,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` over SSH as pulumi-command would; stdout/stderr come back as text."""
        proc = subprocess.run(
            self.ssh_command(command),
            input=stdin,
            # Without stdin pulumi's session gives the command an empty stdin, i.e. EOF.
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        result = subprocess.CompletedProcess(
            proc.args,
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            raise SshHostError(
                f"{command!r} on {self.name} exited {result.returncode}: {result.stderr}"
            )
        return result

    def pids(self) -> list[int]:
        """Every process in the host's network namespace (sshd, sessions, daemons)."""
        return _netns_pids(self.name)

    def nsenter(self, *argv: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run argv directly inside the host's namespaces (no SSH), e.g. to inspect mounts."""
        return subprocess.run(
            [*self._nsenter_prefix(), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def popen(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start argv in the background inside the host's namespaces, as a process there.

        It is in the host's network namespace, so stop() ends it if the caller does not.
        """
        return subprocess.Popen(
            [*self._nsenter_prefix(), *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def written_files(self) -> dict[str, Path]:
        """Every regular file the host wrote in its private directories (/etc, /run, ...).

        Maps the path on the host to the copy in the overlay's upper layer, which can be
        read from the machine; /tmp is shared with the machine and not included.
        """
        found: dict[str, Path] = {}
        for target in self._private_dirs:
            upper, _ = self._overlay_dirs(target)
            for path in upper.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    found[f"{target}/{path.relative_to(upper)}"] = path
        return found

    def fuse_mounts(self) -> list[str]:
        """Mount points of FUSE file systems in the host's mount namespace."""
        proc = self.nsenter("findmnt", "-rn", "-o", "TARGET,FSTYPE")
        targets = []
        for line in proc.stdout.splitlines():
            target, _, fstype = line.rpartition(" ")
            if fstype.startswith("fuse"):
                # findmnt -r escapes blanks as \x20.
                targets.append(target.encode().decode("unicode_escape"))
        return targets

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        try:
            self._start(timeout)
        except BaseException:
            log = self.directory / "sshd.log"
            if log.exists():
                print(
                    f"===== {self.name} sshd.log =====\n{log.read_text(errors='replace')}",
                    file=sys.stderr,
                )
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        self.bridge.acquire()
        self._bridge_held = True
        self.address = self.bridge.next_address()
        self._make_keys()
        self._make_network()
        self._prepare_overlays()
        self._write_sshd_config()

        setup = self.directory / "setup.sh"
        setup.write_text(self._setup_script())
        log = (self.directory / "sshd.log").open("wb")
        # `ip netns exec` gives the child a new mount namespace (a slave of the machine's,
        # so nothing mounted inside leaks out) and unshare a UTS namespace for its own
        # hostname; setup.sh builds the overlays there and then becomes sshd, which every
        # SSH session inherits.
        self._sshd = subprocess.Popen(
            ["ip", "netns", "exec", self.name, "unshare", "--uts", "/bin/sh", str(setup)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self._port_open():
            if self._sshd.poll() is not None:
                raise SshHostError(f"sshd on {self.name} exited with {self._sshd.returncode}")
            if time.monotonic() > deadline:
                raise SshHostError(f"sshd on {self.name} did not listen in {timeout}s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Unmount what is left in the host, end its processes, remove netns and files."""
        if self._sshd is not None and self._sshd.poll() is None:
            for target in reversed(self.fuse_mounts()):
                unmount_fuse(target, nsenter=self._nsenter_prefix())
        # ceph-fuse closes its MDS session after umount has returned. Killed before that,
        # it leaves a session whose caps the MDS keeps until its session timeout (60 s),
        # and another client of the same files (another host's unmount) waits for them.
        _wait_for_exit(self.name, "ceph-fuse", timeout=10.0)
        _kill_netns_processes(self.name)
        if self._sshd is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._sshd.wait(timeout=10)
            self._sshd = None
        _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self._veth, check=False)
        if self._bridge_held:
            self._bridge_held = False
            self.bridge.release()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- internals -----------------------------------------------------------------------------

    def _nsenter_prefix(self) -> list[str]:
        return ["nsenter", "-t", str(self.sshd_pid), "-m", "-n", "-u", "--"]

    def _port_open(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex((self.address, self.port)) == 0

    def _make_keys(self) -> None:
        d = self.directory
        for key in ("ssh_host_ed25519_key", "id_ed25519"):
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"{self.name}",
                    "-f",
                    str(d / key),
                ],
                check=True,
                capture_output=True,
                timeout=30,
            )
        shutil.copy(d / "id_ed25519.pub", d / "authorized_keys")
        self.known_hosts_path.write_text(f"{self.address} {self.host_key_public}\n")

    def _make_network(self) -> None:
        _ip("netns", "add", self.name)
        _ip("link", "add", self._veth, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        _ip("link", "set", self._veth, "master", self.bridge.name, "up")
        _ip(
            "-n",
            self.name,
            "addr",
            "add",
            f"{self.address}/{self.bridge.network.prefixlen}",
            "dev",
            "eth0",
        )
        _ip("-n", self.name, "link", "set", "eth0", "up")
        _ip("-n", self.name, "link", "set", "lo", "up")

    def _overlay_dirs(self, target: str) -> tuple[Path, Path]:
        base = self.directory / "overlay" / target.strip("/").replace("/", "_")
        return base / "upper", base / "work"

    def _prepare_overlays(self) -> None:
        for target in self._private_dirs:
            upper, work = self._overlay_dirs(target)
            upper.mkdir(parents=True)
            work.mkdir(parents=True)
        if "/etc" in self._private_dirs:
            upper, _ = self._overlay_dirs("/etc")
            (upper / "fstab").write_text(FRESH_FSTAB)
            ceph = upper / "ceph"
            ceph.mkdir()
            # An opaque directory hides the machine's /etc/ceph from the host entirely.
            os.setxattr(ceph, "trusted.overlay.opaque", b"y")
            (upper / "hostname").write_text(f"{self.name}\n")
        if "/root" in self._private_dirs:
            # A fresh root home as Debian installs it: the machine's /root holds this CI
            # machine's tool setup (its .bashrc is sourced by every SSH command) and maybe
            # credentials, neither of which a node has.
            upper, _ = self._overlay_dirs("/root")
            os.setxattr(upper, "trusted.overlay.opaque", b"y")
            upper.chmod(0o700)
            for dot in ("bashrc", "profile"):
                skel = Path("/usr/share/base-files") / f"dot.{dot}"
                if skel.exists():
                    shutil.copy(skel, upper / f".{dot}")
        if "/run" in self._private_dirs:
            upper, _ = self._overlay_dirs("/run")
            # sshd refuses to start without its privilege separation directory.
            (upper / "sshd").mkdir(mode=0o755)

    def _write_sshd_config(self) -> None:
        d = self.directory
        (d / "sshd_config").write_text(
            f"ListenAddress {self.address}\n"
            f"Port {self.port}\n"
            f"HostKey {d / 'ssh_host_ed25519_key'}\n"
            f"PidFile {d / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            # Debian's PAM stack wants pam_loginuid, which fails in containers; key login
            # needs nothing from PAM.
            "UsePAM no\n"
            # /tmp is world-writable, which StrictModes would reject for the key file.
            "StrictModes no\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            # Debian's stock setting: environment sent by a client (pulumi's `environment`)
            # is dropped, so the scripts must not rely on it.
            "AcceptEnv LANG LC_*\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\n"
            "LogLevel VERBOSE\n"
        )

    def _setup_script(self) -> str:
        lines = ["set -eu", f"hostname {self.name}"]
        for target in self._private_dirs:
            upper, work = self._overlay_dirs(target)
            lines.append(
                f"mount -t overlay overlay -o lowerdir={target},upperdir={upper},"
                f"workdir={work} {target}"
            )
        lines.append(f"exec /usr/sbin/sshd -D -e -f {self.directory / 'sshd_config'}")
        return "\n".join(lines) + "\n"


def _netns_pids(name: str) -> list[int]:
    proc = _ip("netns", "pids", name, check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def _wait_for_exit(netns: str, comm: str, timeout: float) -> None:
    """Wait until no process named `comm` is left in the network namespace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in _netns_pids(netns):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                    alive.append(pid)
        if not alive:
            return
        time.sleep(0.05)


def _kill_netns_processes(name: str, grace: float = 5.0) -> None:
    """End every process in the network namespace: sshd, sessions, daemons they left."""
    pids = _netns_pids(name)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = _netns_pids(name)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while _netns_pids(name) and time.monotonic() < deadline:
        time.sleep(0.05)


def cleanup_stale() -> list[str]:
    """Remove namespaces, bridges and host directories left by test runs that died.

    Only names whose embedded pid is no longer running are touched. Returns what it removed.
    """
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = _NETNS_RE.match(name)
        if m and not pid_alive(int(m.group(1))):
            _kill_netns_processes(name)
            _ip("netns", "del", name, check=False)
            removed.append(f"netns {name}")
    for line in _ip("-o", "link", "show", "type", "bridge", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        m = _BRIDGE_RE.match(name)
        if m and not pid_alive(int(m.group(1))):
            _ip("link", "del", name, check=False)
            removed.append(f"bridge {name}")
    tmp = Path(tempfile.gettempdir())
    for path in tmp.glob(f"{NAME_PREFIX}-*-*-*"):
        m = re.match(rf"^{NAME_PREFIX}-(\d+)-\d+-", path.name)
        if m and path.is_dir() and not pid_alive(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"dir {path}")
    return removed
