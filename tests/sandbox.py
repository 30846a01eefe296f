"""Run node scripts for real on this machine, without touching its /etc or its mounts.

Each run gets a private mount namespace (`unshare -m`) with an overlay over /etc whose
upper layer is a test directory, so the script edits a private /etc/fstab, /etc/ceph and
/etc/systemd/system that persist from one run to the next of the same sandbox and can be
read from outside. `mount`, `umount`, `findmnt`, `systemctl` and `sudo` are test doubles
(`tests/sandbox_bin/`) that record mounts in a state file instead of mounting; everything
else the scripts use is the real tool. A run executes the remote command line exactly as
sshd would: `bash -c "<command>"`, with the cephx key on stdin.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from sitectl.mockrun import fake_cephx_key

FAKES = Path(__file__).resolve().parent / "sandbox_bin"
# Where sandboxes live: a real path outside /tmp and /var (which a mount path may not be
# under) and outside /mnt, which nodes (and test machines) use for their own mounts.
SANDBOX_BASE = Path("/srv/jupyterhub-platform-sandbox")
KEY = fake_cephx_key("sandbox")
# Where a run finds the machine's own programs, after the doubles.
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def sandbox_available() -> str | None:
    """Why the sandbox cannot run here, or None."""
    if os.geteuid() != 0:
        return "the script sandbox needs root (private mount namespace and overlay on /etc)"
    if shutil.which("unshare") is None:
        return "the script sandbox needs unshare(1) from util-linux"
    return None


requires_sandbox = pytest.mark.skipif(
    sandbox_available() is not None, reason=sandbox_available() or ""
)


@dataclass
class Sandbox:
    root: Path

    def __post_init__(self) -> None:
        for sub in ("upper", "work", "mnt"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.mounts_file.touch()
        self.log_file.touch()
        self.write_etc("fstab", "# <file system> <mount point> <type> <options> <dump> <pass>\n")

    @property
    def upper(self) -> Path:
        return self.root / "upper"

    @property
    def mounts_file(self) -> Path:
        return self.root / "mounts"

    def share(self, source: str) -> Path:
        """A share's content while it is not mounted (the fake mount moves it in): the
        export for the kernel client, the CephFS path for ceph-fuse."""
        digest = hashlib.sha256(source.encode()).hexdigest()[:16]
        return Path(f"{self.mounts_file}.shares") / digest

    @property
    def log_file(self) -> Path:
        return self.root / "calls.log"

    def unlock(self) -> None:
        """Undo the unmount script's chattr +i under the sandbox, so it can be removed."""
        subprocess.run(["chattr", "-R", "-i", str(self.root)], capture_output=True, check=False)

    def mount_path(self, name: str = "k8s-shared") -> str:
        return str(self.root / "mnt" / name)

    def write_etc(self, relative: str, text: str) -> None:
        path = self.upper / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def etc(self, relative: str) -> Path:
        """A file of the sandbox's /etc, as the scripts left it."""
        return self.upper / relative

    def mounts(self) -> list[str]:
        return [line for line in self.mounts_file.read_text().splitlines() if line]

    def calls(self) -> list[str]:
        return self.log_file.read_text().splitlines()

    def run(
        self,
        command: str,
        stdin: str = "",
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` as sshd would, inside a fresh private mount namespace."""
        setup = (
            "set -e\n"
            "/usr/bin/mount -t overlay overlay "
            f"-o lowerdir=/etc,upperdir={self.upper},workdir={self.root / 'work'} /etc\n"
            'exec bash -c "$1"\n'
        )
        environment = {
            "PATH": ":".join([str(FAKES), *SYSTEM_PATH]),
            "FAKE_MOUNTS": str(self.mounts_file),
            "FAKE_LOG": str(self.log_file),
            "FAKE_CEPH_KEY": KEY,
            "LANG": "C.UTF-8",
            **(env or {}),
        }
        return subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "bash",
                "-c",
                setup,
                "sandbox",
                command,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            env=environment,
            timeout=timeout,
            check=False,
        )
