"""Supervised subprocesses for the login chain: start, wait for ports, log, stop.

Each server of the chain (identity provider, hub with its proxy, HAProxy) runs as a
child process in its own session, with its output in a log file. A registry keeps every
process started during the test module, so a failing test can print all their logs and
teardown can prove that none is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# Enough of a log to diagnose a failure without drowning the report.
_LOG_TAIL_CHARS = 12000


class ChainError(RuntimeError):
    """A process of the login chain failed to start or to become ready."""


class ManagedProcess:
    """One child process with its own session (process group) and log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            # A new session makes the child the leader of its own process group, so
            # stopping it also reaches any helper it forked (and nothing of ours).
            self.popen = subprocess.Popen(
                self.argv,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        # Sessions of processes this one started with their own session (the hub starts
        # configurable-http-proxy so): stopping the group alone would miss them.
        self.extra_sessions: list[int] = []
        self.stopped = False

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        if len(text) > chars:
            return "...\n" + text[-chars:]
        return text

    def describe(self) -> str:
        state = "running" if self.alive() else f"exited with {self.popen.returncode}"
        return f"{self.name} (pid {self.pid}, {state}): {' '.join(self.argv)}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process group gently, then forcibly; also the extra sessions."""
        if self.stopped:
            return
        self.stopped = True
        _signal_group(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)
        # The group leader is gone; children that ignored SIGTERM must not outlive it.
        _signal_group(self.pid, signal.SIGKILL)
        for sid in self.extra_sessions:
            _stop_session(sid, timeout)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop_session(pid: int, timeout: float) -> None:
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and session_members(pid):
        time.sleep(0.1)
    _signal_group(pid, signal.SIGKILL)


def session_members(sid: int) -> list[int]:
    """Pids in session `sid`, as pgrep sees them (zombies excluded)."""
    result = subprocess.run(["pgrep", "-s", str(sid)], capture_output=True, text=True, check=False)
    pids = [int(p) for p in result.stdout.split()]
    return [p for p in pids if not _is_zombie(p)]


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state letter follows the parenthesised command name.
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


class ProcessRegistry:
    """Every process the test module started, in start order."""

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ManagedProcess:
        proc = ManagedProcess(name, argv, log_path, cwd=cwd, env=env)
        self.processes.append(proc)
        return proc

    def report(self) -> str:
        """All processes with the tail of their logs, for a failure report."""
        parts = []
        for proc in self.processes:
            parts.append(f"===== {proc.describe()}\n----- {proc.log_path}\n{proc.log_tail()}")
        return "\n".join(parts) if parts else "(no processes started)"

    def stop_all(self) -> None:
        # Reverse start order: the front door first, the identity provider last.
        for proc in reversed(self.processes):
            proc.stop()

    def kill_leftovers(self) -> None:
        for proc in self.processes:
            for sid in [proc.pid, *proc.extra_sessions]:
                for pid in session_members(sid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)

    def leftovers(self) -> list[str]:
        """Processes of any registered session still alive (should be none)."""
        found = []
        for proc in self.processes:
            for sid in [proc.pid, *proc.extra_sessions]:
                found += [f"{proc.name}: pid {pid}" for pid in session_members(sid)]
        return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host` (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "0.0.0.0") -> bool:  # noqa: S104 - probe only
    """Whether `port` can be bound on `host` now (default: on every address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(host: str, port: int, proc: ManagedProcess, timeout: float = 30.0) -> None:
    """Wait until `host:port` accepts connections; fail early if `proc` dies."""
    deadline = time.monotonic() + timeout
    while True:
        if not proc.alive():
            raise ChainError(
                f"{proc.name} exited with {proc.popen.returncode} before listening on "
                f"{host}:{port}\n{proc.log_tail()}"
            )
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ChainError(
                f"{proc.name} did not listen on {host}:{port} within {timeout:.0f}s\n"
                f"{proc.log_tail()}"
            )
        time.sleep(0.1)


def wait_until(
    what: str, check: Callable[[], bool], proc: ManagedProcess, timeout: float = 30.0
) -> None:
    """Poll `check` until true; fail early if `proc` dies, or after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        if not proc.alive():
            raise ChainError(
                f"{proc.name} exited with {proc.popen.returncode} while waiting for "
                f"{what}\n{proc.log_tail()}"
            )
        try:
            if check():
                return
        except Exception as exc:  # any failure of a probe just means "not yet"
            last_error = exc
        if time.monotonic() > deadline:
            raise ChainError(
                f"timed out after {timeout:.0f}s waiting for {what}"
                + (f" (last error: {last_error!r})" if last_error else "")
                + f"\n{proc.log_tail()}"
            )
        time.sleep(0.2)
