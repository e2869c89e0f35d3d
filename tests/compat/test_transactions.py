"""Kafka transactions (exactly-once) with real clients: Java kafka-clients 3.9.1 through
java/Txn.java, and confluent-kafka (librdkafka) as a read_committed / read_uncommitted reader.

1. Committed transactions are visible to read_committed readers, an aborted one only to
   read_uncommitted readers, and each transaction leaves one control record (its marker) in
   every partition it wrote to, right after its records.
2. Consume-transform-produce (`Txn ctp`: sendOffsetsToTransaction + commitTransaction per
   poll) over 100,000 records, SIGKILLed at random moments and restarted with the same
   transactional id: the output holds every input record exactly once, in input order.
3. Fencing: a second producer with the same transactional id fences the first and aborts its
   open transaction.
4. An abandoned transaction (its producer halted) holds back read_committed readers (the last
   stable offset) until the broker aborts it after transaction.timeout.ms.
5. A transaction open across a broker kill -9 and restart completes (committed, or reported
   failed and aborted by the coordinator) and read_committed readers reach the end.

Every wait is bounded; every Java process runs in its own process group and is SIGKILLed at
teardown, before the broker.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import tempfile
import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaException, Producer, TopicPartition

from compatlib import committed_offsets, confluent_consumer, create_topic, run_rust, wait_until

pytestmark = pytest.mark.java

JVM = ["java", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Dfile.encoding=UTF-8"]
# Broker setting for the tests that wait for the coordinator to abort a timed-out transaction.
FAST_ABORT = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": 500}


# ------------------------------------------------------------------ Txn processes


class TxnProcess:
    """One `java Txn <args>` process in its own process group. Its JSON stdout lines are
    collected on a thread as (monotonic arrival time, object); stdin is a pipe if asked for."""

    def __init__(self, classpath: str, args: list[str], stdin: bool = False):
        self.args = [str(a) for a in args]
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [*JVM, "-cp", classpath, "Txn", *self.args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            start_new_session=True,
        )
        self.lines: list[tuple[float, dict]] = []
        self.eof = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, name=f"Txn {self.args[0]}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for raw in self.proc.stdout:
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                obj = {"unparseable": text}
            with self._cond:
                self.lines.append((time.monotonic(), obj))
                self._cond.notify_all()
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def objs(self, key: str | None = None) -> list[dict]:
        with self._cond:
            return [o for _, o in self.lines if key is None or key in o]

    def first(self, key: str) -> tuple[float, dict] | None:
        with self._cond:
            return next(((t, o) for t, o in self.lines if key in o), None)

    def wait_for(self, what: str, predicate, timeout_s: float):
        """Waits until predicate(objects so far) is truthy (returned). Fails at once if the
        process ended first, or after timeout_s, with its output."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                got = predicate([o for _, o in self.lines])
                if got:
                    return got
                if self.eof:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
        if self.eof:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        state = "ended" if self.eof else f"no sign within {timeout_s:.0f}s"
        raise AssertionError(f"Txn {self.args[0]}: waiting for {what}: {state}\n{self.describe()}")

    def wait_for_key(self, key: str, timeout_s: float, count: int = 1) -> dict:
        """The count-th line with `key` (failing early on an {"error"} line)."""

        def pred(objs):
            errors = failures(objs)
            if errors and key != "error":
                raise AssertionError(f"Txn {self.args[0]} reported {errors[0]}\n{self.describe()}")
            hits = [o for o in objs if key in o]
            return hits[count - 1] if len(hits) >= count else None

        return self.wait_for(f"{count} line(s) with {key!r}", pred, timeout_s)

    def send(self, line: str) -> None:
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def wait(self, timeout_s: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"Txn {self.args[0]} still running after {timeout_s:.0f}s\n{self.describe()}") from None
        self._thread.join(10)
        return rc

    def kill(self) -> None:
        """SIGKILL to the whole process group (the JVM dies mid-whatever)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        self._thread.join(10)

    def stderr_tail(self, limit: int = 3000) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-limit:]

    def describe(self, lines: int = 15) -> str:
        with self._cond:
            tail = [json.dumps(o) for _, o in self.lines[-lines:]]
        return (
            f"  command: Txn {' '.join(self.args)}\n  exit: {self.proc.poll()}\n"
            f"  stdout (last {lines} lines):\n    " + "\n    ".join(tail) + f"\n  stderr (tail):\n{self.stderr_tail()}"
        )


def failures(objs: list[dict]) -> list[dict]:
    """Txn's error lines: {"error"} (fatal) and {"i","error"} (a failed send); not ctp's
    {"aborted","error"} (an abortable error, after which it aborts and carries on)."""
    return [o for o in objs if "error" in o and "aborted" not in o]


@pytest.fixture
def txn_procs(strom_factory):
    """Txn processes a test started; SIGKILLed at teardown (before the brokers)."""
    started: list[TxnProcess] = []
    yield started
    for p in started:
        try:
            p.kill()
        except Exception as e:  # noqa: BLE001 - teardown must reach every process
            print(f"killing Txn {p.args[0]}: {e!r}")


def run_txn(classpath: str, args: list, timeout_s: float) -> TxnProcess:
    """Runs Txn to completion (bounded); returns the finished process."""
    p = TxnProcess(classpath, args)
    p.wait(timeout_s)
    return p


def produce_txn(classpath: str, bootstrap: str, topic: str, txn_id: str, outcome: str, count: int,
                prefix: str) -> list[tuple[int, int, int]]:
    """`Txn produce`: one transaction of `count` records, committed or aborted. Returns
    (i, partition, offset) per record as acknowledged."""
    p = run_txn(classpath, ["produce", bootstrap, topic, txn_id, outcome, count, prefix], 120)
    done = p.objs("done")
    assert p.proc.returncode == 0 and done and done[0]["done"]["outcome"] == outcome, (
        f"Txn produce {outcome} failed\n{p.describe()}"
    )
    acks = sorted((o["i"], o["p"], o["o"]) for o in p.objs("o"))
    assert [a[0] for a in acks] == list(range(count)), f"acks for {len(acks)} of {count} records\n{p.describe()}"
    return acks


def produce_txn_rust(_classpath: str, bootstrap: str, topic: str, txn_id: str, outcome: str, count: int,
                     prefix: str) -> list[tuple[int, int, int]]:
    """`compat_tool txn-produce`, strom-client's twin of `Txn produce`."""
    proc = run_rust(["txn-produce", bootstrap, topic, txn_id, outcome, str(count), prefix], 120)
    objs = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.startswith("{")]
    done = [o["done"] for o in objs if "done" in o]
    assert done and done[0]["outcome"] == outcome, f"compat_tool txn-produce {outcome}: {objs[-3:]}"
    acks = sorted((o["i"], o["p"], o["o"]) for o in objs if "o" in o)
    assert [a[0] for a in acks] == list(range(count)), f"acks for {len(acks)} of {count} records"
    return acks


def read_java(classpath: str, bootstrap: str, topic: str, partitions: int, isolation: str,
              idle_ms: int = 1000, timeout_ms: int = 60_000):
    """`Txn read`: every record up to the end offsets of `isolation`. Returns (records as
    {"p","o","k","v"}, final positions {p: offset}, end offsets {p: offset})."""
    p = run_txn(classpath, ["read", bootstrap, topic, partitions, isolation, idle_ms, timeout_ms], timeout_ms / 1000 + 60)
    ends = p.objs("end")
    if p.proc.returncode != 0 or not ends:
        raise AssertionError(
            f"{isolation} reader did not reach the end offsets within {timeout_ms / 1000:.0f}s "
            f"(a stuck last stable offset?)\n{p.describe(5)}"
        )
    records = [o for o in p.objs("o")]
    positions = {int(k): v for k, v in ends[0]["end"].items()}
    end_offsets = {int(k): v for k, v in ends[0]["end_offsets"].items()}
    return records, positions, end_offsets


# ------------------------------------------------------------------ confluent-kafka helpers


def read_confluent(bootstrap: str, topic: str, partitions: int, isolation: str, expected: int,
                   timeout_s: float = 60, linger_s: float = 2.0) -> list[dict]:
    """confluent-kafka with `isolation.level`: reads from the beginning until `expected`
    records arrived, then `linger_s` more to expose extra ones. Records as {"p","o","k","v"}."""
    consumer = confluent_consumer(bootstrap, **{"isolation.level": isolation})
    out: list[dict] = []
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        until = None
        while time.monotonic() < (until or deadline):
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                if msg.error():
                    raise KafkaException(msg.error())
                k, v = msg.key(), msg.value()
                out.append({"p": msg.partition(), "o": msg.offset(), "k": k and k.decode(), "v": v and v.decode()})
            if until is None and len(out) >= expected:
                until = time.monotonic() + linger_s
    finally:
        consumer.close()
    return out


class CommittedWatcher:
    """A confluent-kafka read_committed consumer polling `topic` from the beginning on a
    thread; records every record with its monotonic arrival time."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        self.records: list[tuple[float, dict]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._consumer = confluent_consumer(
            bootstrap, **{"isolation.level": "read_committed", "fetch.wait.max.ms": 100}
        )
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self._thread = threading.Thread(target=self._run, name="read_committed watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for msg in self._consumer.consume(num_messages=100, timeout=0.05):
                    if msg.error():
                        raise KafkaException(msg.error())
                    self.records.append(
                        (time.monotonic(), {"p": msg.partition(), "o": msg.offset(), "v": msg.value().decode()})
                    )
        except BaseException as e:  # noqa: BLE001 - reported to the test
            self.error = e
        finally:
            self._consumer.close()

    def values(self) -> list[str]:
        assert self.error is None, f"read_committed watcher failed: {self.error!r}"
        return [r["v"] for _, r in list(self.records)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(20)


def produce_plain(bootstrap: str, topic: str, records: list[tuple[int, str, str]]) -> list[tuple[int, int, str]]:
    """Non-transactional (idempotent, acks=all) records (partition, key, value); returns
    (partition, offset, value) per record."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 1})
    acks: list[tuple[int, int, str]] = []
    errors: list[str] = []

    def cb(err, msg):
        if err is None:
            acks.append((msg.partition(), msg.offset(), msg.value().decode()))
        else:
            errors.append(str(err))

    for p, k, v in records:
        producer.produce(topic, key=k.encode(), value=v.encode(), partition=p, on_delivery=cb)
    remaining = producer.flush(30)
    assert remaining == 0 and not errors, f"plain produce: {remaining} undelivered, errors {errors[:5]}"
    return acks


def produce_input(bootstrap: str, topic: str, count: int, partitions: int) -> dict[int, int]:
    """Input record i: key "k-i", value "v-i", partition i % partitions (idempotent, so each
    partition holds its records in i order at dense offsets). Returns records per partition."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 20,
            "client.id": "strom-compat-txn-input",
        }
    )
    delivered = 0
    errors: list[str] = []

    def cb(err, _msg):
        nonlocal delivered
        if err is None:
            delivered += 1
        else:
            errors.append(str(err))

    for i in range(count):
        while True:
            try:
                producer.produce(topic, key=f"k-{i}".encode(), value=f"v-{i}".encode(), partition=i % partitions,
                                 on_delivery=cb)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    assert remaining == 0 and not errors and delivered == count, (
        f"input: {delivered} of {count} delivered, {remaining} in flight, errors {errors[:5]}"
    )
    return {p: len(range(p, count, partitions)) for p in range(partitions)}


# ------------------------------------------------------------------ 1. commit / abort / markers

PER_TXN = 30


@pytest.mark.parametrize("producer", ["java", "rust"])
def test_committed_visible_aborted_hidden_and_one_marker_per_transaction(strom, java_classpath, producer):
    """`java`: kafka-clients 3.9.1, the classic protocol. `rust`: strom-client, which uses
    transaction version 2 (EndTxn v5 bumps the epoch, Produce v12 adds partitions)."""
    bootstrap, topic, partitions = strom.bootstrap, "txn-basic", 3
    create_topic(bootstrap, topic, partitions=partitions)
    plan = [("c1", "commit"), ("a1", "abort"), ("c2", "commit")]
    produce_one = produce_txn if producer == "java" else produce_txn_rust
    acks = {prefix: produce_one(java_classpath, bootstrap, topic, "txn-basic-id", outcome, PER_TXN, prefix)
            for prefix, outcome in plan}

    # Offsets as acknowledged: within each partition, each transaction's records are
    # contiguous and the next transaction starts one offset later (its predecessor's marker).
    hw: dict[int, int] = {}
    markers: dict[int, list[int]] = {}
    for p in range(partitions):
        offset = 0
        markers[p] = []
        for prefix, _ in plan:
            offs = sorted(o for _i, pp, o in acks[prefix] if pp == p)
            if not offs:
                continue
            want = list(range(offset, offset + len(offs)))
            assert offs == want, (
                f"partition {p}, transaction {prefix}: acknowledged offsets {offs[0]}..{offs[-1]} "
                f"(n={len(offs)}), want {want[0]}..{want[-1]}: one control record after each earlier transaction"
            )
            markers[p].append(offset + len(offs))
            offset += len(offs) + 1
        hw[p] = offset
    assert sum(len(m) for m in markers.values()) >= 3, f"the transactions touched too few partitions: {markers}"

    produced = {(p, o): f"{prefix}-{i}" for prefix, _ in plan for i, p, o in acks[prefix]}
    committed = {pos: v for pos, v in produced.items() if not v.startswith("a1-")}

    def check(what: str, records: list[dict], want: dict[tuple[int, int], str]) -> None:
        got: dict[tuple[int, int], str] = {}
        dups = []
        for r in records:
            pos = (r["p"], r["o"])
            if pos in got:
                dups.append(pos)
            got[pos] = r["v"]
        assert not dups, f"{what}: delivered twice: {dups[:10]}"
        if not any(v.startswith("a1-") for v in want.values()):
            leaked = sorted(v for v in got.values() if v.startswith("a1-"))
            assert not leaked, f"{what}: records of the aborted transaction delivered: {leaked[:10]}"
        assert got == want, (
            f"{what}: {len(got)} records, want {len(want)}; missing {sorted(set(want) - set(got))[:10]}, "
            f"unexpected {sorted(set(got) - set(want))[:10]}, "
            f"wrong value at {[pos for pos in want if pos in got and got[pos] != want[pos]][:10]}"
        )
        for p in range(partitions):
            offs = [r["o"] for r in records if r["p"] == p]
            assert offs == sorted(offs), f"{what}: partition {p} out of order"
            assert not set(offs) & set(markers[p]), f"{what}: a control record's offset delivered as a record"

    rc_records, rc_pos, rc_ends = read_java(java_classpath, bootstrap, topic, partitions, "read_committed")
    check("Java read_committed", rc_records, committed)
    ru_records, ru_pos, ru_ends = read_java(java_classpath, bootstrap, topic, partitions, "read_uncommitted")
    check("Java read_uncommitted", ru_records, produced)
    # No transaction open: the last stable offset is the high watermark, which counts the markers.
    assert ru_ends == hw, f"high watermarks {ru_ends}, want {hw} (records + one marker per transaction)"
    assert rc_ends == hw, f"read_committed end offsets (LSO) {rc_ends}, want the high watermarks {hw}"
    assert rc_pos == hw and ru_pos == hw, f"readers stopped at {rc_pos} / {ru_pos}, want {hw} (past the last marker)"

    check("confluent-kafka read_committed",
          read_confluent(bootstrap, topic, partitions, "read_committed", len(committed)), committed)
    check("confluent-kafka read_uncommitted",
          read_confluent(bootstrap, topic, partitions, "read_uncommitted", len(produced)), produced)
    c = confluent_consumer(bootstrap)
    try:
        highs = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        c.close()
    assert highs == hw, f"confluent-kafka watermarks {highs}, want {hw}"
    # The protocol each client spoke, from the producer epoch: every InitProducerId bumps it,
    # and under transaction version 2 every EndTxn too.
    epoch = admin_views(java_classpath, bootstrap, topic, partitions, "txn-basic-id")["describe"]["epoch"]
    assert epoch == (2 if producer == "java" else 5), f"{producer}: producer epoch {epoch} after 3 transactions"
    print(f"markers at {markers}, high watermarks {hw}, producer epoch {epoch}")


# ------------------------------------------------------------------ 2. consume-transform-produce

CTP_RECORDS = int(os.environ.get("STROM_COMPAT_TXN_RECORDS", "100000"))
CTP_KILLS = 3
# The whole test must end within the suite's per-test timeout (300 s); waits share this budget.
CTP_BUDGET_S = 270


class Budget:
    """What is left of a test's CTP_BUDGET_S: `left(cap)` is the time a wait may take."""

    def __init__(self):
        self.started = time.monotonic()
        self.deadline = self.started + CTP_BUDGET_S

    def __call__(self, cap: float) -> float:
        remaining = self.deadline - time.monotonic()
        assert remaining > 0, f"out of the {CTP_BUDGET_S}s budget"
        return min(cap, remaining)


def ctp_input(bootstrap: str, in_topic: str, out_topic: str, partitions: int) -> dict[int, int]:
    """Creates both topics and writes CTP_RECORDS keyed input records; records per partition."""
    create_topic(bootstrap, in_topic, partitions=partitions)
    create_topic(bootstrap, out_topic, partitions=partitions)
    return produce_input(bootstrap, in_topic, CTP_RECORDS, partitions)


def kill_seed() -> tuple[int, random.Random]:
    """The seed of a run's kill points ($STROM_COMPAT_TXN_SEED repeats one) and its generator."""
    seed = int(os.environ.get("STROM_COMPAT_TXN_SEED", str(random.randrange(1 << 30))))
    return seed, random.Random(seed)


@pytest.mark.timeout(300)
def test_consume_transform_produce_exactly_once_across_kill9_of_the_processor(strom, java_classpath, txn_procs):
    bootstrap, partitions = strom.bootstrap, 3
    in_topic, out_topic, group, txn_id = "ctp-in", "ctp-out", "ctp-group", "ctp-txn"
    left = Budget()
    started = left.started
    per_partition = ctp_input(bootstrap, in_topic, out_topic, partitions)
    t_input = time.monotonic() - started

    seed, rng = kill_seed()
    # Kill points: random fractions of the stream (the run is killed once it committed a
    # transaction and the group's committed offsets, as its lines report them, pass the
    # point), then a random few milliseconds
    # more, so the kill lands in any phase of a ~5 ms transaction. Below 85 %, so no run can
    # finish before its kill.
    targets = sorted(int(rng.uniform(0.05, 0.85) * CTP_RECORDS) for _ in range(CTP_KILLS))
    delays = [rng.uniform(0, 0.02) for _ in range(CTP_KILLS)]
    print(f"kill seed {seed} (STROM_COMPAT_TXN_SEED={seed} repeats it): after {targets} records + {delays} s")
    args = ["ctp", bootstrap, in_topic, out_topic, group, txn_id, 240]
    runs: list[TxnProcess] = []
    for k in range(CTP_KILLS):
        proc = TxnProcess(java_classpath, args)
        txn_procs.append(proc)
        runs.append(proc)

        def past_target(objs, target=targets[k], proc=proc):
            errors = failures(objs)
            assert not errors, f"ctp run {len(runs)} failed: {errors[0]}\n{proc.describe()}"
            # At least one transaction of its own, even if it resumed past the target already.
            return any("txn" in o for o in objs) and sum(committed_progress(objs).values()) >= target

        proc.wait_for(f"a transaction and committed offsets past {targets[k]} records", past_target, left(90))
        time.sleep(delays[k])
        assert proc.proc.poll() is None, f"ctp run {k + 1} ended before its kill -9\n{proc.describe()}"
        proc.kill()
        errors = failures(proc.objs())
        assert not errors, f"ctp run {k + 1} failed: {errors[0]}\n{proc.describe()}"
    final = TxnProcess(java_classpath, args)
    txn_procs.append(final)
    runs.append(final)
    rc = final.wait(left(200))
    finished = final.objs("finished")
    assert rc == 0 and finished, f"the last ctp run did not finish (exit {rc})\n{final.describe()}"
    t_process = time.monotonic() - started - t_input
    summaries, resume_problems = check_resume_points([r.objs() for r in runs], partitions)
    for n, summary in enumerate(summaries, 1):
        print(f"ctp run {n}: {summary}")
    assert not resume_problems, "ctp restarts did not resume where the transactions left off:\n  " + "\n  ".join(
        resume_problems)
    printed = sum(o["records"] for r in runs for o in r.objs("txn"))

    check_ctp_output(java_classpath, bootstrap, in_topic, out_topic, group, partitions, per_partition, left,
                     f"records reported committed {printed}; timings: input {t_input:.1f}s, processing with "
                     f"{CTP_KILLS} kills {t_process:.1f}s", started)


BROKER_KILLS = 2


@pytest.mark.timeout(300)
def test_consume_transform_produce_exactly_once_across_kill9_of_the_broker(strom, java_classpath, txn_procs):
    """The broker, coordinator of every transaction and leader of every partition, is SIGKILLed
    mid-stream and restarted on the same directory and port, twice. The processor keeps
    going (its client retries) or, if a call fails for good, is restarted; either way the
    recovered coordinator must finish or abort what was in flight, and the output must hold
    every input exactly once."""
    bootstrap, partitions = strom.bootstrap, 3
    in_topic, out_topic, group, txn_id = "bk-in", "bk-out", "bk-group", "bk-txn"
    left = Budget()
    started = left.started
    per_partition = ctp_input(bootstrap, in_topic, out_topic, partitions)
    seed, rng = kill_seed()
    targets = sorted(int(rng.uniform(0.1, 0.8) * CTP_RECORDS) for _ in range(BROKER_KILLS))
    delays = [rng.uniform(0, 0.02) for _ in range(BROKER_KILLS)]
    print(f"kill seed {seed} (STROM_COMPAT_TXN_SEED={seed} repeats it): broker after {targets} records + {delays} s")
    args = ["ctp", bootstrap, in_topic, out_topic, group, txn_id, 240]
    runs: list[TxnProcess] = []

    def start_run() -> TxnProcess:
        assert len(runs) < 2 * BROKER_KILLS + 2, f"too many processor restarts:\n{runs[-1].describe()}"
        proc = TxnProcess(java_classpath, args)
        txn_procs.append(proc)
        runs.append(proc)
        return proc

    proc = start_run()
    for target, delay in zip(targets, delays):
        # Progress as the runs report it: the committed offsets of the latest run.
        while True:
            objs = proc.objs()
            if sum(committed_progress(objs).values()) >= target and any("txn" in o for o in objs):
                break
            if proc.proc.poll() is not None:
                proc = start_run()
            time.sleep(0.05)
            left(120)
        time.sleep(delay)
        strom.kill()
        strom.restart()
    while True:
        rc = proc.wait(left(200))
        if rc == 0 and proc.objs("finished"):
            break
        # A call that failed for good across the restart ends the run: start it again.
        proc = start_run()
    errors = [e for r in runs for e in failures(r.objs())]
    print(f"{len(runs)} processor runs; errors they reported: {[e.get('error') for e in errors]}")
    check_ctp_output(java_classpath, bootstrap, in_topic, out_topic, group, partitions, per_partition, left,
                     f"{BROKER_KILLS} broker kills, {len(runs)} processor runs", started)


def check_ctp_output(java_classpath: str, bootstrap: str, in_topic: str, out_topic: str, group: str,
                     partitions: int, per_partition: dict[int, int], left, summary: str, started: float) -> None:
    """The output of a consume-transform-produce run over CTP_RECORDS inputs, read_committed:
    each input record exactly once, transformed, in its partition and in input order; the
    group's offsets at the input's ends; the last stable offset at the high watermark."""
    # The output, read_committed: each input record exactly once, transformed, in the input's
    # partition and order.
    t0 = time.monotonic()
    records, positions, ends = read_java(java_classpath, bootstrap, out_topic, partitions, "read_committed",
                                         idle_ms=2000, timeout_ms=int(left(90) * 1000))
    t_read = time.monotonic() - t0
    problems: list[str] = []
    seen: dict[int, int] = {}
    by_partition: dict[int, list[int]] = {p: [] for p in range(partitions)}
    last_offset: dict[int, int] = {}
    for r in records:
        try:
            i = int(r["v"].removeprefix("out:v-"))
        except (ValueError, AttributeError):
            problems.append(f"unexpected value {r['v']!r} at ({r['p']}, {r['o']})")
            continue
        if r["v"] != f"out:v-{i}" or r["k"] != f"k-{i}":
            problems.append(f"record ({r['p']}, {r['o']}): key {r['k']!r} value {r['v']!r}, want k-{i} / out:v-{i}")
        if r["p"] != i % partitions:
            problems.append(f"input {i} (partition {i % partitions}) written to partition {r['p']}")
        if r["o"] <= last_offset.get(r["p"], -1):
            problems.append(f"partition {r['p']}: offset {r['o']} after {last_offset[r['p']]}")
        last_offset[r["p"]] = r["o"]
        seen[i] = seen.get(i, 0) + 1
        by_partition.setdefault(r["p"], []).append(i)
    dups = sorted(i for i, n in seen.items() if n > 1)
    missing = sorted(set(range(CTP_RECORDS)) - set(seen))
    if dups:
        problems.append(f"{len(dups)} input records in the output more than once, e.g. {dups[:10]}")
    if missing:
        problems.append(f"{len(missing)} input records missing from the output, e.g. {missing[:10]}")
    for p, got in by_partition.items():
        want = list(range(p, CTP_RECORDS, partitions))
        if got != want:
            first_bad = next((n for n, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            problems.append(f"partition {p}: {len(got)} records, not the input order from position {first_bad} "
                            f"(got {got[first_bad:first_bad + 5]}, want {want[first_bad:first_bad + 5]})")
    if len(records) != CTP_RECORDS:
        problems.append(f"read_committed output holds {len(records)} records, want exactly {CTP_RECORDS}")
    assert not problems, "consume-transform-produce output:\n  " + "\n  ".join(problems[:15])

    # The group's offsets, committed only through the transactions, are the input's ends.
    offsets = committed_offsets(bootstrap, group)
    want_offsets = {(in_topic, p): n for p, n in per_partition.items()}
    assert offsets == want_offsets, f"group {group} committed {offsets}, want {want_offsets}"
    # Records of the killed runs' open transactions stay in the log, aborted.
    ru_records, _, ru_ends = read_java(java_classpath, bootstrap, out_topic, partitions, "read_uncommitted",
                                       idle_ms=1000, timeout_ms=int(left(60) * 1000))
    assert ends == ru_ends and positions == ru_ends, (
        f"read_committed end offsets {ends} / positions {positions}, high watermarks {ru_ends}: LSO behind"
    )
    total = time.monotonic() - started
    print(
        f"ctp: {CTP_RECORDS} records; {summary}; "
        f"output log {len(ru_records)} records ({len(ru_records) - CTP_RECORDS} aborted), ends {ru_ends}; "
        f"read_committed read {t_read:.1f}s, total {total:.1f}s"
    )


def committed_progress(objs: list[dict]) -> dict[int, int]:
    """A ctp run's view of the group's committed offsets: where it resumed (its first
    assignment), advanced by each committed transaction's next offsets."""
    committed: dict[int, int] = {}
    for o in objs:
        if "assigned" in o and not committed:
            committed = {int(p): v for p, v in o["assigned"].items()}
        elif "txn" in o:
            committed.update({int(p): v for p, v in o["next"].items()})
    return committed


def check_resume_points(runs: list[list[dict]], partitions: int) -> tuple[list[str], list[str]]:
    """Follows the group's committed offsets through the ctp runs' lines. Every assignment
    must resume exactly at the offsets of the last transaction whose commit the client saw
    succeed, except that a run killed in the commit phase ("committing" its last line) may have
    had that commit completed: then the next run resumes at either. A kill in any other phase
    must leave the offsets untouched (the new instance's initTransactions aborts the open
    transaction, with its pending offsets). Returns (a summary per run, problems)."""
    committed = {p: 0 for p in range(partitions)}
    in_flight: dict[int, int] | None = None
    summaries, problems = [], []
    for n, objs in enumerate(runs, 1):
        resumed = []
        for o in objs:
            if "assigned" in o:
                got = {int(p): v for p, v in o["assigned"].items()}
                want = {p: committed[p] for p in got}
                if got == want:
                    how = "at the last acknowledged commit"
                elif in_flight is not None and got == {p: {**committed, **in_flight}[p] for p in got}:
                    committed.update(in_flight)
                    how = "after the commit in flight at the kill (it completed)"
                else:
                    problems.append(f"run {n} resumed at {got}, but the last acknowledged commit left {want}"
                                    + (f" (or {in_flight} if the commit in flight at the kill completed)"
                                       if in_flight else ""))
                    committed.update(got)
                    how = "WRONG"
                in_flight = None
                resumed.append(f"{got} ({how})")
            elif "txn" in o:
                committed.update({int(p): v for p, v in o["next"].items()})
        phases = [o for o in objs if "begin" in o or "committing" in o or "txn" in o]
        last = phases[-1] if phases else {}
        if "finished" in (objs[-1] if objs else {}):
            phase = "finished"
        elif "committing" in last:
            in_flight = {int(p): v for p, v in last["next"].items()}
            phase = f"killed with the commit of transaction {last['committing']} in flight"
        elif "begin" in last:
            phase = f"killed in transaction {last['begin']} before its commit (sending records/offsets)"
        else:
            phase = "killed between transactions"
        txns = [o for o in objs if "txn" in o]
        summaries.append(f"resumed {resumed}; {len(txns)} transactions, {sum(o['records'] for o in txns)} records "
                         f"committed; {len([o for o in objs if 'aborted' in o])} aborted by the client; {phase}")
    return summaries, problems


# ------------------------------------------------------------------ 3. fencing

FENCED = {"ProducerFencedException", "InvalidProducerEpochException"}


def test_second_producer_with_same_transactional_id_fences_the_first(strom, java_classpath):
    bootstrap, topic = strom.bootstrap, "txn-fence"
    create_topic(bootstrap, topic, partitions=1)
    p = run_txn(java_classpath, ["fence", bootstrap, topic, "fence-id"], 120)
    outcome = next((o for o in p.objs() if "a_error" in o), None)
    assert outcome is not None, f"Txn fence printed no outcome for producer A\n{p.describe()}"
    print(f"fenced producer A: {outcome}")
    assert outcome["a_error"] is not None, f"producer A committed after being fenced: {outcome}\n{p.describe()}"
    chain = set(outcome["a_error_chain"]) | {outcome["a_abort_error"]}
    assert chain & FENCED, f"producer A failed, but not as fenced: {outcome}"
    assert outcome["a_abort_error"] is not None, f"producer A's abortTransaction succeeded after being fenced: {outcome}"
    assert p.proc.returncode == 0 and p.objs("b_committed"), f"producer B did not commit\n{p.describe()}"

    committed = [r["v"] for r in read_java(java_classpath, bootstrap, topic, 1, "read_committed")[0]]
    assert committed == ["b-0"], f"read_committed sees {committed}, want only B's record"
    uncommitted = [r["v"] for r in read_java(java_classpath, bootstrap, topic, 1, "read_uncommitted")[0]]
    # A's first record was written, then aborted by B's initTransactions; A's second send came
    # with the fenced epoch and must have been refused.
    assert uncommitted == ["a-0", "b-0"], f"the log holds {uncommitted}, want A's aborted a-0 then B's b-0"
    confluent = [r["v"] for r in read_confluent(bootstrap, topic, 1, "read_committed", 1)]
    assert confluent == ["b-0"], f"confluent-kafka read_committed sees {confluent}"


# ------------------------------------------------------------------ 4. abandoned transaction

HOLD_TIMEOUT_MS = 2000


def test_abandoned_transaction_holds_read_committed_until_the_broker_aborts_it(strom_factory, java_classpath,
                                                                               txn_procs):
    strom = strom_factory(settings=FAST_ABORT)
    bootstrap, topic, partitions = strom.bootstrap, "txn-abandoned", 3
    create_topic(bootstrap, topic, partitions=partitions)
    before = produce_txn(java_classpath, bootstrap, topic, "abandoned-before", "commit", 6, "before")

    watcher = CommittedWatcher(bootstrap, topic, partitions)
    try:
        wait_until("read_committed watcher to see the 6 committed records",
                   lambda: len([v for v in watcher.values() if v.startswith("before-")]) == len(before), 30)
        hold = TxnProcess(java_classpath, ["hold", bootstrap, topic, "abandoned-id", 9, HOLD_TIMEOUT_MS], stdin=True)
        txn_procs.append(hold)
        hold.wait_for_key("sent", timeout_s=60)
        t_sent, _ = hold.first("sent")
        held = {(o["p"], o["o"]): f"held-{o['i']}" for o in hold.objs("o")}
        assert len(held) == 9, f"hold acknowledged {len(held)} of 9\n{hold.describe()}"
        held_partitions = sorted({p for p, _ in held})
        # Non-transactional records behind the open transaction: read_committed readers must
        # not get them before the transaction ends.
        after = produce_plain(bootstrap, topic, [(p, "after", f"after-{p}") for p in held_partitions])
        hold.send("halt")
        assert hold.wait(30) == 0
        t_halted = time.monotonic()

        def after_seen():
            return len([v for v in watcher.values() if v.startswith("after-")]) == len(after)

        wait_until(f"read_committed to get past the abandoned transaction (timeout {HOLD_TIMEOUT_MS} ms, "
                   f"cleanup every {FAST_ABORT['transaction.abort.timed.out.transaction.cleanup.interval.ms']} ms)",
                   after_seen, timeout_s=30, interval_s=0.05)
        t_after = min(t for t, r in watcher.records if r["v"].startswith("after-"))
        time.sleep(1.0)
        values = watcher.values()
    finally:
        watcher.close()
    blocked_s = t_after - t_sent
    print(f"read_committed held back {blocked_s:.2f}s after the transaction's records were acknowledged "
          f"({t_after - t_halted:.2f}s after the producer halted); transaction.timeout.ms={HOLD_TIMEOUT_MS}")
    assert blocked_s >= 1.0, (
        f"records behind the open transaction were delivered read_committed {blocked_s:.2f}s after its records "
        f"were acknowledged, before its {HOLD_TIMEOUT_MS} ms timeout: the last stable offset did not hold"
    )
    assert not [v for v in values if v.startswith("held-")], f"aborted records delivered read_committed: {values}"
    assert blocked_s <= HOLD_TIMEOUT_MS / 1000 + 10, f"the abandoned transaction was aborted only after {blocked_s:.1f}s"
    assert sorted(values) == sorted([f"before-{i}" for i in range(6)] + [v for _, _, v in after]), values

    rc_records, rc_pos, rc_ends = read_java(java_classpath, bootstrap, topic, partitions, "read_committed")
    ru_records, ru_pos, ru_ends = read_java(java_classpath, bootstrap, topic, partitions, "read_uncommitted")
    assert not [r for r in rc_records if r["v"].startswith("held-")], "aborted records delivered read_committed"
    assert {(r["p"], r["o"]): r["v"] for r in ru_records if r["v"].startswith("held-")} == held, (
        "the held records should still be in the log (aborted) at their acknowledged offsets"
    )
    assert rc_ends == ru_ends and rc_pos == ru_ends, f"LSO {rc_ends} / positions {rc_pos} behind high watermarks {ru_ends}"


# ------------------------------------------------------------------ 5. broker kill -9 mid-transaction

KILL_TXN_TIMEOUT_MS = 20_000


def test_transaction_open_across_broker_kill9_completes_and_lso_advances(strom_factory, java_classpath, txn_procs):
    strom = strom_factory(settings=FAST_ABORT)
    bootstrap, topic, partitions = strom.bootstrap, "txn-kill9", 3
    create_topic(bootstrap, topic, partitions=partitions)
    before = produce_txn(java_classpath, bootstrap, topic, "kill9-before", "commit", 6, "before")

    hold = TxnProcess(java_classpath, ["hold", bootstrap, topic, "kill9-id", 12, KILL_TXN_TIMEOUT_MS], stdin=True)
    txn_procs.append(hold)
    hold.wait_for_key("sent", timeout_s=60)
    held = {(o["p"], o["o"]): f"held-{o['i']}" for o in hold.objs("o")}
    assert len(held) == 12, f"hold acknowledged {len(held)} of 12\n{hold.describe()}"

    strom.kill()
    strom.restart()
    t_restarted = time.monotonic()
    hold.send("commit")

    def outcome_line(objs):
        return next((o for o in objs if "committed" in o or ("error" in o and "i" not in o)), None)

    outcome = hold.wait_for("the commit's outcome", outcome_line, timeout_s=90)
    rc = hold.wait(30)
    committed = outcome.get("committed") is True
    print(f"commit after broker kill -9 + restart: {outcome} (exit {rc}), "
          f"{time.monotonic() - t_restarted:.1f}s after the restart")
    assert committed == (rc == 0), f"exit {rc} does not match the outcome {outcome}\n{hold.describe()}"

    # Either way the transaction must end (commit, or the coordinator's abort after
    # transaction.timeout.ms) and read_committed readers must reach the end.
    t0 = time.monotonic()
    rc_records, rc_pos, rc_ends = read_java(java_classpath, bootstrap, topic, partitions, "read_committed",
                                            timeout_ms=KILL_TXN_TIMEOUT_MS + 40_000)
    t_end = time.monotonic() - t0
    ru_records, _, ru_ends = read_java(java_classpath, bootstrap, topic, partitions, "read_uncommitted")
    print(f"read_committed reached the end {t_end:.1f}s after the outcome: positions {rc_pos}, "
          f"high watermarks {ru_ends}")
    assert rc_ends == ru_ends and rc_pos == ru_ends, f"LSO {rc_ends} / positions {rc_pos} behind high watermarks {ru_ends}"

    visible = {(r["p"], r["o"]): r["v"] for r in rc_records}
    before_values = {(p, o): f"before-{i}" for i, p, o in before}
    held_visible = {pos: v for pos, v in visible.items() if v.startswith("held-")}
    assert {pos: v for pos, v in visible.items() if v.startswith("before-")} == before_values
    if committed:
        assert held_visible == held, (
            f"the client's commit succeeded, but read_committed sees {len(held_visible)} of the 12 records "
            f"(missing {sorted(set(held) - set(held_visible))})"
        )
    else:
        assert held_visible == {}, f"the client's commit failed ({outcome}), but read_committed sees {held_visible}"
    assert len(rc_records) == len(visible), "read_committed delivered a record twice"
    assert {(r["p"], r["o"]): r["v"] for r in ru_records if r["v"].startswith("held-")} == held, (
        "the held records are not in the log at their acknowledged offsets"
    )


# ------------------------------------------------------------------ 6. librdkafka's transactional producer


def test_confluent_kafka_transactions_commit_abort_and_send_offsets(strom):
    """librdkafka's transactional producer (confluent-kafka): a committed transaction with
    sendOffsetsToTransaction, an aborted one, and what read_committed / read_uncommitted
    readers and the group's committed offsets show afterwards."""
    from confluent_kafka import Consumer

    bootstrap, topic, group = strom.bootstrap, "ck-txn", "ck-txn-group"
    create_topic(bootstrap, topic, partitions=3)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "ck-txn-1",
                         "transaction.timeout.ms": 60000})
    producer.init_transactions(30)
    metadata_source = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        producer.begin_transaction()
        for i in range(30):
            producer.produce(topic, key=f"k{i}", value=f"c-{i}", partition=i % 3)
        producer.send_offsets_to_transaction([TopicPartition(topic, 0, 7), TopicPartition(topic, 2, 9)],
                                             metadata_source.consumer_group_metadata(), 30)
        producer.commit_transaction(30)

        producer.begin_transaction()
        for i in range(30):
            producer.produce(topic, key=f"k{i}", value=f"a-{i}", partition=i % 3)
        producer.send_offsets_to_transaction([TopicPartition(topic, 0, 99)],
                                             metadata_source.consumer_group_metadata(), 30)
        producer.flush(30)
        producer.abort_transaction(30)
    finally:
        metadata_source.close()

    committed = read_confluent(bootstrap, topic, 3, "read_committed", expected=30)
    assert sorted(r["v"] for r in committed) == sorted(f"c-{i}" for i in range(30))
    uncommitted = read_confluent(bootstrap, topic, 3, "read_uncommitted", expected=60)
    assert sorted(r["v"] for r in uncommitted) == sorted([f"c-{i}" for i in range(30)] + [f"a-{i}" for i in range(30)])
    # Each partition: 10 committed records, their marker, 10 aborted records (after it).
    for r in uncommitted:
        i = int(r["v"][2:])
        want = i // 3 + (0 if r["v"].startswith("c-") else 11)
        assert r["o"] == want, f"{r} at offset {r['o']}, want {want}"
    # Offsets sent in the committed transaction are the group's; the aborted one's are not.
    assert committed_offsets(bootstrap, group) == {(topic, 0): 7, (topic, 2): 9}


# ------------------------------------------------------------------ 7. the Admin client's transaction views


def admin_views(classpath: str, bootstrap: str, topic: str, partitions: int, txn_id: str) -> dict:
    p = run_txn(classpath, ["admin", bootstrap, topic, partitions, txn_id], 60)
    errors = failures(p.objs())
    assert p.proc.returncode == 0 and not errors, f"Txn admin failed: {errors}\n{p.describe()}"
    return {k: p.objs(k)[0][k] for k in ("list", "describe", "producers")}


def test_admin_lists_and_describes_transactions_and_producers(strom, java_classpath, txn_procs):
    """Java Admin listTransactions / describeTransactions / describeProducers (what
    kafka-transactions.sh uses) while a transaction is open and after it commits."""
    bootstrap, topic, txn_id, partitions = strom.bootstrap, "adm-txn", "adm-txn-1", 3
    create_topic(bootstrap, topic, partitions=partitions)
    holder = TxnProcess(java_classpath, ["hold", bootstrap, topic, txn_id, 6, 60000], stdin=True)
    txn_procs.append(holder)
    holder.wait_for_key("sent", 60)
    first_offset: dict[int, int] = {}
    for o in holder.objs("o"):
        first_offset[o["p"]] = min(first_offset.get(o["p"], o["o"]), o["o"])

    views = admin_views(java_classpath, bootstrap, topic, partitions, txn_id)
    listed = [t for t in views["list"] if t["id"] == txn_id]
    assert len(listed) == 1 and listed[0]["state"] == "Ongoing", views["list"]
    described = views["describe"]
    assert described["state"] == "Ongoing" and described["timeout_ms"] == 60000, described
    assert described["pid"] == listed[0]["pid"] and described["start_ms"] > 0, described
    assert described["partitions"] == sorted(f"{topic}-{p}" for p in first_offset), described
    for p in range(partitions):
        producers = views["producers"][str(p)]
        if p in first_offset:
            assert [(x["pid"], x["txn_start"]) for x in producers] == [(described["pid"], first_offset[p])], producers
        else:
            assert producers == [], producers

    holder.send("commit")
    holder.wait_for_key("committed", 60)
    wait_until(
        "the transaction to complete",
        lambda: admin_views(java_classpath, bootstrap, topic, partitions, txn_id)["describe"]["state"]
        == "CompleteCommit",
        timeout_s=30,
        interval_s=0.5,
    )
    views = admin_views(java_classpath, bootstrap, topic, partitions, txn_id)
    assert views["describe"]["partitions"] == [], views["describe"]
    for p in first_offset:
        assert [x["txn_start"] for x in views["producers"][str(p)]] == [-1], views["producers"]
