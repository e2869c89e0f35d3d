"""Helpers shared by the benchmark scripts in bench/ (standard library only).

  machine_facts()   CPU model, cores, memory, kernel and host name of this machine.
  free_port()       a TCP port on 127.0.0.1 that nothing listens on right now.
  strom_binary()    the `strom` binary to run: an explicit path, $STROM_BIN, or target/release/strom.
  Broker            one `strom server` on 127.0.0.1 in its own process group: start (waiting for the
                    port with a bounded timeout), stop with SIGTERM (SIGKILL if it hangs), kill.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STROM = ROOT / "target" / "release" / "strom"


def machine_facts() -> dict:
    """cpu, cores, memory_gib (None if unknown), kernel, hostname."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "memory_gib": None if mem_kib is None else round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "hostname": socket.gethostname(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def strom_binary(path: str | os.PathLike | None = None) -> str:
    """The strom binary: `path` if given, else $STROM_BIN, else target/release/strom.
    Exits with a message naming the build command when it is missing."""
    explicit = path if path is not None else os.environ.get("STROM_BIN")
    if explicit:
        if not os.access(explicit, os.X_OK):
            sys.exit(f"no executable strom binary at {explicit}: run `cargo build --release -p strom`")
        return str(explicit)
    if not os.access(DEFAULT_STROM, os.X_OK):
        sys.exit("no target/release/strom: run `cargo build --release -p strom` (or set STROM_BIN)")
    return str(DEFAULT_STROM)


def port_open(port: int, timeout_s: float = 0.5) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout_s).close()
        return True
    except OSError:
        return False


class BrokerError(Exception):
    """The broker could not be started: it exited, or (timed_out) its port stayed closed."""

    def __init__(self, message: str, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


class Broker:
    """One `strom server` listening on 127.0.0.1:port with `data_dir`, its output appended to
    `log_path`. `sets` are broker properties passed as `--set KEY=VALUE`. The process runs in its
    own session, so a Ctrl-C aimed at the calling script does not reach it: call stop() or kill()."""

    def __init__(self, binary: str, data_dir: os.PathLike, *, log_path: os.PathLike,
                 port: int | None = None, sets: dict | None = None, env: dict | None = None):
        self.binary = binary
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.sets = dict(sets or {})
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log = None

    def argv(self) -> list[str]:
        argv = [self.binary, "server", "--listen", self.bootstrap, "--data-dir", str(self.data_dir)]
        for key, value in self.sets.items():
            argv += ["--set", f"{key}={value}"]
        return argv

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 30.0, poll_s: float = 0.05) -> float:
        """Starts the server and waits until its port accepts connections (tried every poll_s);
        returns the seconds that took. Raises BrokerError if it exits first or the port stays closed
        for timeout_s."""
        if self.alive():
            raise BrokerError("strom server is already running")
        if self.log is None or self.log.closed:
            self.log = open(self.log_path, "ab")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv(), stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=self.env,
        )
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if port_open(self.port):
                return time.monotonic() - started
            if self.proc.poll() is not None:
                raise BrokerError(f"strom server exited with {self.proc.returncode}")
            time.sleep(poll_s)
        self._signal_and_wait(signal.SIGKILL, 30)
        raise BrokerError(f"strom server did not start within {timeout_s:g} s", timed_out=True)

    def _signal_and_wait(self, sig: int, timeout_s: float) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                if sig == signal.SIGKILL:
                    raise
                return self._signal_and_wait(signal.SIGKILL, 30)
        return self.proc.returncode

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (a clean shutdown), SIGKILL if the server has not exited after timeout_s.
        Returns its exit status."""
        code = self._signal_and_wait(signal.SIGTERM, timeout_s)
        self._close_log()
        return code

    def kill(self) -> int | None:
        """SIGKILL: an unclean stop."""
        code = self._signal_and_wait(signal.SIGKILL, 30)
        self._close_log()
        return code

    def _close_log(self):
        if self.log is not None and not self.log.closed:
            self.log.close()
