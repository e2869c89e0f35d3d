#!/usr/bin/env python3
"""Measures what this machine can physically do, as the yardstick for Strom's benchmark figures:

  seq_write   sequential write bandwidth of the disk holding --dir: fio, 1 MiB blocks, buffered
              writes of --size bytes ending with one fsync (what a log append without fsync per
              message costs the disk, end to end).
  fdatasync   latency of a 4 KiB write followed by fdatasync, fio, --sync-size bytes in total
              (what `flush.messages=1` pays per group commit): p50/p99/p99.9 and the rate.
  loopback    TCP bandwidth over 127.0.0.1: iperf3, one stream, --seconds long (the ceiling for a
              consumer on the same machine as the broker).

fio and iperf3 come from Debian; missing ones are installed with apt-get (needs root; set
STROM_BENCH_NO_INSTALL=1 to refuse instead). Prints a table and writes the figures with the
machine's facts as JSON (--out, default bench/results/machine-limits.json).

    python3 bench/machine_limits.py --dir /var/lib/strom --size 2G
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, free_port, machine_facts

TOOLS = {"fio": "fio", "iperf3": "iperf3"}


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    if not missing:
        return
    if os.environ.get("STROM_BENCH_NO_INSTALL") == "1":
        sys.exit(f"missing {', '.join(missing)}; install them (Debian: apt-get install {' '.join(missing)})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *missing]):
        subprocess.run([*sudo, *cmd], check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def parse_size(text: str) -> int:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def run_fio(args: list[str], timeout_s: float) -> dict:
    proc = subprocess.run(["fio", "--output-format=json", *args], capture_output=True, text=True,
                          timeout=timeout_s, check=False)
    if proc.returncode != 0:
        sys.exit(f"fio failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)["jobs"][0]


def seq_write(directory: Path, size: int) -> dict:
    job = run_fio([
        "--name=seq_write", f"--directory={directory}", "--rw=write", "--bs=1M", f"--size={size}",
        "--ioengine=psync", "--end_fsync=1", "--unlink=1",
    ], timeout_s=1800)
    write = job["write"]
    seconds = job["job_runtime"] / 1000 if job.get("job_runtime") else write["runtime"] / 1000
    return {
        "bytes": write["io_bytes"],
        "seconds": round(seconds, 3),
        "mb_per_sec": round(write["bw_bytes"] / 2**20, 1),
        "note": "buffered 1 MiB writes, one fsync at the end (included in the time)",
    }


def fdatasync_latency(directory: Path, size: int) -> dict:
    job = run_fio([
        "--name=fdatasync", f"--directory={directory}", "--rw=write", "--bs=4k", f"--size={size}",
        "--ioengine=sync", "--fdatasync=1", "--unlink=1",
    ], timeout_s=1800)
    sync = job.get("sync", {}).get("lat_ns", {})
    pct = sync.get("percentile", {})

    def ms(key: str):
        value = pct.get(key)
        return None if value is None else round(value / 1e6, 3)

    return {
        "writes": job["write"]["total_ios"],
        "syncs_per_sec": round(job["write"]["iops"], 1),
        "p50_ms": ms("50.000000"),
        "p99_ms": ms("99.000000"),
        "p999_ms": ms("99.900000"),
        "mean_ms": round(sync.get("mean", 0) / 1e6, 3),
        "note": "4 KiB write + fdatasync each",
    }


def loopback(seconds: int) -> dict:
    port = free_port()
    # A persistent server: the readiness probe below is a bare connection, which a one-off
    # (-1) server would take as its one test.
    server = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("iperf3 server did not start")
                time.sleep(0.05)
        time.sleep(0.2)
        proc = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                              capture_output=True, text=True, timeout=seconds + 30, check=False)
        if proc.returncode != 0:
            sys.exit(f"iperf3 failed ({proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
        result = json.loads(proc.stdout)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=10)
    received = result["end"]["sum_received"]
    return {
        "seconds": round(received["seconds"], 3),
        "mb_per_sec": round(received["bits_per_second"] / 8 / 2**20, 1),
        "note": "one TCP stream over 127.0.0.1, client and server on this machine",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None,
                        help="directory on the disk to measure (default: a temporary directory under /tmp)")
    parser.add_argument("--size", default="2G", help="bytes written by the sequential test (default 2G)")
    parser.add_argument("--sync-size", default="32M", help="bytes written by the fdatasync test (default 32M)")
    parser.add_argument("--seconds", type=int, default=5, help="length of the loopback test (default 5)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "machine-limits.json")
    args = parser.parse_args()

    ensure_tools()
    base = args.dir
    cleanup = None
    if base is None:
        cleanup = tempfile.TemporaryDirectory(prefix="strom-limits-")
        base = Path(cleanup.name)
    base.mkdir(parents=True, exist_ok=True)
    try:
        figures = {
            "seq_write": seq_write(base, parse_size(args.size)),
            "fdatasync": fdatasync_latency(base, parse_size(args.sync_size)),
            "loopback": loopback(args.seconds),
        }
    finally:
        if cleanup is not None:
            cleanup.cleanup()
    result = {
        "machine": machine_facts(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "directory": str(args.dir) if args.dir else "temporary directory under /tmp",
        **figures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, kernel {m['kernel']}")
    print(f"sequential write : {figures['seq_write']['mb_per_sec']:>8} MB/s  ({figures['seq_write']['note']})")
    f = figures["fdatasync"]
    print(f"fdatasync        : {f['syncs_per_sec']:>8} /s    p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, "
          f"p99.9 {f['p999_ms']} ms")
    print(f"loopback TCP     : {figures['loopback']['mb_per_sec']:>8} MB/s  ({figures['loopback']['note']})")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
