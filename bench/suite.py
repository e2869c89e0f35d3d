#!/usr/bin/env python3
"""Strom's benchmark suite: the machine's limits and every performance shape in one run, with the
ratios the performance targets are judged by.

  limits  machine_limits.py on the disk the brokers use: fio sequential write, fio 4 KiB write +
          fdatasync latency, iperf3 over 127.0.0.1 (fio and iperf3 are installed with apt-get if
          missing; STROM_BENCH_NO_INSTALL=1 refuses instead).
  a       `strom perf produce`, 1 KiB records (--records of them), acks=all, 8 partitions,
          unlimited rate, 1 producer and then 4 producers; broker defaults (no fsync per message,
          the OS flushes).
  b       the same two runs on a topic with flush.messages=1 (fsync before acknowledgement,
          group commit), with fewer records (--fsync-records).
  c       `strom perf produce`, 100-byte records, 8 partitions, 1 producer, no fsync.
  d       `strom perf consume` of the 1 KiB topic of (a, 1 producer), from the page cache.
  e       at half the highest rate this machine sustains, 1 KiB records, acks=all, with the
          producer's linger.ms of (a), 5 ms (--e2e-linger-ms; the e2e tool alone uses 0): `strom perf
          produce` for the acknowledgement latency, then `strom perf e2e` for send-to-receive latency.
          The highest sustained rate is (a, 1 producer)'s, or the disk's sequential write bandwidth
          in 1 KiB records when that is lower: (a) is a burst the page cache absorbs, and a longer
          run above what the disk writes back only queues.
  f       idle partitions: a fresh broker's VmRSS before and after creating 10,000 partitions
          (10 topics x 1,000), plus its open files and CPU use while idle.
  g       restart with a large log: --restart-log-bytes (default 10 GiB) of 1 KiB records, then
          SIGKILL and a timed start (unclean: recovery), then SIGTERM and a timed start (clean).
          A start is timed from spawning the server until a Metadata request is answered; the log
          end offsets are checked after each.
  h       overload: 50 `strom perf produce` processes at once (unlimited rate, 1 KiB, acks=all)
          against a broker with queued.max.request.bytes=--overload-limit; its VmRSS is sampled
          every 100 ms and its peak compared with the limit.

Before each shape the suite calls sync(2) and waits SETTLE_S seconds, so that no shape runs while the
kernel writes back what an earlier one (or fio) left dirty.

Every broker is `strom server` (--strom, else $STROM_BIN, else target/release/strom) on a free
port of 127.0.0.1 with a fresh data directory under --dir (default: a scratch directory under
target/, so on the project's disk; removed at the end unless --keep). Shapes a-e share one
broker; f, g and h get their own. The open-files limit is raised first (to the hard limit; as
root, up to 262,144), since a broker keeps a few files open per partition. Every tool run has a
timeout; a shape that fails is recorded with its error and the suite goes on with the next.

Writes a JSON file (--out; default bench/results/suite.json, or suite-quick.json for --quick)
with the date, the machine, the git commit, each shape's durability mode, command and figures as
the tools report them (records/s, MB/s of 1048576 bytes, latency avg/p50/p95/p99/p99.9/max in
ms), and the ratios the targets are judged by; prints the same as tables. Exits 1 if a shape
failed or is incomplete, 130 if interrupted (the results so far are still written). Standard
library only: no .venv needed.

    cargo build --release -p strom
    python3 bench/suite.py --quick              # smoke run: a minute or two, small sizes
    python3 bench/suite.py                      # the full run (10-20 minutes, ~12 GiB of disk)
    python3 bench/suite.py --only a,d,e --records 500000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import machine_limits
from benchlib import ROOT, Broker, machine_facts, strom_binary

PARTITIONS = 8
KIB = 1024
MIB = 2**20
GIB = 2**30
ALL_SHAPES = ["limits", "a", "b", "c", "d", "e", "f", "g", "h"]

SETTLE_S = 2  # pause after the sync(2) that starts every shape

NO_FSYNC = "no fsync per message (broker default: the OS flushes)"
FSYNC = "fsync before acknowledgement (topic flush.messages=1, group commit)"

# Sizes of the full run and of --quick.
FULL = {
    "records": 1_000_000,           # 1 KiB records per produce run of a, read back by d; c sends 2x
    "fsync_records": 600_000,       # 1 KiB records per produce run of b
    "e2e_seconds": 30,              # e runs this long at its target rate
    "idle_topics": 10,
    "idle_partitions_per_topic": 1000,
    "idle_wait_s": 5,
    "restart_log_bytes": 10 * GIB,
    "overload_clients": 50,
    "overload_records_per_client": 20_000,
    "fio_size": "2G",
    "fio_sync_size": "32M",
    "loopback_seconds": 5,
}
QUICK = {
    "records": 200_000,
    "fsync_records": 10_000,
    "e2e_seconds": 5,
    "idle_topics": 10,
    "idle_partitions_per_topic": 100,
    "idle_wait_s": 3,
    "restart_log_bytes": 200 * MIB,
    "overload_clients": 10,
    "overload_records_per_client": 20_000,
    "fio_size": "256M",
    "fio_sync_size": "4M",
    "loopback_seconds": 2,
}


class ShapeError(Exception):
    """A shape could not produce its figures."""


# --------------------------------------------------------------------------------------------
# Child processes: every one is tracked so that an error or Ctrl-C never leaves one running.

CHILDREN: set[subprocess.Popen] = set()


def kill_child(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


def spawn(argv: list[str], **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)
    CHILDREN.add(proc)
    return proc


def run_tool(argv: list[str], timeout_s: float) -> tuple[int, str, str, float]:
    """Runs argv with a timeout; returns (exit status, stdout, stderr, wall seconds)."""
    started = time.monotonic()
    proc = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_child(proc)
        out, err = proc.communicate()
        raise ShapeError(f"`{short(argv)}` did not finish within {timeout_s:.0f} s; "
                         f"stderr: {tail(err.decode(errors='replace'))}")
    finally:
        kill_child(proc)
        CHILDREN.discard(proc)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"), \
        time.monotonic() - started


def short(argv: list[str]) -> str:
    """The command line with the binary's path shortened to `strom`."""
    return " ".join(["strom" if i == 0 else a for i, a in enumerate(argv)])


def tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def last_json(stdout: str) -> dict | None:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def kill_all_children() -> None:
    for proc in list(CHILDREN):
        kill_child(proc)
        CHILDREN.discard(proc)


# --------------------------------------------------------------------------------------------
# Facts about a running broker.

def proc_status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/PID/status (VmRSS, VmHWM, ...) and Threads."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if key.startswith("Vm") and len(parts) == 2 and parts[1] == "kB":
            fields[key] = int(parts[0])
        elif key == "Threads":
            fields[key] = int(parts[0])
    return fields


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_files(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def kafka_request(port: int, api_key: int, version: int, body: bytes, timeout_s: float = 2.0) -> bytes:
    """One request with a v1 (non-flexible) header on a fresh connection; the response after its
    correlation id. Raises OSError when it is not answered."""
    client_id = b"strom-bench-suite"
    correlation = 7
    header = struct.pack(">hhih", api_key, version, correlation, len(client_id)) + client_id
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        size = struct.unpack(">i", recv_exact(sock, 4))[0]
        answer = recv_exact(sock, size)
    if len(answer) < 4 or struct.unpack(">i", answer[:4])[0] != correlation:
        raise OSError("unexpected answer")
    return answer[4:]


def metadata_answers(port: int) -> bool:
    """True if a Metadata v1 request for no topics is answered with at least one broker."""
    try:
        answer = kafka_request(port, 3, 1, struct.pack(">i", 0))
    except (OSError, struct.error):
        return False
    return len(answer) >= 4 and struct.unpack(">i", answer[:4])[0] >= 1


def log_end_offsets(port: int, topic: str, partitions: int) -> dict[int, int]:
    """The latest offset of each partition of `topic` (ListOffsets v1)."""
    name = topic.encode()
    body = struct.pack(">iih", -1, 1, len(name)) + name + struct.pack(">i", partitions)
    body += b"".join(struct.pack(">iq", p, -1) for p in range(partitions))
    answer = kafka_request(port, 2, 1, body, timeout_s=30)
    offsets, pos = {}, 0
    (topics,) = struct.unpack_from(">i", answer, pos)
    pos += 4
    for _ in range(topics):
        (length,) = struct.unpack_from(">h", answer, pos)
        pos += 2 + length
        (count,) = struct.unpack_from(">i", answer, pos)
        pos += 4
        for _ in range(count):
            partition, error, _timestamp, offset = struct.unpack_from(">ihqq", answer, pos)
            pos += 22
            if error != 0:
                raise ShapeError(f"ListOffsets {topic}-{partition}: error {error}")
            offsets[partition] = offset
    return offsets


# --------------------------------------------------------------------------------------------

def fmt_num(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def budget_s(data_bytes: float, floor_s: float = 120, rate: float = 2 * MIB) -> float:
    """A generous timeout for moving data_bytes: floor_s plus the time at `rate` bytes/s."""
    return floor_s + data_bytes / rate


def git_commit() -> dict:
    def git(*argv):
        proc = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, timeout=30)
        return proc.stdout.strip() if proc.returncode == 0 else None
    try:
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def raise_open_files_limit(want: int = 262_144) -> int:
    """Raises this process's open-files limit, inherited by the brokers and tools: the soft limit
    to the hard one, and as root both to `want` (at most fs.nr_open), as a Kafka host is set up:
    a broker keeps a few files open per partition. Returns the soft limit now in force."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    target = hard
    if os.geteuid() == 0 and hard != resource.RLIM_INFINITY and hard < want:
        try:
            target = min(want, int(Path("/proc/sys/fs/nr_open").read_text()))
        except (OSError, ValueError):
            pass
    for limit in (target, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def broker_env() -> dict:
    """This environment without STROM_* variables except STROM_LOG: brokers run with their defaults
    plus what the suite sets."""
    return {k: v for k, v in os.environ.items() if not k.startswith("STROM_") or k == "STROM_LOG"}


class Suite:
    def __init__(self, args, sizes: dict, binary: str, base: Path):
        self.args = args
        self.sizes = sizes
        self.binary = binary
        self.base = base
        self.brokers: list[Broker] = []
        self.main: Broker | None = None
        self.main_count = 0
        self.notes: list[str] = []
        self.a1: dict | None = None          # (a, 1 producer): topic, broker, records, rate
        self.results: dict = {"machine_limits": None, "shapes": {}}

    # ---- brokers and tools

    def new_broker(self, name: str, sets: dict | None = None) -> Broker:
        directory = self.base / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        broker = Broker(self.binary, directory / "data", log_path=directory / "server.log",
                        sets=sets, env=broker_env())
        self.brokers.append(broker)
        broker.start(timeout_s=60)
        deadline = time.monotonic() + 30
        while not metadata_answers(broker.port):
            if time.monotonic() > deadline or not broker.alive():
                raise ShapeError(f"broker {name} does not answer Metadata requests")
            time.sleep(0.05)
        return broker

    def retire(self, broker: Broker) -> None:
        """Stops a broker and, unless --keep, removes its directory."""
        broker.stop(timeout_s=60)
        if not self.args.keep:
            shutil.rmtree(broker.data_dir.parent, ignore_errors=True)

    def main_broker(self) -> Broker:
        """The broker of shapes a-e; a fresh one if it is not running (it died in an earlier shape)."""
        if self.main is not None and not self.main.alive():
            note = f"the broker of shapes a-e exited with {self.main.proc.returncode}; started a fresh one"
            self.notes.append(note)
            print(f"   note: {note}", flush=True)
            self.main.stop()
            self.main = None
            self.a1 = None
        if self.main is None:
            self.main_count += 1
            self.main = self.new_broker(f"main-{self.main_count}")
        return self.main

    def create_topic(self, broker: Broker, name: str, partitions: int, configs: dict | None = None,
                     timeout_s: float = 60) -> float:
        argv = [self.binary, "topic", "create", name, "--partitions", str(partitions),
                "--bootstrap-server", broker.bootstrap]
        for key, value in (configs or {}).items():
            argv += ["--config", f"{key}={value}"]
        code, _, err, wall = run_tool(argv, timeout_s)
        if code != 0:
            raise ShapeError(f"`{short(argv)}` exited {code}: {tail(err)}")
        return wall

    def produce(self, broker: Broker, topic: str, records: int, size: int, producers: int = 1,
                timeout_s: float | None = None) -> dict:
        argv = [self.binary, "perf", "produce", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                "--num-records", str(records), "--record-size", str(size), "--throughput", "-1",
                "--producer-props", "acks=all", "--producers", str(producers), "--json"]
        code, out, err, wall = run_tool(argv, timeout_s or budget_s(records * size))
        figures = last_json(out)
        if code != 0 or figures is None:
            raise ShapeError(f"`{short(argv)}` exited {code}: {tail(err)}")
        return {"command": short(argv), "figures": figures, "process_wall_s": round(wall, 3)}

    # ---- the shapes

    def limits(self) -> dict:
        machine_limits.ensure_tools()
        scratch = self.base / "fio"
        scratch.mkdir(parents=True, exist_ok=True)
        try:
            figures = {
                "seq_write": machine_limits.seq_write(scratch, machine_limits.parse_size(self.sizes["fio_size"])),
                "fdatasync": machine_limits.fdatasync_latency(
                    scratch, machine_limits.parse_size(self.sizes["fio_sync_size"])),
                "loopback": machine_limits.loopback(self.sizes["loopback_seconds"]),
            }
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        figures["directory"] = str(self.base)
        return figures

    def shape_produce_1k(self, producers: int, fsync: bool) -> dict:
        broker = self.main_broker()
        records = self.sizes["fsync_records" if fsync else "records"]
        topic = f"{'fsync' if fsync else 'produce'}-1k-p{producers}"
        self.create_topic(broker, topic, PARTITIONS, {"flush.messages": 1} if fsync else None)
        # An fsync per append can be far slower than the page cache: a longer bound.
        timeout_s = budget_s(records * KIB, rate=MIB) if fsync else None
        run = self.produce(broker, topic, records, KIB, producers, timeout_s=timeout_s)
        if producers == 1 and not fsync:
            self.a1 = {"broker": broker, "topic": topic, "records": run["figures"]["records"],
                       "records_per_sec": run["figures"]["records_per_sec"]}
        return {
            "shape": {"records": records, "record_size": KIB, "partitions": PARTITIONS, "producers": producers,
                      "acks": "all", "throughput": "unlimited",
                      "topic_configs": {"flush.messages": 1} if fsync else {}},
            **run,
        }

    def shape_produce_100b(self) -> dict:
        broker = self.main_broker()
        records = 2 * self.sizes["records"]
        self.create_topic(broker, "produce-100b-p1", PARTITIONS)
        run = self.produce(broker, "produce-100b-p1", records, 100, 1)
        return {
            "shape": {"records": records, "record_size": 100, "partitions": PARTITIONS, "producers": 1,
                      "acks": "all", "throughput": "unlimited"},
            **run,
        }

    def a1_source(self) -> tuple[dict, dict | None]:
        """The 1 KiB topic of (a, 1 producer) on the running broker, produced now if (a) did not run."""
        broker = self.main_broker()
        if self.a1 is not None and self.a1["broker"] is broker:
            return self.a1, None
        topic = "setup-1k-p1"
        self.create_topic(broker, topic, PARTITIONS)
        setup = self.produce(broker, topic, self.sizes["records"], KIB, 1)
        self.a1 = {"broker": broker, "topic": topic, "records": setup["figures"]["records"],
                   "records_per_sec": setup["figures"]["records_per_sec"]}
        return self.a1, {"note": "(a, 1 producer) did not run on this broker: produced the topic first",
                         **setup}

    def shape_consume(self) -> dict:
        source, setup = self.a1_source()
        broker = self.main_broker()
        records = source["records"]
        argv = [self.binary, "perf", "consume", "--bootstrap-server", broker.bootstrap, "--topic",
                source["topic"], "--messages", str(records), "--json"]
        code, out, err, wall = run_tool(argv, budget_s(records * KIB, floor_s=120))
        figures = last_json(out)
        if code != 0 or figures is None:
            raise ShapeError(f"`{short(argv)}` exited {code}: {tail(err)}")
        result = {
            "shape": {"records": records, "record_size": KIB, "partitions": PARTITIONS,
                      "source": f"topic {source['topic']} of (a, 1 producer)", "from": "page cache"},
            "command": short(argv), "figures": figures, "process_wall_s": round(wall, 3),
        }
        if setup:
            result["setup"] = setup
        if figures.get("records") != records:
            raise ShapeError(f"read {figures.get('records')} of {records} records: {tail(err)}")
        return result

    def shape_e2e(self) -> dict:
        return self.half_rate_run("e2e", "e2e-1k")

    def shape_produce_ack(self) -> dict:
        return self.half_rate_run("produce", "ack-1k")

    def half_rate_run(self, tool: str, topic: str) -> dict:
        """`strom perf TOOL` (produce: acknowledgement latency; e2e: send-to-receive latency) at half the
        record rate of (a, 1 producer), for --e2e-seconds."""
        source, setup = self.a1_source()
        broker = self.main_broker()
        highest, basis = source["records_per_sec"], f"(a, 1 producer): {source['records_per_sec']:.0f} records/s"
        limits = self.results.get("machine_limits") or {}
        seq = (limits.get("seq_write") or {}).get("mb_per_sec") if limits.get("status") == "ok" else None
        if seq and seq * MIB / KIB < highest:
            highest = seq * MIB / KIB
            basis = (f"the disk's sequential write bandwidth, {seq} MiB/s = {highest:.0f} records/s of 1 KiB, "
                     f"below (a, 1 producer)'s {source['records_per_sec']:.0f} records/s")
        rate = round(highest / 2)
        if rate < 1:
            raise ShapeError(f"no usable maximum rate from (a, 1 producer): {source['records_per_sec']}")
        records = max(1000, int(rate * self.sizes["e2e_seconds"]))
        self.create_topic(broker, topic, PARTITIONS)
        argv = [self.binary, "perf", tool, "--bootstrap-server", broker.bootstrap, "--topic", topic,
                "--num-records", str(records), "--record-size", str(KIB), "--throughput", str(rate),
                "--producer-props", "acks=all", f"linger.ms={self.args.e2e_linger_ms}", "--json"]
        code, out, err, wall = run_tool(argv, records / rate * 3 + 120)
        figures = last_json(out)
        result = {
            "shape": {"records": records, "record_size": KIB, "partitions": PARTITIONS, "acks": "all",
                      "linger_ms": self.args.e2e_linger_ms, "target_records_per_sec": rate,
                      "rate_basis": f"half of {basis}"},
            "command": short(argv), "figures": figures, "process_wall_s": round(wall, 3),
        }
        if setup:
            result["setup"] = setup
        if code != 0 or figures is None:
            raise ShapeError(f"`{short(argv)}` exited {code}: {tail(err)}")
        if figures["records_per_sec"] < 0.9 * rate:
            result["warning"] = (f"the run fell behind its target: {figures['records_per_sec']:.0f} of "
                                 f"{rate} records/s, so the latency includes queueing")
        return result

    def shape_idle_partitions(self) -> dict:
        topics = self.sizes["idle_topics"]
        per_topic = self.sizes["idle_partitions_per_topic"]
        broker = self.new_broker("idle-partitions")
        try:
            time.sleep(2)
            before = proc_status(broker.pid)
            files_before = open_files(broker.pid)
            created, create_s, creation_error, warning = 0, [], None, None
            deadline = time.monotonic() + (300 if self.args.quick else 1800)
            for i in range(topics):
                left = deadline - time.monotonic()
                try:
                    if left <= 0:
                        raise ShapeError("creating the topics took too long")
                    create_s.append(round(self.create_topic(broker, f"idle-{i:02d}", per_topic,
                                                            timeout_s=min(left, 600)), 2))
                except ShapeError as e:
                    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
                    creation_error = (f"{e} (after {created} partitions; the broker has "
                                      f"{open_files(broker.pid)} files open, limit {limit})")
                    break
                created += per_topic
                if i == 0 and files_before is not None:
                    per_partition = (open_files(broker.pid) - files_before) / per_topic
                    projected = files_before + per_partition * topics * per_topic
                    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
                    if projected > limit:
                        warning = (f"{per_partition:.1f} open files per partition: {topics * per_topic:,} "
                                   f"partitions need about {projected:,.0f}, over the limit of {limit:,}")
                        print(f"   warning: {warning}", flush=True)
            if created == 0:
                raise ShapeError(creation_error)
            settled = time.monotonic()
            cpu_start = cpu_seconds(broker.pid)
            time.sleep(self.sizes["idle_wait_s"])
            idle_cpu = (cpu_seconds(broker.pid) - cpu_start) / (time.monotonic() - settled)
            after = proc_status(broker.pid)
            files_after = open_files(broker.pid)
            if not broker.alive():
                raise ShapeError(f"the broker exited with {broker.proc.returncode}")
        finally:
            self.retire(broker)
        result = {
            "shape": {"topics": topics, "partitions_per_topic": per_topic, "partitions": topics * per_topic,
                      "idle_wait_s": self.sizes["idle_wait_s"]},
            "figures": {
                "partitions": created,
                "rss_mb_before": round(before["VmRSS"] / 1024, 1),
                "rss_mb_after": round(after["VmRSS"] / 1024, 1),
                "rss_kib_per_partition": round((after["VmRSS"] - before["VmRSS"]) / created, 1),
                "open_files_before": files_before,
                "open_files_after": files_after,
                "threads_after": after.get("Threads"),
                "idle_cpu_percent": round(100 * idle_cpu, 1),
                "create_seconds_per_topic": create_s,
                "create_seconds_total": round(sum(create_s), 2),
            },
        }
        if creation_error:
            result["error_detail"] = creation_error
        if warning:
            result["warning"] = warning
        return result

    def timed_start(self, broker: Broker) -> dict:
        """Starts a stopped broker on its directory; seconds until its port accepts and until it
        answers a Metadata request."""
        timeout_s = self.args.restart_timeout
        started = time.monotonic()
        port_s = broker.start(timeout_s=timeout_s, poll_s=0.005)
        while not metadata_answers(broker.port):
            if not broker.alive():
                raise ShapeError(f"the restarted broker exited with {broker.proc.returncode}")
            if time.monotonic() - started > timeout_s:
                raise ShapeError(f"the restarted broker did not answer Metadata within {timeout_s} s")
            time.sleep(0.005)
        return {"port_open_s": round(port_s, 3), "metadata_s": round(time.monotonic() - started, 3)}

    def shape_restart(self) -> dict:
        log_bytes = self.sizes["restart_log_bytes"]
        records = max(1, log_bytes // KIB)
        free = shutil.disk_usage(self.base).free
        if free < log_bytes * 1.2 + GIB:
            raise ShapeError(f"{free / GIB:.1f} GiB free under {self.base}; the restart log needs "
                             f"{log_bytes * 1.2 / GIB + 1:.1f} GiB")
        broker = self.new_broker("restart")
        try:
            self.create_topic(broker, "restart", PARTITIONS)
            fill = self.produce(broker, "restart", records, KIB, 1)
            on_disk = dir_bytes(broker.data_dir)
            offsets = {"after_fill": sum(log_end_offsets(broker.port, "restart", PARTITIONS).values())}

            code = broker.kill()
            unclean = self.timed_start(broker)
            unclean["stopped_with"] = f"SIGKILL (exit {code})"
            offsets["after_unclean_restart"] = sum(log_end_offsets(broker.port, "restart", PARTITIONS).values())

            # The server installs its SIGTERM handler only after it starts serving: a SIGTERM in the
            # first moments after the first answer can still kill it outright (exit -15).
            time.sleep(1)
            stop_started = time.monotonic()
            code = broker.stop(timeout_s=300)
            stop_s = time.monotonic() - stop_started
            if code != 0:
                raise ShapeError(f"the broker exited with {code} on SIGTERM")
            clean = self.timed_start(broker)
            clean["stopped_with"] = "SIGTERM (exit 0)"
            clean["clean_stop_s"] = round(stop_s, 3)
            offsets["after_clean_restart"] = sum(log_end_offsets(broker.port, "restart", PARTITIONS).values())
        finally:
            self.retire(broker)
        result = {
            "shape": {"records": records, "record_size": KIB, "partitions": PARTITIONS,
                      "log_bytes_requested": log_bytes, "order": "fill, SIGKILL, start, SIGTERM, start"},
            "fill": fill,
            "figures": {
                "log_bytes_on_disk": on_disk,
                "unclean_restart_s": unclean["metadata_s"],
                "clean_restart_s": clean["metadata_s"],
                "unclean": unclean,
                "clean": clean,
                "log_end_offsets_total": offsets,
            },
        }
        if set(offsets.values()) != {records}:
            result["error_detail"] = f"the log end offsets should all total {records}: {offsets}"
        return result

    def shape_overload(self) -> dict:
        limit = machine_limits.parse_size(self.args.overload_limit)
        clients = self.sizes["overload_clients"]
        per_client = self.sizes["overload_records_per_client"]
        broker = self.new_broker("overload", sets={"queued.max.request.bytes": limit})
        logs = broker.data_dir.parent / "clients"
        logs.mkdir()
        procs: list[subprocess.Popen] = []
        stop = threading.Event()
        try:
            self.create_topic(broker, "overload", PARTITIONS)
            time.sleep(1)
            baseline = proc_status(broker.pid)
            try:  # resets VmHWM, the kernel's own peak of the RSS
                Path(f"/proc/{broker.pid}/clear_refs").write_text("5")
                hwm_reset = True
            except OSError:
                hwm_reset = False

            samples: list[tuple[float, int]] = []

            def sample():
                while not stop.is_set():
                    try:
                        samples.append((time.monotonic(), proc_status(broker.pid)["VmRSS"]))
                    except (OSError, KeyError):
                        return
                    stop.wait(0.1)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            argv = [self.binary, "perf", "produce", "--bootstrap-server", broker.bootstrap, "--topic",
                    "overload", "--num-records", str(per_client), "--record-size", str(KIB),
                    "--throughput", "-1", "--producer-props", "acks=all", "--json"]
            started = time.monotonic()
            for i in range(clients):
                with open(logs / f"{i}.out", "wb") as out, open(logs / f"{i}.err", "wb") as err:
                    procs.append(spawn(argv, stdout=out, stderr=err))
            deadline = started + budget_s(clients * per_client * KIB, floor_s=180)
            timed_out = 0
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    kill_child(proc)
                    timed_out += 1
            wall = time.monotonic() - started
            stop.set()
            sampler.join(5)
            after = proc_status(broker.pid) if broker.alive() else {}
            alive = broker.alive()
            runs = [last_json((logs / f"{i}.out").read_text(errors="replace")) for i in range(clients)]
            bad = [i for i, (r, p) in enumerate(zip(runs, procs)) if r is None or p.returncode != 0]
            first_error = tail((logs / f"{bad[0]}.err").read_text(errors="replace")) if bad else ""
        finally:
            stop.set()
            for proc in procs:
                kill_child(proc)
                CHILDREN.discard(proc)
            self.retire(broker)

        ok = [r for i, r in enumerate(runs) if i not in bad]
        delivered = sum(r.get("records", 0) for r in runs if r)
        failed_records = sum(r.get("failed", 0) for r in runs if r)
        peak_kib = max((kib for _, kib in samples), default=None)
        figures = {
            "clients": clients,
            "clients_ok": len(ok),
            "clients_timed_out": timed_out,
            "records_delivered": delivered,
            "records_failed": failed_records,
            "wall_s": round(wall, 3),
            "records_per_sec": round(delivered / wall, 1) if wall > 0 else None,
            "mb_per_sec": round(delivered * KIB / MIB / wall, 1) if wall > 0 else None,
            "client_p99_ms_max": max((r["p99_ms"] for r in ok), default=None),
            "client_max_latency_ms": max((r["max_latency_ms"] for r in ok), default=None),
            "limit_mb": round(limit / MIB, 1),
            "rss_mb_baseline": round(baseline["VmRSS"] / 1024, 1),
            "rss_mb_peak_sampled": None if peak_kib is None else round(peak_kib / 1024, 1),
            "rss_mb_peak_kernel": round(after["VmHWM"] / 1024, 1) if hwm_reset and "VmHWM" in after else None,
            "rss_samples": len(samples),
            "broker_alive_after": alive,
        }
        if peak_kib is not None:
            figures["rss_mb_peak_over_baseline"] = round((peak_kib - baseline["VmRSS"]) / 1024, 1)
        result = {
            "shape": {"clients": clients, "records_per_client": per_client, "record_size": KIB,
                      "partitions": PARTITIONS, "acks": "all", "throughput": "unlimited",
                      "broker_sets": {"queued.max.request.bytes": limit}, "rss_sample_interval_ms": 100},
            "command": f"{clients} x {short(argv)}",
            "figures": figures,
        }
        if not alive:
            raise ShapeError(f"the broker died under overload; figures so far: {figures}")
        if bad:
            result["error_detail"] = f"{len(bad)} of {clients} clients failed, e.g. #{bad[0]}: {first_error}"
        return result

    # ---- running

    def run_shape(self, key: str, title: str, durability: str, fn) -> None:
        print(f"== {key}: {title}", flush=True)
        # Each shape starts with nothing left for the kernel to write back from the one before (fio's files,
        # the previous shape's records), so its figures do not depend on the order the shapes run in.
        settle_start = time.monotonic()
        os.sync()
        time.sleep(SETTLE_S)
        started = time.monotonic()
        entry = {"title": title, "durability": durability, "status": "interrupted",
                 "settle_seconds": round(started - settle_start, 1)}
        self.results["shapes"][key] = entry
        try:
            entry.update(fn())
            entry["status"] = "partial" if "error_detail" in entry else "ok"
        except (Exception, SystemExit) as e:  # machine_limits exits with a message on failure
            entry["status"] = "failed"
            entry["error"] = str(e) or type(e).__name__
            print(f"   failed: {entry['error']}", flush=True)
        finally:
            entry["seconds"] = round(time.monotonic() - started, 1)
        if entry["status"] == "partial":
            print(f"   partial: {entry['error_detail']}", flush=True)
        if "warning" in entry:
            print(f"   warning: {entry['warning']}", flush=True)
        fig = entry.get("figures") or {}
        if "records_per_sec" in fig and "mb_per_sec" in fig:
            print(f"   {fig['records_per_sec']:,.0f} records/s, {fig['mb_per_sec']:.1f} MB/s "
                  f"({entry['seconds']} s)", flush=True)

    def run(self, selected: list[str]) -> None:
        if "limits" in selected:
            print("== limits: fio and iperf3 on this machine", flush=True)
            started = time.monotonic()
            self.results["machine_limits"] = {"status": "interrupted"}
            try:
                self.results["machine_limits"] = {"status": "ok", **self.limits()}
            except (Exception, SystemExit) as e:
                self.results["machine_limits"] = {"status": "failed", "error": str(e) or type(e).__name__}
                print(f"   failed: {self.results['machine_limits']['error']}", flush=True)
            finally:
                self.results["machine_limits"]["seconds"] = round(time.monotonic() - started, 1)
        plan = [
            ("a", "a_produce_1k_p1", "produce 1 KiB, 1 producer", NO_FSYNC,
             lambda: self.shape_produce_1k(1, fsync=False)),
            ("a", "a_produce_1k_p4", "produce 1 KiB, 4 producers", NO_FSYNC,
             lambda: self.shape_produce_1k(4, fsync=False)),
            ("b", "b_fsync_1k_p1", "produce 1 KiB, 1 producer, flush.messages=1", FSYNC,
             lambda: self.shape_produce_1k(1, fsync=True)),
            ("b", "b_fsync_1k_p4", "produce 1 KiB, 4 producers, flush.messages=1", FSYNC,
             lambda: self.shape_produce_1k(4, fsync=True)),
            ("c", "c_produce_100b_p1", "produce 100 B, 1 producer", NO_FSYNC, self.shape_produce_100b),
            ("d", "d_consume_1k", "consume 1 KiB from the page cache", "read path (data in the page cache)",
             self.shape_consume),
            ("e", "e_produce_ack_1k", "produce ack latency, 1 KiB, half the max rate", NO_FSYNC,
             self.shape_produce_ack),
            ("e", "e_e2e_1k", "e2e latency, 1 KiB, half the max rate", NO_FSYNC, self.shape_e2e),
            ("f", "f_idle_partitions", "idle partitions: broker memory", "n/a (idle)",
             self.shape_idle_partitions),
            ("g", "g_restart", "restart with a large log", NO_FSYNC, self.shape_restart),
            ("h", "h_overload", "overload vs queued.max.request.bytes", NO_FSYNC,
             self.shape_overload),
        ]
        for letter, key, title, durability, fn in plan:
            if letter in selected:
                self.run_shape(key, title, durability, fn)
        if self.main is not None:
            self.retire(self.main)
            self.main = None

    def close(self, quick_stop: bool = False) -> None:
        kill_all_children()
        for broker in self.brokers:
            if broker.alive():
                broker.stop(timeout_s=5 if quick_stop else 60)


# --------------------------------------------------------------------------------------------
# Ratios and tables.

def figure(shapes: dict, key: str, name: str):
    entry = shapes.get(key) or {}
    if entry.get("status") not in ("ok", "partial"):
        return None
    return (entry.get("figures") or {}).get(name)


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def target_ratios(results: dict) -> dict:
    shapes = results["shapes"]
    limits = results.get("machine_limits") or {}
    ok = limits.get("status") == "ok"
    seq = limits["seq_write"]["mb_per_sec"] if ok else None
    loop = limits["loopback"]["mb_per_sec"] if ok else None
    return {
        "produce_1k_p1_mb_per_sec_vs_seq_write": ratio(figure(shapes, "a_produce_1k_p1", "mb_per_sec"), seq),
        "produce_1k_p4_mb_per_sec_vs_seq_write": ratio(figure(shapes, "a_produce_1k_p4", "mb_per_sec"), seq),
        "consume_mb_per_sec_vs_loopback": ratio(figure(shapes, "d_consume_1k", "mb_per_sec"), loop),
        "fsync_p4_vs_no_fsync_p4_throughput": ratio(figure(shapes, "b_fsync_1k_p4", "records_per_sec"),
                                                   figure(shapes, "a_produce_1k_p4", "records_per_sec")),
        "fsync_p1_vs_no_fsync_p1_throughput": ratio(figure(shapes, "b_fsync_1k_p1", "records_per_sec"),
                                                   figure(shapes, "a_produce_1k_p1", "records_per_sec")),
        "produce_ack_p99_ms_at_half_max": figure(shapes, "e_produce_ack_1k", "p99_ms"),
        "e2e_p99_ms": figure(shapes, "e_e2e_1k", "p99_ms"),
        "idle_partitions": figure(shapes, "f_idle_partitions", "partitions"),
        "idle_partitions_rss_mb": figure(shapes, "f_idle_partitions", "rss_mb_after"),
        "restart_clean_s": figure(shapes, "g_restart", "clean_restart_s"),
        "restart_unclean_s": figure(shapes, "g_restart", "unclean_restart_s"),
        "overload_peak_rss_mb": figure(shapes, "h_overload", "rss_mb_peak_sampled"),
        "overload_limit_mb": figure(shapes, "h_overload", "limit_mb"),
        "overload_peak_rss_vs_limit": ratio(figure(shapes, "h_overload", "rss_mb_peak_sampled"),
                                            figure(shapes, "h_overload", "limit_mb")),
    }


def print_tables(results: dict) -> None:
    m = results["machine"]
    print()
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, kernel {m['kernel']}; "
          f"commit {(results['git']['commit'] or '?')[:12]}{' (dirty)' if results['git']['dirty'] else ''}; "
          f"{'quick' if results['quick'] else 'full'} run {results['date']}")
    limits = results.get("machine_limits")
    if limits and limits.get("status") == "ok":
        f = limits["fdatasync"]
        print(f"limits:  sequential write {limits['seq_write']['mb_per_sec']} MB/s; fdatasync "
              f"{f['syncs_per_sec']}/s (p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms); "
              f"loopback {limits['loopback']['mb_per_sec']} MB/s")
    elif limits:
        print(f"limits:  {limits['status']}: {limits.get('error', '')}")
    print()
    header = (f"{'shape':<50} {'durability':<9} {'records/s':>11} {'MB/s':>8} {'avg':>8} {'p50':>8} "
              f"{'p99':>8} {'p99.9':>8} {'max':>8}  (latency ms)")
    print(header)
    print("-" * len(header))
    for key, entry in results["shapes"].items():
        title = f"{key.split('_')[0]}  {entry['title']}"[:50]
        mode = {NO_FSYNC: "no fsync", FSYNC: "fsync"}.get(entry["durability"], entry["durability"].split(" ")[0])
        fig = entry.get("figures") or {}
        if entry["status"] in ("failed", "interrupted") and not fig:
            print(f"{title:<50} {mode:<9} {entry['status'].upper()}: {entry.get('error', '')[:120]}")
            continue
        if "records_per_sec" in fig and "p50_ms" in fig:
            print(f"{title:<50} {mode:<9} {fmt_num(fig['records_per_sec']):>11} {fig['mb_per_sec']:>8.1f} "
                  f"{fig['avg_latency_ms']:>8.2f} {fig['p50_ms']:>8.2f} {fig['p99_ms']:>8.2f} "
                  f"{fig['p999_ms']:>8.2f} {fig['max_latency_ms']:>8.2f}")
        elif key == "f_idle_partitions":
            print(f"{title:<50} {mode:<9} {fig['partitions']:,} partitions: RSS {fig['rss_mb_before']} -> "
                  f"{fig['rss_mb_after']} MB, {fig['open_files_after']} open files, "
                  f"idle CPU {fig['idle_cpu_percent']} %, created in {fig['create_seconds_total']} s")
        elif key == "g_restart":
            print(f"{title:<50} {mode:<9} {fig['log_bytes_on_disk'] / GIB:.2f} GiB log: unclean (SIGKILL) "
                  f"{fig['unclean_restart_s']} s, clean (SIGTERM) {fig['clean_restart_s']} s "
                  f"(clean stop {fig['clean']['clean_stop_s']} s)")
        elif key == "h_overload":
            print(f"{title:<50} {mode:<9} {fig['clients']} clients ({fig['clients_ok']} ok), "
                  f"{fmt_num(fig['records_per_sec'])} records/s, {fig['mb_per_sec']} MB/s: "
                  f"RSS peak {fig['rss_mb_peak_sampled']} MB (baseline {fig['rss_mb_baseline']}, "
                  f"kernel peak {fig['rss_mb_peak_kernel']}), limit {fig['limit_mb']} MB")
        if entry["status"] != "ok":
            print(f"{'':<50} {'':<9} {entry['status'].upper()}: "
                  f"{(entry.get('error') or entry.get('error_detail') or '')[:160]}")
        if "warning" in entry:
            print(f"{'':<50} {'':<9} WARNING: {entry['warning'][:160]}")
    r = results["ratios"]
    print()
    print("target ratios")
    rows = [
        ("produce 1 KiB, 1 producer / sequential write", r["produce_1k_p1_mb_per_sec_vs_seq_write"]),
        ("produce 1 KiB, 4 producers / sequential write", r["produce_1k_p4_mb_per_sec_vs_seq_write"]),
        ("consume / loopback", r["consume_mb_per_sec_vs_loopback"]),
        ("fsync / no fsync, 4 producers (records/s)", r["fsync_p4_vs_no_fsync_p4_throughput"]),
        ("fsync / no fsync, 1 producer (records/s)", r["fsync_p1_vs_no_fsync_p1_throughput"]),
        ("produce ack p99 ms at half the max rate", r["produce_ack_p99_ms_at_half_max"]),
        ("e2e p99 ms", r["e2e_p99_ms"]),
        (f"RSS MB with {fmt_num(r['idle_partitions'], 0)} idle partitions", r["idle_partitions_rss_mb"]),
        ("restart s, clean (SIGTERM)", r["restart_clean_s"]),
        ("restart s, unclean (SIGKILL)", r["restart_unclean_s"]),
        (f"overload peak RSS MB (limit {fmt_num(r['overload_limit_mb'])} MB)", r["overload_peak_rss_mb"]),
        ("overload peak RSS / limit", r["overload_peak_rss_vs_limit"]),
    ]
    for name, value in rows:
        shown = "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
        print(f"  {name:<50} {shown:>10}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run of a minute or two: small record counts, 1,000 idle partitions, "
                         "a 200 MiB restart log, 10 overload clients, short fio and iperf3")
    ap.add_argument("--only", metavar="SHAPE[,SHAPE]",
                    help=f"run only these ({','.join(ALL_SHAPES)}); ratios without their inputs are null")
    ap.add_argument("--strom", metavar="PATH",
                    help="the strom binary (default $STROM_BIN, else target/release/strom)")
    ap.add_argument("--dir", type=Path, metavar="DIR",
                    help="where the run's scratch directory (fio files, broker data) goes; default target/")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (broker data and logs)")
    ap.add_argument("--records", type=int, metavar="N",
                    help="1 KiB records per produce run of a, read back by d; the 100-byte shape c "
                         "sends twice as many (default 1,000,000; --quick 200,000)")
    ap.add_argument("--fsync-records", type=int, metavar="N",
                    help="1 KiB records per produce run of b (default 600,000; --quick 10,000)")
    ap.add_argument("--restart-log-bytes", type=machine_limits.parse_size, metavar="SIZE",
                    help="data written before the restarts of g, e.g. 10G (default 10G; --quick 200M)")
    ap.add_argument("--restart-timeout", type=float, default=900, metavar="S",
                    help="longest wait for a restarted broker to answer (default 900)")
    ap.add_argument("--e2e-linger-ms", type=int, default=5, metavar="MS",
                    help="linger.ms of the producer of e (default 5, the producer default that a's maximum "
                         "rate is measured with; perf e2e alone defaults to 0)")
    ap.add_argument("--overload-clients", type=int, metavar="N",
                    help="producer processes of h (default 50; --quick 10)")
    ap.add_argument("--overload-limit", default="32M", metavar="SIZE",
                    help="queued.max.request.bytes of the broker of h (default 32M)")
    ap.add_argument("--out", type=Path,
                    help="results JSON (default bench/results/suite.json; --quick: suite-quick.json, so a "
                         "smoke run never replaces a full run's figures)")
    args = ap.parse_args()

    if args.out is None:
        args.out = ROOT / "bench" / "results" / ("suite-quick.json" if args.quick else "suite.json")
    selected = ALL_SHAPES
    if args.only:
        selected = [s.strip().lower() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in selected if s not in ALL_SHAPES]
        if unknown:
            ap.error(f"unknown shape(s) {', '.join(unknown)}; choose from {', '.join(ALL_SHAPES)}")
    sizes = dict(QUICK if args.quick else FULL)
    for flag in ("records", "fsync_records"):
        value = getattr(args, flag)
        if value is not None:
            if value < 1:
                ap.error(f"--{flag.replace('_', '-')} must be at least 1")
            sizes[flag] = value
    if args.restart_log_bytes is not None:
        if args.restart_log_bytes < KIB:
            ap.error("--restart-log-bytes must be at least 1K")
        sizes["restart_log_bytes"] = args.restart_log_bytes
    if args.overload_clients is not None:
        if args.overload_clients < 1:
            ap.error("--overload-clients must be at least 1")
        sizes["overload_clients"] = args.overload_clients
    try:
        if machine_limits.parse_size(args.overload_limit) < 1:
            raise ValueError
    except ValueError:
        ap.error(f"--overload-limit: not a size: {args.overload_limit}")

    binary = strom_binary(args.strom)
    parent = args.dir or ROOT / "target"
    parent.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-suite-", dir=parent))

    def terminate(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)

    results = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_facts(),
        "git": git_commit(),
        "strom_binary": binary,
        "quick": args.quick,
        "selected": selected,
        "sizes": sizes,
        "scratch_dir": str(base),
        "open_files_limit": raise_open_files_limit(),
        "network": "127.0.0.1 only; client tools and brokers share the machine",
    }
    print(f"strom benchmark suite ({'quick' if args.quick else 'full'}): {', '.join(selected)}; "
          f"scratch {base}", flush=True)
    suite = Suite(args, sizes, binary, base)
    interrupted = False
    try:
        suite.run(selected)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping the brokers and tools", flush=True)
    finally:
        suite.close(quick_stop=interrupted)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    results["machine_limits"] = suite.results["machine_limits"]
    results["shapes"] = suite.results["shapes"]
    results["notes"] = suite.notes
    results["interrupted"] = interrupted
    results["ratios"] = target_ratios(results)
    results["ratio_notes"] = [
        "sequential write is fio's buffered writes timed to a final fsync; produce without fsync per "
        "message is acknowledged from the page cache, so while a run fits in the dirty page cache its "
        "ratio can exceed 1",
        "overload peak RSS is the whole broker's resident memory, baseline included (see "
        "h_overload.figures.rss_mb_baseline)",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_tables(results)
    print(f"\nwritten to {args.out}")
    if interrupted:
        return 130
    failed = [k for k, e in results["shapes"].items() if e["status"] != "ok"]
    if (results["machine_limits"] or {}).get("status") == "failed":
        failed.append("limits")
    if failed:
        print(f"not ok: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
