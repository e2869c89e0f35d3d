"""kcat (Debian's kcat 1.7.1 on its bundled librdkafka) against strom."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from compatlib import create_topic

pytestmark = pytest.mark.kcat


def kcat(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    exe = shutil.which("kcat")
    if exe is None:
        pytest.fail("kcat not installed: run scripts/setup-test-deps.sh", pytrace=False)
    proc = subprocess.run(
        [exe, *args],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"kcat {' '.join(args)} exited {proc.returncode}\n"
        f"stdout:\n{proc.stdout.decode('utf-8', 'replace')[-2000:]}\n"
        f"stderr:\n{proc.stderr.decode('utf-8', 'replace')[-2000:]}"
    )
    return proc


def test_kcat_metadata_lists_broker_and_topic_partitions(strom):
    create_topic(strom.bootstrap, "kcat-meta", partitions=3)
    out = kcat("-b", strom.bootstrap, "-L", "-m", "20").stdout.decode()
    assert " 1 brokers:" in out, out
    assert f"at {strom.bootstrap}" in out, out
    assert 'topic "kcat-meta" with 3 partitions:' in out, out
    for p in range(3):
        assert f"partition {p}, leader " in out, out


def test_kcat_produced_lines_are_consumed_back_exactly(strom):
    lines = [f"line {i} äöü \t tab" for i in range(500)]
    payload = ("\n".join(lines) + "\n").encode()
    kcat("-b", strom.bootstrap, "-t", "kcat-lines", "-P", "-m", "20", input=payload)
    out = kcat(
        "-b", strom.bootstrap, "-t", "kcat-lines", "-C", "-o", "beginning", "-e", "-q", "-m", "20"
    ).stdout.decode()
    assert out.splitlines() == lines


def test_kcat_keys_headers_and_offsets_round_trip(strom):
    create_topic(strom.bootstrap, "kcat-keyed", partitions=1)
    payload = "".join(f"key{i}:value{i}\n" for i in range(50)).encode()
    kcat(
        "-b", strom.bootstrap, "-t", "kcat-keyed", "-P", "-K:", "-H", "h1=x", "-H", "h2=y", "-z", "zstd",
        input=payload,
    )
    out = kcat(
        "-b", strom.bootstrap, "-t", "kcat-keyed", "-C", "-o", "beginning", "-e", "-q",
        "-f", "%p|%o|%k|%s|%h\n",
    ).stdout.decode()
    assert out.splitlines() == [f"0|{i}|key{i}|value{i}|h1=x,h2=y" for i in range(50)]
