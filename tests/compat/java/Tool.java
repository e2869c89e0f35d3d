import java.io.BufferedWriter;
import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * The Java kafka-clients side of the compatibility suite (project code, not the seed).
 *
 * <pre>
 * produce &lt;bootstrap&gt; &lt;topic&gt; &lt;count&gt; &lt;compression&gt;
 *     Sends records 0..count-1 (idempotent, acks=all) built by the same rule as
 *     tests/compat/records.py: key, value, headers and timestamp = base_ts + i.
 *     Prints one JSON line per acknowledgement {"i","p","o"} (or {"i","error"}) and a
 *     final {"summary":{"acked","errors","base_ts"}}. Exit 1 if any send failed.
 *
 * consume &lt;bootstrap&gt; &lt;topic&gt; &lt;partitions&gt; &lt;expected-count&gt; [timeout-s]
 *     Assigns partitions 0..partitions-1 from the beginning (no group), prints each record
 *     as a JSON line {"p","o","k","v","h","ts","tt"} (bytes base64, null as null) until
 *     expected-count records arrived, then polls one more second to expose duplicates.
 *     Exit 2 if the count was not reached before the timeout (default 120 s).
 *
 * group-consume &lt;bootstrap&gt; &lt;topic&gt; &lt;group&gt; &lt;auto|sync|none&gt; [session-timeout-ms|-] [client-id] [max-runtime-s] [property=value ...]
 *     A member of a consumer group (classic unless a property says group.protocol=consumer):
 *     subscribe(topic) with group.id=group,
 *     auto.offset.reset=earliest, String keys and values. Commit mode: auto =
 *     enable.auto.commit=true (Kafka's 5 s interval); sync = enable.auto.commit=false and
 *     commitSync() after every non-empty poll; none = never commits. "-" keeps the client's
 *     default session.timeout.ms (45000); give "-" with group.protocol=consumer, whose consumer
 *     refuses session.timeout.ms. Each trailing property=value is set on the consumer last, e.g.
 *     group.protocol=consumer, group.remote.assignor=range, group.instance.id=static-1 or
 *     partition.assignment.strategy=org.apache.kafka.clients.consumer.CooperativeStickyAssignor.
 *     Prints, one JSON line each, flushed as they happen:
 *       {"partition","offset","key","value"}                          per record
 *       {"event":"assigned"|"revoked"|"lost","partitions":[...]}        per rebalance callback
 *       {"event":"committed","offsets":{"partition":next-offset,...}}   after each commitSync
 *       {"event":"error","error":"..."}                                 the poll loop failed (exit 1)
 *       {"event":"closed"}                                              after close()
 *     Runs until SIGTERM (then closes cleanly: LeaveGroup, exit 0; a classic static member
 *     closes without LeaveGroup, as kafka-clients does), SIGKILL, or max-runtime-s
 *     (default 600, so an orphan cannot outlive a crashed test run by long).
 *
 * perf-consume &lt;bootstrap&gt; &lt;topic&gt; &lt;partitions&gt; &lt;records&gt;
 *     Reads records from the beginning of partitions 0..partitions-1 (assign, no group,
 *     byte arrays, the client's default fetch settings) until `records` arrived, timing as
 *     kafka-consumer-perf-test does (from the first poll to the last record), and prints one
 *     JSON line {"records","bytes","elapsed_ms","records_per_sec","mb_per_sec"} (bytes = key +
 *     value, MB = 2^20 bytes). Exit 2 if fewer records arrived within 300 s.
 * </pre>
 */
public class Tool {
    /** Filler for record values; must equal PAD in tests/compat/records.py. */
    static final String PAD = "0123456789abcdefghijklmnopqrstuvwxyz".repeat(10);

    static final BufferedWriter OUT = new BufferedWriter(
            new OutputStreamWriter(new FileOutputStream(FileDescriptor.out), StandardCharsets.UTF_8),
            1 << 16);

    public static void main(String[] args) throws Exception {
        if (args.length >= 5 && args[0].equals("produce")) {
            System.exit(produce(args[1], args[2], Integer.parseInt(args[3]), args[4]));
        } else if (args.length >= 5 && args[0].equals("consume")) {
            int timeoutS = args.length >= 6 ? Integer.parseInt(args[5]) : 120;
            System.exit(consume(args[1], args[2], Integer.parseInt(args[3]), Long.parseLong(args[4]), timeoutS));
        } else if (args.length >= 5 && args[0].equals("perf-consume")) {
            System.exit(perfConsume(args[1], args[2], Integer.parseInt(args[3]), Long.parseLong(args[4])));
        } else if (args.length >= 5 && args[0].equals("group-consume")) {
            String sessionTimeoutMs = args.length >= 6 && !args[5].equals("-") ? args[5] : null;
            String clientId = args.length >= 7 ? args[6] : "strom-compat-java-group-member";
            int maxRuntimeS = args.length >= 8 ? Integer.parseInt(args[7]) : 600;
            Properties extra = new Properties();
            for (int i = 8; i < args.length; i++) {
                int eq = args[i].indexOf('=');
                if (eq <= 0) {
                    System.err.println("consumer property must be name=value, not " + args[i]);
                    System.exit(64);
                }
                extra.put(args[i].substring(0, eq), args[i].substring(eq + 1));
            }
            System.exit(groupConsume(args[1], args[2], args[3], args[4], sessionTimeoutMs, clientId, maxRuntimeS,
                    extra));
        } else {
            System.err.println("usage: Tool produce <bootstrap> <topic> <count> <compression>\n"
                    + "       Tool consume <bootstrap> <topic> <partitions> <expected-count> [timeout-s]\n"
                    + "       Tool group-consume <bootstrap> <topic> <group> <auto|sync|none>"
                    + " [session-timeout-ms|-] [client-id] [max-runtime-s] [property=value ...]");
            System.exit(64);
        }
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static synchronized void emit(String line) {
        try {
            OUT.write(line);
            OUT.write('\n');
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    static synchronized void flushOut() throws IOException {
        OUT.flush();
    }

    static int produce(String bootstrap, String topic, int count, String compression) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("acks", "all");
        p.put("enable.idempotence", "true");
        p.put("compression.type", compression);
        p.put("linger.ms", "5");
        p.put("client.id", "strom-compat-java-producer");
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        final String producerName = "java";
        final long baseTs = System.currentTimeMillis();
        final AtomicLong acked = new AtomicLong();
        final AtomicLong errors = new AtomicLong();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            for (int n = 0; n < count; n++) {
                final int i = n;
                RecordHeaders headers = new RecordHeaders();
                headers.add("i", utf8(Integer.toString(i)));
                headers.add("producer", utf8(producerName));
                headers.add("bin", new byte[] {(byte) (i % 256), 0, (byte) 255});
                headers.add("dup", utf8("a"));
                headers.add("dup", utf8("b"));
                String value = "v-" + i + "-" + producerName + "-" + PAD.substring(0, 20 + i % 200);
                ProducerRecord<byte[], byte[]> rec = new ProducerRecord<>(
                        topic, null, baseTs + i, utf8("k-" + i), utf8(value), headers);
                producer.send(rec, (md, e) -> {
                    if (e == null) {
                        acked.incrementAndGet();
                        emit("{\"i\":" + i + ",\"p\":" + md.partition() + ",\"o\":" + md.offset() + "}");
                    } else {
                        errors.incrementAndGet();
                        emit("{\"i\":" + i + ",\"error\":" + jsonString(e.toString()) + "}");
                    }
                });
            }
            producer.flush();
        }
        emit("{\"summary\":{\"acked\":" + acked.get() + ",\"errors\":" + errors.get()
                + ",\"base_ts\":" + baseTs + "}}");
        flushOut();
        return errors.get() == 0 && acked.get() == count ? 0 : 1;
    }

    static int consume(String bootstrap, String topic, int partitions, long expected, int timeoutS)
            throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("client.id", "strom-compat-java-consumer");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        long seen = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < partitions; i++) {
                tps.add(new TopicPartition(topic, i));
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            long deadline = System.currentTimeMillis() + timeoutS * 1000L;
            long drainUntil = Long.MAX_VALUE;
            while (System.currentTimeMillis() < Math.min(deadline, drainUntil)) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    emit(recordJson(r));
                    seen++;
                }
                if (seen >= expected && drainUntil == Long.MAX_VALUE) {
                    drainUntil = System.currentTimeMillis() + 1000;
                }
            }
            if (seen < expected) {
                // Say where each partition stands, so a short read can be diagnosed.
                for (TopicPartition tp : tps) {
                    String end;
                    try {
                        end = String.valueOf(consumer.endOffsets(List.of(tp), Duration.ofSeconds(5)).get(tp));
                    } catch (RuntimeException e) {
                        end = e.toString();
                    }
                    String pos;
                    try {
                        pos = String.valueOf(consumer.position(tp, Duration.ofSeconds(5)));
                    } catch (RuntimeException e) {
                        pos = e.toString();
                    }
                    System.err.println("consume timed out: " + tp + " position=" + pos + " end=" + end);
                }
            }
        }
        flushOut();
        return seen >= expected ? 0 : 2;
    }

    static int perfConsume(String bootstrap, String topic, int partitions, long records) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("client.id", "strom-compat-java-perf-consumer");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        long seen = 0;
        long bytes = 0;
        long start;
        long last;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < partitions; i++) {
                tps.add(new TopicPartition(topic, i));
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            start = System.nanoTime();
            last = start;
            long deadline = start + 300_000_000_000L;
            while (seen < records && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(100))) {
                    seen++;
                    bytes += (r.key() == null ? 0 : r.key().length) + (r.value() == null ? 0 : r.value().length);
                }
                last = System.nanoTime();
            }
        }
        double elapsedS = (last - start) / 1e9;
        emit("{\"records\":" + seen + ",\"bytes\":" + bytes + ",\"elapsed_ms\":" + (elapsedS * 1000)
                + ",\"records_per_sec\":" + (seen / elapsedS) + ",\"mb_per_sec\":"
                + (bytes / 1048576.0 / elapsedS) + "}");
        flushOut();
        return seen >= records ? 0 : 2;
    }

    static int groupConsume(String bootstrap, String topic, String group, String commitMode,
            String sessionTimeoutMs, String clientId, int maxRuntimeS, Properties extra) throws Exception {
        if (!commitMode.equals("auto") && !commitMode.equals("sync") && !commitMode.equals("none")) {
            System.err.println("commit mode must be auto, sync or none, not " + commitMode);
            return 64;
        }
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", group);
        p.put("client.id", clientId);
        p.put("enable.auto.commit", commitMode.equals("auto") ? "true" : "false");
        p.put("auto.offset.reset", "earliest");
        if (sessionTimeoutMs != null) {
            p.put("session.timeout.ms", sessionTimeoutMs);
        }
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        p.putAll(extra);

        final KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p);
        final CountDownLatch closed = new CountDownLatch(1);
        int rc = 0;
        // SIGTERM: wake the poll loop and wait for it to close the consumer (LeaveGroup).
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            consumer.wakeup();
            try {
                closed.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));
        try {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    rebalanceEvent("assigned", partitions);
                }

                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    rebalanceEvent("revoked", partitions);
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> partitions) {
                    rebalanceEvent("lost", partitions);
                }
            });
            long deadline = System.currentTimeMillis() + maxRuntimeS * 1000L;
            while (System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                if (records.isEmpty()) {
                    continue;
                }
                Map<Integer, Long> next = new TreeMap<>();
                for (ConsumerRecord<String, String> r : records) {
                    emit("{\"partition\":" + r.partition() + ",\"offset\":" + r.offset()
                            + ",\"key\":" + jsonOrNull(r.key()) + ",\"value\":" + jsonOrNull(r.value()) + "}");
                    next.put(r.partition(), r.offset() + 1);
                }
                flushOut();
                if (commitMode.equals("sync")) {
                    Map<TopicPartition, OffsetAndMetadata> offsets = new TreeMap<>(
                            (a, b) -> Integer.compare(a.partition(), b.partition()));
                    for (Map.Entry<Integer, Long> e : next.entrySet()) {
                        offsets.put(new TopicPartition(topic, e.getKey()), new OffsetAndMetadata(e.getValue()));
                    }
                    consumer.commitSync(offsets);
                    StringBuilder sb = new StringBuilder("{\"event\":\"committed\",\"offsets\":{");
                    boolean first = true;
                    for (Map.Entry<Integer, Long> e : next.entrySet()) {
                        sb.append(first ? "" : ",").append('"').append(e.getKey()).append("\":").append(e.getValue());
                        first = false;
                    }
                    emit(sb.append("}}").toString());
                    flushOut();
                }
            }
        } catch (WakeupException e) {
            // SIGTERM: fall through to a clean close.
        } catch (RuntimeException e) {
            emit("{\"event\":\"error\",\"error\":" + jsonString(e.toString()) + "}");
            rc = 1;
        } finally {
            consumer.close(Duration.ofSeconds(20));
            emit("{\"event\":\"closed\"}");
            flushOut();
            closed.countDown();
        }
        return rc;
    }

    static void rebalanceEvent(String event, Collection<TopicPartition> partitions) {
        StringBuilder sb = new StringBuilder("{\"event\":\"").append(event).append("\",\"partitions\":[");
        boolean first = true;
        for (TopicPartition tp : partitions) {
            sb.append(first ? "" : ",").append(tp.partition());
            first = false;
        }
        emit(sb.append("]}").toString());
        try {
            flushOut();
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    static String jsonOrNull(String s) {
        return s == null ? "null" : jsonString(s);
    }

    static String recordJson(ConsumerRecord<byte[], byte[]> r) {
        StringBuilder sb = new StringBuilder(256);
        sb.append("{\"p\":").append(r.partition());
        sb.append(",\"o\":").append(r.offset());
        sb.append(",\"k\":").append(b64(r.key()));
        sb.append(",\"v\":").append(b64(r.value()));
        sb.append(",\"h\":[");
        boolean first = true;
        for (Header h : r.headers()) {
            if (!first) {
                sb.append(',');
            }
            first = false;
            sb.append('[').append(jsonString(h.key())).append(',').append(b64(h.value())).append(']');
        }
        sb.append("],\"ts\":").append(r.timestamp());
        sb.append(",\"tt\":").append(jsonString(r.timestampType().toString()));
        sb.append('}');
        return sb.toString();
    }

    static String b64(byte[] b) {
        return b == null ? "null" : "\"" + Base64.getEncoder().encodeToString(b) + "\"";
    }

    static String jsonString(String s) {
        StringBuilder sb = new StringBuilder(s.length() + 2);
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        return sb.append('"').toString();
    }
}
