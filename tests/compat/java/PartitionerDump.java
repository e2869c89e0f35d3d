import java.io.BufferedWriter;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.utils.AppInfoParser;
import org.apache.kafka.common.utils.Utils;

/**
 * Prints the partitions Java kafka-clients assigns to 10,000 keys of varied shapes, for the Rust
 * producer's partitioner test (project code, not the seed). Takes no arguments; writes to stdout:
 *
 * <pre>
 * java -cp 'tests/compat/.deps/classes:tests/compat/.deps/jars/*' PartitionerDump \
 *     &gt; crates/strom-client/tests/data/java_partitions.txt
 * </pre>
 *
 * The partition is {@code BuiltInPartitioner.partitionForKey(key, n)}, which is exactly what
 * {@code KafkaProducer.partition()} calls for a keyed record without a custom partitioner
 * ({@code Utils.toPositive(Utils.murmur2(key)) % n}); the hash column is {@code Utils.murmur2(key)}.
 * The output is deterministic (keys come from a SplitMix64 stream seeded by the key's index), so
 * tests/compat/test_partitioner.py can regenerate it and compare it with the committed file.
 */
public class PartitionerDump {
    static final int COUNT = 10_000;
    static final int[] PARTITION_COUNTS = {1, 3, 7, 12, 100};
    static final int MAX_RANDOM_LENGTH = 64;

    /** Code points of every UTF-8 width (1 to 4 bytes), including the width boundaries. */
    static final int[] CODE_POINTS = {
        'a', 'Z', '7', '-', ' ', 0x00, 0x7f, // 1 byte
        0x80, 0xe9, 0x436, 0x3b1, 0x5d0, 0x7ff, // 2 bytes: é ж α א
        0x800, 0x20ac, 0x952e, 0x3042, 0xfffd, 0xffff, // 3 bytes: € 键 あ �
        0x10000, 0x1f511, 0x1d11e, 0x10348, 0x10ffff, // 4 bytes: 🔑 𝄞 𐍈
    };

    static final char[] PRINTABLE =
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@#".toCharArray();

    /** SplitMix64: a tiny deterministic generator, seeded per key. */
    static final class SplitMix64 {
        long state;

        SplitMix64(long seed) {
            state = seed;
        }

        long next() {
            state += 0x9E3779B97F4A7C15L;
            long z = state;
            z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
            z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
            return z ^ (z >>> 31);
        }

        int below(int n) {
            return (int) Long.remainderUnsigned(next(), n);
        }
    }

    /**
     * Key i. By i % 4: 0 = ASCII "key-{i/4}" (so key-0..key-2499 are all present); 1 = random
     * bytes of length (i/4) % 65, i.e. every length 0..64 (length 0 is the empty key); 2 = a UTF-8
     * string of 1..16 code points of 1- to 4-byte widths (what StringSerializer sends); 3 = by
     * (i/4) % 3: a big-endian int (IntegerSerializer), a big-endian long (LongSerializer), or
     * printable ASCII of length 0..64.
     */
    static byte[] key(int i) {
        SplitMix64 rng = new SplitMix64(i);
        int n = i / 4;
        switch (i % 4) {
            case 0:
                return ("key-" + n).getBytes(StandardCharsets.UTF_8);
            case 1: {
                byte[] b = new byte[n % (MAX_RANDOM_LENGTH + 1)];
                for (int j = 0; j < b.length; j++) {
                    b[j] = (byte) rng.next();
                }
                return b;
            }
            case 2: {
                StringBuilder sb = new StringBuilder();
                int chars = 1 + rng.below(16);
                for (int j = 0; j < chars; j++) {
                    sb.appendCodePoint(CODE_POINTS[rng.below(CODE_POINTS.length)]);
                }
                return sb.toString().getBytes(StandardCharsets.UTF_8);
            }
            default:
                switch (n % 3) {
                    case 0:
                        return ByteBuffer.allocate(4).putInt((int) rng.next()).array();
                    case 1:
                        return ByteBuffer.allocate(8).putLong(rng.next()).array();
                    default: {
                        char[] c = new char[rng.below(MAX_RANDOM_LENGTH + 1)];
                        for (int j = 0; j < c.length; j++) {
                            c[j] = PRINTABLE[rng.below(PRINTABLE.length)];
                        }
                        return new String(c).getBytes(StandardCharsets.UTF_8);
                    }
                }
        }
    }

    static String hex(byte[] b) {
        if (b.length == 0) {
            return "-";
        }
        StringBuilder sb = new StringBuilder(b.length * 2);
        for (byte x : b) {
            sb.append(Character.forDigit((x >> 4) & 0xf, 16)).append(Character.forDigit(x & 0xf, 16));
        }
        return sb.toString();
    }

    public static void main(String[] args) throws IOException {
        if (args.length != 0) {
            System.err.println("usage: PartitionerDump  (no arguments; writes the data file to stdout)");
            System.exit(64);
        }
        BufferedWriter out = new BufferedWriter(
                new OutputStreamWriter(new FileOutputStream(FileDescriptor.out), StandardCharsets.UTF_8), 1 << 16);
        StringBuilder columns = new StringBuilder("# columns: key_hex murmur2");
        for (int n : PARTITION_COUNTS) {
            columns.append(" p/").append(n);
        }
        out.write("# Partitions of " + COUNT + " keys as Java kafka-clients " + AppInfoParser.getVersion()
                + " assigns them: BuiltInPartitioner.partitionForKey(key, n),\n"
                + "# i.e. Utils.toPositive(Utils.murmur2(key)) % n, what KafkaProducer uses for keyed records.\n"
                + "# Generated (deterministically) by tests/compat/java/PartitionerDump.java:\n"
                + "#   scripts/setup-test-deps.sh   # jars and compiled classes in tests/compat/.deps\n"
                + "#   java -cp 'tests/compat/.deps/classes:tests/compat/.deps/jars/*' PartitionerDump \\\n"
                + "#       > crates/strom-client/tests/data/java_partitions.txt\n"
                + "# tests/compat/test_partitioner.py regenerates it and fails if it differs; Rust checks it in\n"
                + "# crates/strom-client/tests/producer.rs. One key per line: the key bytes in hex (\"-\" for\n"
                + "# the empty key), Utils.murmur2(key) as a signed int, then the partition for each count.\n");
        out.write(columns.append('\n').toString());
        for (int i = 0; i < COUNT; i++) {
            byte[] k = key(i);
            StringBuilder line = new StringBuilder(hex(k)).append(' ').append(Utils.murmur2(k));
            for (int n : PARTITION_COUNTS) {
                line.append(' ').append(BuiltInPartitioner.partitionForKey(k, n));
            }
            out.write(line.append('\n').toString());
        }
        out.flush();
    }
}
