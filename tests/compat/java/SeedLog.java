import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * Stand-in for the SLF4J logger that Lombok's {@code @Slf4j} gives the seed programs.
 *
 * <p>The wheel we take kafka-clients from ships slf4j-api but no binding, so a real SLF4J
 * logger would print nothing. This class keeps the seed's {@code log.info("...{}...", args)}
 * calls unmodified: it substitutes each {@code {}} with the next argument (SLF4J's rule) and
 * prints one line to stdout in UTF-8 (the seed logs Chinese text), which the tests parse.
 */
final class SeedLog {
    private static final PrintStream OUT =
            new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);

    private final String name;

    SeedLog(Class<?> owner) {
        this.name = owner.getSimpleName();
    }

    void info(String fmt, Object... args) {
        StringBuilder sb = new StringBuilder();
        int argIndex = 0;
        int i = 0;
        while (i < fmt.length()) {
            if (argIndex < args.length && fmt.startsWith("{}", i)) {
                sb.append(args[argIndex++]);
                i += 2;
            } else {
                sb.append(fmt.charAt(i++));
            }
        }
        synchronized (OUT) {
            OUT.println("INFO " + name + " - " + sb);
        }
    }
}
