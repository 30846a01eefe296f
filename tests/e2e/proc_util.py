"""Process and mount helpers shared by the e2e harness modules.

Teardown in these tests must never hang on a FUSE mount whose server has stopped answering
(ceph-fuse whose MDS is gone), nor leave daemons behind, so every step here is bounded in
time and falls back to something blunter when the polite way fails.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path


def unmount_fuse(
    mountpoint: Path | str, nsenter: Sequence[str] = (), timeout: float = 10.0
) -> bool:
    """Unmount, falling back to a lazy detach; nsenter is a prefix to run it elsewhere.

    Returns whether either step succeeded.
    """
    for cmd in (["umount", str(mountpoint)], ["umount", "-l", str(mountpoint)]):
        try:
            proc = subprocess.run(
                [*nsenter, *cmd], capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            continue
        if proc.returncode == 0:
            return True
    return False


def terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds, and reap."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
