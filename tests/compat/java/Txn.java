import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeProducersResult;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.FencedInstanceIdException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Kafka transactions with the Java kafka-clients (project code, not the seed): the client
 * side of tests/compat/test_transactions.py. Keys and values are UTF-8 strings. Every mode
 * prints JSON lines on stdout, each flushed as it happens; client log output (none: slf4j has
 * no binding) and usage errors go to stderr. Exit codes: 0 done, 1 a client error (printed as
 * {"error":...}), 2 a bounded wait ran out, 64 bad arguments.
 *
 * <pre>
 * produce &lt;bootstrap&gt; &lt;topic&gt; &lt;transactional-id&gt; &lt;commit|abort&gt; &lt;count&gt; &lt;prefix&gt;
 *     initTransactions, beginTransaction, sends records i = 0..count-1 with key "i" and value
 *     "prefix-i" (the default partitioner: by key), flush, then commitTransaction or
 *     abortTransaction. Prints {"i","p","o"} per acknowledged record (or {"i","error"}), then
 *     {"done":{"outcome":"commit"|"abort","count","acked"}}.
 *
 * read &lt;bootstrap&gt; &lt;topic&gt; &lt;partitions&gt; &lt;read_committed|read_uncommitted&gt; &lt;idle-ms&gt; [timeout-ms]
 *     Assigns partitions 0..partitions-1 from the beginning (no group) with that
 *     isolation.level and polls until every partition's position has reached its end offset
 *     (endOffsets, which honours the isolation level: the last stable offset for
 *     read_committed, the high watermark otherwise) and no record arrived for idle-ms.
 *     Prints {"p","o","k","v"} per record, then
 *     {"end":{"partition":position,...},"end_offsets":{"partition":end,...}}. If that does not
 *     happen within timeout-ms (default 60000): {"timeout":{"positions":{...},"end_offsets":{...}}}
 *     and exit 2.
 *
 * ctp &lt;bootstrap&gt; &lt;in-topic&gt; &lt;out-topic&gt; &lt;group&gt; &lt;transactional-id&gt; [max-runtime-s] [consumer-property=value ...]
 *     Consume-transform-produce, exactly once: a transactional producer (initTransactions first,
 *     which fences an earlier instance with the same id and aborts its open transaction) and a
 *     consumer in `group` (isolation.level=read_committed, enable.auto.commit=false,
 *     auto.offset.reset=earliest, session.timeout.ms=6000, heartbeat.interval.ms=1000, then the
 *     trailing properties) subscribed to in-topic. Each non-empty poll is one transaction:
 *     every record goes to the same partition number of out-topic with the same key and value
 *     "out:" + value; sendOffsetsToTransaction(next offsets, consumer.groupMetadata());
 *     commitTransaction. Prints {"started":{...}} once initTransactions returned,
 *     {"assigned":{"partition":position,...}} on each assignment (where it resumes: the group's
 *     committed offsets), {"revoked":n}, and per transaction, each line before the step it names:
 *     {"begin":n,"records":k,"next":{"partition":offset,...}} (then send and
 *     sendOffsetsToTransaction), {"committing":n,"next":{...}} (then commitTransaction), and
 *     after the commit {"txn":n,"records":k,"next":{...}}; {"aborted":n,"error":...} when an
 *     abortable error aborted a transaction (the consumer is rewound to the committed offsets);
 *     finally
 *     {"finished":{"txns","records","committed":{...}}} and exit 0 once the group's committed
 *     offsets equal the input end offsets and no record arrived for 2 s. Fenced or fatal errors:
 *     {"error":...,"class":...}, exit 1. After max-runtime-s (default 240): {"timeout":...}, exit 2.
 *
 * fence &lt;bootstrap&gt; &lt;topic&gt; &lt;transactional-id&gt;
 *     Producer A: initTransactions, beginTransaction, send key "a" value "a-0" to partition 0,
 *     flush. Producer B, same transactional id: initTransactions (fences A and aborts A's open
 *     transaction). A then sends "a-1" to partition 0 and calls commitTransaction, and after
 *     that failure abortTransaction. Prints {"a_send_error": class of the send's failure or
 *     null, "a_error": class of commitTransaction's exception (null if it succeeded),
 *     "a_error_chain": [classes of it and its causes], "a_abort_error": class or null}.
 *     B then commits a transaction with key "b" value "b-0" on partition 0 and prints
 *     {"b_committed":true} (exit 0), or {"error":...} (exit 1).
 *
 * hold &lt;bootstrap&gt; &lt;topic&gt; &lt;transactional-id&gt; &lt;count&gt; &lt;timeout-ms&gt;
 *     transaction.timeout.ms=timeout-ms; initTransactions, beginTransaction, sends i = 0..count-1
 *     (key "i", value "held-i", partition by key), flush. Prints {"i","p","o"} per record and
 *     {"sent":count,"ts":epoch-ms}, then reads one line from stdin:
 *       commit  commitTransaction: {"committed":true} (exit 0) or {"error":...,"class":...} (exit 1)
 *       abort   abortTransaction:  {"aborted":true} (exit 0) or {"error":...} (exit 1)
 *       halt    Runtime.halt(0): the process vanishes with its transaction open (also on EOF).
 *
 * admin &lt;bootstrap&gt; &lt;topic&gt; &lt;partitions&gt; &lt;transactional-id&gt;
 *     The Admin client's transaction views: prints {"list":[{"id","pid","state"},...]}
 *     (listTransactions), {"describe":{"state","pid","epoch","timeout_ms","start_ms","partitions":
 *     ["topic-p",...]}} (describeTransactions of the id) and {"producers":{"partition":[{"pid",
 *     "epoch","last_seq","txn_start"},...],...}} (describeProducers of partitions
 *     0..partitions-1; txn_start -1 when no transaction is open). Exit 0, or 1 with {"error"}.
 * </pre>
 */
public class Txn {
    static final BufferedWriter OUT = new BufferedWriter(
            new OutputStreamWriter(new FileOutputStream(FileDescriptor.out), StandardCharsets.UTF_8),
            1 << 16);

    static final String USAGE = "usage: Txn produce <bootstrap> <topic> <transactional-id> <commit|abort> <count> <prefix>\n"
            + "       Txn read <bootstrap> <topic> <partitions> <read_committed|read_uncommitted> <idle-ms> [timeout-ms]\n"
            + "       Txn ctp <bootstrap> <in-topic> <out-topic> <group> <transactional-id> [max-runtime-s]"
            + " [consumer-property=value ...]\n"
            + "       Txn fence <bootstrap> <topic> <transactional-id>\n"
            + "       Txn hold <bootstrap> <topic> <transactional-id> <count> <timeout-ms>\n"
            + "       Txn admin <bootstrap> <topic> <partitions> <transactional-id>";

    public static void main(String[] args) throws Exception {
        String mode = args.length > 0 ? args[0] : "";
        int rc;
        if (mode.equals("produce") && args.length == 7
                && (args[4].equals("commit") || args[4].equals("abort"))) {
            rc = produce(args[1], args[2], args[3], args[4].equals("commit"), Integer.parseInt(args[5]), args[6]);
        } else if (mode.equals("read") && (args.length == 6 || args.length == 7)
                && (args[4].equals("read_committed") || args[4].equals("read_uncommitted"))) {
            long timeoutMs = args.length == 7 ? Long.parseLong(args[6]) : 60_000;
            rc = read(args[1], args[2], Integer.parseInt(args[3]), args[4], Long.parseLong(args[5]), timeoutMs);
        } else if (mode.equals("ctp") && args.length >= 6) {
            int maxRuntimeS = args.length >= 7 ? Integer.parseInt(args[6]) : 240;
            Properties extra = new Properties();
            for (int i = 7; i < args.length; i++) {
                int eq = args[i].indexOf('=');
                if (eq <= 0) {
                    System.err.println("consumer property must be name=value, not " + args[i]);
                    System.exit(64);
                }
                extra.put(args[i].substring(0, eq), args[i].substring(eq + 1));
            }
            rc = ctp(args[1], args[2], args[3], args[4], args[5], maxRuntimeS, extra);
        } else if (mode.equals("fence") && args.length == 4) {
            rc = fence(args[1], args[2], args[3]);
        } else if (mode.equals("admin") && args.length == 5) {
            rc = admin(args[1], args[2], Integer.parseInt(args[3]), args[4]);
        } else if (mode.equals("hold") && args.length == 6) {
            rc = hold(args[1], args[2], args[3], Integer.parseInt(args[4]), Long.parseLong(args[5]));
        } else {
            System.err.println(USAGE);
            rc = 64;
        }
        flushOut();
        System.exit(rc);
    }

    // ------------------------------------------------------------------ output

    /** Writes one JSON line and flushes it. */
    static synchronized void emit(String line) {
        emitBuffered(line);
        flushOut();
    }

    /** Writes one JSON line without flushing (for bulk record output; flush with flushOut). */
    static synchronized void emitBuffered(String line) {
        try {
            OUT.write(line);
            OUT.write('\n');
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    static synchronized void flushOut() {
        try {
            OUT.flush();
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    static String errorJson(Throwable e) {
        return "{\"error\":" + jsonString(e.toString()) + ",\"class\":" + jsonString(e.getClass().getSimpleName()) + "}";
    }

    static String offsetsJson(Map<Integer, Long> offsets) {
        StringBuilder sb = new StringBuilder("{");
        boolean first = true;
        for (Map.Entry<Integer, Long> e : new TreeMap<>(offsets).entrySet()) {
            sb.append(first ? "" : ",").append('"').append(e.getKey()).append("\":").append(e.getValue());
            first = false;
        }
        return sb.append('}').toString();
    }

    static String classOrNull(Throwable e) {
        return e == null ? "null" : jsonString(e.getClass().getSimpleName());
    }

    // ------------------------------------------------------------------ clients

    static Properties producerProps(String bootstrap, String transactionalId, String clientId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", transactionalId);
        p.put("enable.idempotence", "true");
        p.put("acks", "all");
        p.put("linger.ms", "5");
        p.put("client.id", clientId);
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        return p;
    }

    static Properties consumerProps(String bootstrap, String isolation, String clientId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("isolation.level", isolation);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("client.id", clientId);
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        return p;
    }

    static void closeQuietly(KafkaProducer<?, ?> producer) {
        if (producer == null) {
            return;
        }
        try {
            producer.close(Duration.ofSeconds(5));
        } catch (RuntimeException e) {
            System.err.println("closing producer: " + e);
        }
    }

    /** Sends one record; its acknowledgement (or failure) is printed from the callback. */
    static Future<RecordMetadata> sendLogged(KafkaProducer<String, String> producer, ProducerRecord<String, String> rec,
            int i, AtomicLong acked) {
        return producer.send(rec, (md, e) -> {
            if (e == null) {
                acked.incrementAndGet();
                emit("{\"i\":" + i + ",\"p\":" + md.partition() + ",\"o\":" + md.offset() + "}");
            } else {
                emit("{\"i\":" + i + ",\"error\":" + jsonString(e.toString()) + "}");
            }
        });
    }

    // ------------------------------------------------------------------ produce

    static int produce(String bootstrap, String topic, String transactionalId, boolean commit, int count,
            String prefix) {
        KafkaProducer<String, String> producer = null;
        AtomicLong acked = new AtomicLong();
        try {
            producer = new KafkaProducer<>(producerProps(bootstrap, transactionalId, "strom-compat-txn-producer"));
            producer.initTransactions();
            producer.beginTransaction();
            for (int i = 0; i < count; i++) {
                sendLogged(producer, new ProducerRecord<>(topic, Integer.toString(i), prefix + "-" + i), i, acked);
            }
            producer.flush();
            if (commit) {
                producer.commitTransaction();
            } else {
                producer.abortTransaction();
            }
            emit("{\"done\":{\"outcome\":\"" + (commit ? "commit" : "abort") + "\",\"count\":" + count
                    + ",\"acked\":" + acked.get() + "}}");
            return acked.get() == count ? 0 : 1;
        } catch (KafkaException e) {
            emit(errorJson(e));
            return 1;
        } finally {
            closeQuietly(producer);
        }
    }

    // ------------------------------------------------------------------ read

    static int read(String bootstrap, String topic, int partitions, String isolation, long idleMs, long timeoutMs) {
        List<TopicPartition> tps = new ArrayList<>();
        for (int i = 0; i < partitions; i++) {
            tps.add(new TopicPartition(topic, i));
        }
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(
                consumerProps(bootstrap, isolation, "strom-compat-txn-reader"))) {
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            long start = System.currentTimeMillis();
            long lastRecord = start;
            while (true) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) {
                    emitBuffered("{\"p\":" + r.partition() + ",\"o\":" + r.offset() + ",\"k\":" + jsonOrNull(r.key())
                            + ",\"v\":" + jsonOrNull(r.value()) + "}");
                }
                flushOut();
                long now = System.currentTimeMillis();
                if (!records.isEmpty()) {
                    lastRecord = now;
                }
                if (now - lastRecord >= idleMs || now - start >= timeoutMs) {
                    Map<TopicPartition, Long> ends = consumer.endOffsets(tps, Duration.ofSeconds(10));
                    Map<Integer, Long> positions = new HashMap<>();
                    Map<Integer, Long> endOffsets = new HashMap<>();
                    boolean reached = true;
                    for (TopicPartition tp : tps) {
                        long pos = consumer.position(tp, Duration.ofSeconds(10));
                        positions.put(tp.partition(), pos);
                        endOffsets.put(tp.partition(), ends.get(tp));
                        reached &= pos >= ends.get(tp);
                    }
                    if (reached && now - lastRecord >= idleMs) {
                        emit("{\"end\":" + offsetsJson(positions) + ",\"end_offsets\":" + offsetsJson(endOffsets) + "}");
                        return 0;
                    }
                    if (now - start >= timeoutMs) {
                        emit("{\"timeout\":{\"positions\":" + offsetsJson(positions) + ",\"end_offsets\":"
                                + offsetsJson(endOffsets) + "}}");
                        return 2;
                    }
                }
            }
        } catch (KafkaException e) {
            emit(errorJson(e));
            return 1;
        }
    }

    // ------------------------------------------------------------------ ctp

    static int ctp(String bootstrap, String inTopic, String outTopic, String group, String transactionalId,
            int maxRuntimeS, Properties extra) {
        long deadline = System.currentTimeMillis() + maxRuntimeS * 1000L;
        KafkaProducer<String, String> producer = null;
        KafkaConsumer<String, String> consumer = null;
        int txns = 0;
        int aborted = 0;
        long total = 0;
        try {
            producer = new KafkaProducer<>(producerProps(bootstrap, transactionalId, "strom-compat-txn-ctp"));
            // First, so that an earlier instance is fenced and its open transaction (with its
            // pending offsets) aborted before this consumer fetches the group's offsets.
            producer.initTransactions();
            Properties cp = consumerProps(bootstrap, "read_committed", "strom-compat-txn-ctp");
            cp.put("group.id", group);
            cp.put("session.timeout.ms", "6000");
            cp.put("heartbeat.interval.ms", "1000");
            cp.putAll(extra);
            consumer = new KafkaConsumer<>(cp);
            List<TopicPartition> inTps = new ArrayList<>();
            for (PartitionInfo pi : consumer.partitionsFor(inTopic, Duration.ofSeconds(30))) {
                inTps.add(new TopicPartition(inTopic, pi.partition()));
            }
            final KafkaConsumer<String, String> member = consumer;
            consumer.subscribe(List.of(inTopic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    // Where this member resumes: the group's committed offsets.
                    Map<Integer, Long> positions = new HashMap<>();
                    for (TopicPartition tp : partitions) {
                        positions.put(tp.partition(), member.position(tp, Duration.ofSeconds(30)));
                    }
                    emit("{\"assigned\":" + offsetsJson(positions) + "}");
                }

                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    emit("{\"revoked\":" + partitions.size() + "}");
                }
            });
            emit("{\"started\":{\"transactional_id\":" + jsonString(transactionalId) + ",\"partitions\":" + inTps.size()
                    + "}}");
            long lastData = System.currentTimeMillis();
            while (true) {
                long now = System.currentTimeMillis();
                if (now >= deadline) {
                    emit("{\"timeout\":{\"txns\":" + txns + ",\"records\":" + total + "}}");
                    return 2;
                }
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                if (records.isEmpty()) {
                    if (System.currentTimeMillis() - lastData >= 2000) {
                        Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(new HashSet<>(inTps),
                                Duration.ofSeconds(10));
                        Map<TopicPartition, Long> ends = consumer.endOffsets(inTps, Duration.ofSeconds(10));
                        boolean done = true;
                        Map<Integer, Long> committedOut = new HashMap<>();
                        for (TopicPartition tp : inTps) {
                            OffsetAndMetadata c = committed.get(tp);
                            committedOut.put(tp.partition(), c == null ? -1L : c.offset());
                            done &= c != null && c.offset() == ends.get(tp);
                        }
                        if (done) {
                            emit("{\"finished\":{\"txns\":" + txns + ",\"aborted\":" + aborted + ",\"records\":" + total
                                    + ",\"committed\":" + offsetsJson(committedOut) + "}}");
                            return 0;
                        }
                    }
                    continue;
                }
                lastData = System.currentTimeMillis();
                try {
                    // Phase lines come before the step they name, so a kill -9 shows how far
                    // the transaction got: after "begin" it may have written records, after
                    // "committing" its commit may or may not have reached the coordinator.
                    Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
                    Map<Integer, Long> nextOut = new HashMap<>();
                    for (ConsumerRecord<String, String> r : records) {
                        next.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                        nextOut.put(r.partition(), r.offset() + 1);
                    }
                    String nextJson = offsetsJson(nextOut);
                    emit("{\"begin\":" + (txns + 1) + ",\"records\":" + records.count() + ",\"next\":" + nextJson + "}");
                    producer.beginTransaction();
                    for (ConsumerRecord<String, String> r : records) {
                        producer.send(new ProducerRecord<>(outTopic, r.partition(), r.key(), "out:" + r.value()));
                    }
                    producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
                    emit("{\"committing\":" + (txns + 1) + ",\"next\":" + nextJson + "}");
                    producer.commitTransaction();
                    txns++;
                    total += records.count();
                    emit("{\"txn\":" + txns + ",\"records\":" + records.count() + ",\"next\":" + nextJson + "}");
                } catch (ProducerFencedException | FencedInstanceIdException | OutOfOrderSequenceException
                        | AuthorizationException | UnsupportedVersionException e) {
                    throw e; // fatal: reported below
                } catch (KafkaException e) {
                    // Abortable (as in Kafka's ExactlyOnceMessageProcessor): abort, then resume
                    // from the group's committed offsets so nothing is skipped.
                    aborted++;
                    emit("{\"aborted\":" + aborted + ",\"error\":" + jsonString(e.toString()) + "}");
                    producer.abortTransaction();
                    rewind(consumer);
                }
            }
        } catch (KafkaException e) {
            emit(errorJson(e));
            return 1;
        } finally {
            if (consumer != null) {
                try {
                    consumer.close(Duration.ofSeconds(5));
                } catch (RuntimeException e) {
                    System.err.println("closing consumer: " + e);
                }
            }
            closeQuietly(producer);
        }
    }

    /** Seeks every assigned partition back to the group's committed offset (or the beginning). */
    static void rewind(KafkaConsumer<String, String> consumer) {
        Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(consumer.assignment(),
                Duration.ofSeconds(10));
        for (TopicPartition tp : consumer.assignment()) {
            OffsetAndMetadata c = committed.get(tp);
            if (c == null) {
                consumer.seekToBeginning(List.of(tp));
            } else {
                consumer.seek(tp, c);
            }
        }
    }

    // ------------------------------------------------------------------ fence

    static int fence(String bootstrap, String topic, String transactionalId) {
        KafkaProducer<String, String> a = null;
        KafkaProducer<String, String> b = null;
        try {
            a = new KafkaProducer<>(producerProps(bootstrap, transactionalId, "strom-compat-txn-fence-a"));
            a.initTransactions();
            a.beginTransaction();
            a.send(new ProducerRecord<>(topic, 0, "a", "a-0"));
            a.flush();
            emit("{\"a_sent\":true}");

            b = new KafkaProducer<>(producerProps(bootstrap, transactionalId, "strom-compat-txn-fence-b"));
            b.initTransactions();
            emit("{\"b_initialized\":true}");

            Throwable sendError = null;
            Future<RecordMetadata> f = null;
            try {
                f = a.send(new ProducerRecord<>(topic, 0, "a", "a-1"));
            } catch (KafkaException e) {
                sendError = e;
            }
            Throwable commitError = null;
            try {
                a.commitTransaction();
            } catch (KafkaException e) {
                commitError = e;
            }
            if (f != null) {
                try {
                    f.get();
                } catch (java.util.concurrent.ExecutionException e) {
                    sendError = e.getCause();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            Throwable abortError = null;
            if (commitError != null) {
                try {
                    a.abortTransaction();
                } catch (KafkaException e) {
                    abortError = e;
                }
            }
            StringBuilder chain = new StringBuilder("[");
            for (Throwable t = commitError; t != null; t = t.getCause() == t ? null : t.getCause()) {
                chain.append(chain.length() > 1 ? "," : "").append(jsonString(t.getClass().getSimpleName()));
            }
            chain.append(']');
            emit("{\"a_send_error\":" + classOrNull(sendError) + ",\"a_error\":" + classOrNull(commitError)
                    + ",\"a_error_chain\":" + chain + ",\"a_error_message\":"
                    + (commitError == null ? "null" : jsonString(commitError.toString()))
                    + ",\"a_abort_error\":" + classOrNull(abortError) + "}");
            closeQuietly(a);
            a = null;

            b.beginTransaction();
            b.send(new ProducerRecord<>(topic, 0, "b", "b-0"));
            b.commitTransaction();
            emit("{\"b_committed\":true}");
            return 0;
        } catch (KafkaException e) {
            emit(errorJson(e));
            return 1;
        } finally {
            closeQuietly(a);
            closeQuietly(b);
        }
    }

    // ------------------------------------------------------------------ hold

    static int hold(String bootstrap, String topic, String transactionalId, int count, long timeoutMs)
            throws IOException {
        Properties p = producerProps(bootstrap, transactionalId, "strom-compat-txn-hold");
        p.put("transaction.timeout.ms", Long.toString(timeoutMs));
        KafkaProducer<String, String> producer = null;
        AtomicLong acked = new AtomicLong();
        try {
            producer = new KafkaProducer<>(p);
            producer.initTransactions();
            producer.beginTransaction();
            for (int i = 0; i < count; i++) {
                sendLogged(producer, new ProducerRecord<>(topic, Integer.toString(i), "held-" + i), i, acked);
            }
            producer.flush();
            emit("{\"sent\":" + count + ",\"acked\":" + acked.get() + ",\"ts\":" + System.currentTimeMillis() + "}");
        } catch (KafkaException e) {
            emit(errorJson(e));
            closeQuietly(producer);
            return 1;
        }
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String command = in.readLine();
        command = command == null ? "halt" : command.trim();
        if (command.equals("halt")) {
            flushOut();
            Runtime.getRuntime().halt(0);
        }
        try {
            if (command.equals("commit")) {
                producer.commitTransaction();
                emit("{\"committed\":true}");
            } else if (command.equals("abort")) {
                producer.abortTransaction();
                emit("{\"aborted\":true}");
            } else {
                System.err.println("hold: expected commit, abort or halt on stdin, not " + command);
                return 64;
            }
            return 0;
        } catch (KafkaException e) {
            emit(errorJson(e));
            return 1;
        } finally {
            closeQuietly(producer);
        }
    }

    // ------------------------------------------------------------------ admin

    static int admin(String bootstrap, String topic, int partitions, String transactionalId) {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("default.api.timeout.ms", "30000");
        try (Admin admin = Admin.create(props)) {
            StringBuilder list = new StringBuilder("{\"list\":[");
            String sep = "";
            for (TransactionListing t : admin.listTransactions().all().get()) {
                list.append(sep).append("{\"id\":").append(jsonString(t.transactionalId()))
                        .append(",\"pid\":").append(t.producerId())
                        .append(",\"state\":").append(jsonString(t.state().toString())).append('}');
                sep = ",";
            }
            emit(list.append("]}").toString());

            TransactionDescription d = admin.describeTransactions(List.of(transactionalId))
                    .description(transactionalId).get();
            StringBuilder desc = new StringBuilder("{\"describe\":{\"state\":")
                    .append(jsonString(d.state().toString()))
                    .append(",\"pid\":").append(d.producerId())
                    .append(",\"epoch\":").append(d.producerEpoch())
                    .append(",\"timeout_ms\":").append(d.transactionTimeoutMs())
                    .append(",\"start_ms\":").append(d.transactionStartTimeMs().orElse(-1))
                    .append(",\"partitions\":[");
            sep = "";
            List<String> names = new ArrayList<>();
            for (TopicPartition tp : d.topicPartitions()) {
                names.add(tp.toString());
            }
            java.util.Collections.sort(names);
            for (String n : names) {
                desc.append(sep).append(jsonString(n));
                sep = ",";
            }
            emit(desc.append("]}}").toString());

            List<TopicPartition> tps = new ArrayList<>();
            for (int p = 0; p < partitions; p++) {
                tps.add(new TopicPartition(topic, p));
            }
            Map<TopicPartition, DescribeProducersResult.PartitionProducerState> states =
                    admin.describeProducers(tps).all().get();
            StringBuilder prod = new StringBuilder("{\"producers\":{");
            sep = "";
            for (TopicPartition tp : tps) {
                prod.append(sep).append('"').append(tp.partition()).append("\":[");
                String inner = "";
                for (ProducerState ps : states.get(tp).activeProducers()) {
                    prod.append(inner).append("{\"pid\":").append(ps.producerId())
                            .append(",\"epoch\":").append(ps.producerEpoch())
                            .append(",\"last_seq\":").append(ps.lastSequence())
                            .append(",\"txn_start\":").append(ps.currentTransactionStartOffset().orElse(-1))
                            .append('}');
                    inner = ",";
                }
                prod.append(']');
                sep = ",";
            }
            emit(prod.append("}}").toString());
            return 0;
        } catch (Exception e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            emit("{\"error\":" + jsonString(String.valueOf(cause)) + ",\"class\":"
                    + jsonString(cause.getClass().getName()) + "}");
            return 1;
        }
    }

    // ------------------------------------------------------------------ JSON

    static String jsonOrNull(String s) {
        return s == null ? "null" : jsonString(s);
    }

    static String jsonString(String s) {
        return Tool.jsonString(s);
    }
}
