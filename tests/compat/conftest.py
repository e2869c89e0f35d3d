"""Fixtures for the real-client compatibility suite: a spawned `strom server` per test.

Each test gets its own broker process on a free loopback port with a fresh data dir. The
broker is started in its own process group and the whole group is SIGKILLed on teardown,
whatever the test did. A broker that exits by itself during a test (a panic, an abort) makes
the test error at teardown, with the tail of its log, so crashes never hide behind a passing
client-side assertion. When a test fails, the broker log tail is printed with the report.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from compatlib import built

ROOT = Path(__file__).resolve().parents[2]
COMPAT = Path(__file__).resolve().parent
DEPS = COMPAT / ".deps"
JARS = DEPS / "jars"
CLASSES = DEPS / "classes"

# How long a broker may take from spawn to printing its listening line.
BROKER_START_TIMEOUT_S = 30.0
LISTENING_LINE = "strom server listening on {addr}"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Variables of this harness (and scripts/test.sh) that must not reach the broker's environment.
HARNESS_ENV = {"STROM_BIN", "STROM_SEED_FILE", "STROM_TEST_SKIP_SETUP"}

# Every broker ever started, so none outlives pytest even if a teardown was skipped.
_ALL_SERVERS: list["StromServer"] = []


@atexit.register
def _kill_leftover_brokers() -> None:
    for server in _ALL_SERVERS:
        if server.proc is not None and server.proc.poll() is None:
            try:
                os.killpg(server.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def strom_binary() -> Path:
    """The broker under test: $STROM_BIN, else target/<profile>/strom (compatlib.built)."""
    env = os.environ.get("STROM_BIN")
    if env:
        path = Path(env)
        if not path.is_absolute():
            path = (Path.cwd() / path).resolve()
        if not os.access(path, os.X_OK):
            pytest.fail(f"STROM_BIN={env} is not an executable file")
        return path
    path = built("strom")
    if path is not None:
        return path
    pytest.fail(
        "no strom binary: run `cargo build --release -p strom` (or set STROM_BIN)",
        pytrace=False,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class StromServer:
    """One `strom server` process; can be SIGKILLed and restarted on the same dir and port."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, port: int, settings: dict):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = port
        self.settings = dict(settings)
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        # True while the process is expected to be gone (killed by us, not crashed).
        self._killed_on_purpose = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            str(self.binary),
            "server",
            "--listen",
            self.bootstrap,
            "--advertise",
            self.bootstrap,
            "--data-dir",
            str(self.data_dir),
        ]
        for key, value in self.settings.items():
            cmd += ["--set", f"{key}={value}"]
        return cmd

    def start(self, timeout_s: float = BROKER_START_TIMEOUT_S) -> None:
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts + 1}: {' '.join(self.command())}\n".encode())
            # Flush before the broker writes to the same file, so its output lands after the header.
            log.flush()
            log_offset = log.tell()
            # The broker reads STROM_* variables as its own settings; hide the harness's.
            env = {k: v for k, v in os.environ.items() if k not in HARNESS_ENV and not k.startswith("STROM_COMPAT_")}
            env.setdefault("NO_COLOR", "1")
            env.setdefault("RUST_BACKTRACE", "1")
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killpg reaches every child
                env=env,
            )
        self.starts += 1
        if self not in _ALL_SERVERS:
            _ALL_SERVERS.append(self)
        self._killed_on_purpose = False
        wanted = LISTENING_LINE.format(addr=self.bootstrap)
        deadline = time.monotonic() + timeout_s
        while True:
            text = self._log_since(log_offset)
            if wanted in text:
                return
            if self.proc.poll() is not None:
                self._killed_on_purpose = True  # reported here, not again at teardown
                raise RuntimeError(
                    f"strom server exited with {self.proc.returncode} before listening\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"strom server did not print {wanted!r} within {timeout_s:.0f}s\n"
                    + self.log_tail()
                )
            time.sleep(0.05)

    def _log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return ANSI_ESCAPE.sub("", f.read().decode("utf-8", "replace"))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the broker's whole process group and reap it (SIGKILL: an unclean stop)."""
        self._killed_on_purpose = True
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def restart(self) -> None:
        self.start()

    def crashed(self) -> bool:
        """True if the broker exited without us killing it."""
        return (
            self.proc is not None
            and self.proc.poll() is not None
            and not self._killed_on_purpose
        )

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return "(no broker log)"
        tail = "\n".join(ANSI_ESCAPE.sub("", text).splitlines()[-lines:])
        return f"--- broker log tail ({self.log_path}) ---\n{tail}\n--- end of broker log ---"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture
def strom_factory(request, tmp_path):
    """Starts brokers on demand: `strom_factory(settings={...}, port=None)`.

    Every broker started through it is killed (process group, SIGKILL) at teardown.
    """
    binary = strom_binary()
    servers: list[StromServer] = []

    def start(settings: dict | None = None, port: int | None = None) -> StromServer:
        n = len(servers)
        server = StromServer(
            binary=binary,
            data_dir=tmp_path / f"strom-data-{n}",
            log_path=tmp_path / f"strom-{n}.log",
            port=port if port is not None else free_port(),
            settings=settings or {},
        )
        servers.append(server)
        server.start()
        return server

    yield start

    crashed = [s for s in servers if s.crashed()]
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for server in servers:
        if failed or server in crashed:
            print(server.log_tail())
        server.kill()
    if crashed:
        codes = ", ".join(f"{s.bootstrap}: exit {s.proc.returncode}" for s in crashed)
        pytest.fail(f"strom server exited on its own during the test ({codes})", pytrace=False)


@pytest.fixture
def strom(strom_factory) -> StromServer:
    """A fresh broker with default settings on a free port."""
    return strom_factory()


@pytest.fixture
def bootstrap(strom) -> str:
    return strom.bootstrap


# ------------------------------------------------------------------ Java


def java_sources_hash() -> str:
    """Same rule as scripts/setup-test-deps.sh: contents of java/*.java sorted by name, then jars.sha256."""
    h = hashlib.sha256()
    for src in sorted((COMPAT / "java").glob("*.java"), key=lambda p: p.name.encode()):
        h.update(src.read_bytes())
    h.update((COMPAT / "jars.sha256").read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="session")
def java_classpath() -> str:
    """Classpath with the kafka-clients 3.9.1 jars and our compiled programs (compiled lazily)."""
    jars = sorted(JARS.glob("*.jar"))
    if not any(j.name == "kafka-clients.jar" for j in jars):
        pytest.fail(f"{JARS} has no kafka-clients.jar: run scripts/setup-test-deps.sh", pytrace=False)
    marker = CLASSES / ".sources.sha256"
    want = java_sources_hash()
    if not marker.exists() or marker.read_text().strip() != want:
        CLASSES.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["javac", "-encoding", "UTF-8", "-nowarn", "-d", str(CLASSES), "-cp", f"{JARS}/*"]
            + [str(p) for p in sorted((COMPAT / "java").glob("*.java"))],
            check=True,
        )
        marker.write_text(want + "\n")
    return f"{CLASSES}:{JARS}/*"
