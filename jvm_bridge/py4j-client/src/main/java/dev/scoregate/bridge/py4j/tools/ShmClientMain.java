package dev.scoregate.bridge.py4j.tools;

import dev.scoregate.bridge.DeadlineExceededException;
import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.GatewayUnavailableException;
import dev.scoregate.bridge.ModelGateways;
import dev.scoregate.bridge.RemoteGateway;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import dev.scoregate.bridge.ScoregateException;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import py4j.ClientServer;

/**
 * The client JVM of the Python integration tests and of the {@code py4j} benchmark suite: connects with
 * {@link ModelGateways#connect} and prints what happened, one tab-separated line per fact, for Python to assert on.
 *
 * <pre>
 * echo    HOST PORT MODEL ROWS REQUESTS   inputs k/2 + r/4 + (f mod 8)/8 (request k, row r, feature f); prints
 *                                         "models", "describe" lines, every output, "servedBy", then OK
 * errors  HOST PORT MODEL                 one "case" line per failure case: name, exception class, message
 * deadline HOST PORT MODEL SLOW_MODEL    a request behind a blocked one: see deadline()
 * restart HOST PORT MODEL THREADS TIMEOUT_MS AFTER
 *                                         closed-loop load; prints READY once every thread has scored, DOWN at the
 *                                         first GatewayUnavailableException, RECONNECTED at the first success after
 *                                         it, and after AFTER more successes a SUMMARY line, then exits
 * bench   HOST PORT MODEL FEATURES        prints "ready", then per stdin line "run shm|bytes ROWS THREADS SECONDS
 *                                         FILE" runs LoadRunner, writes latencies (int64, little-endian) to FILE
 *                                         and prints "done n elapsed_ns errors first_error"; exits on "quit" or EOF
 * </pre>
 * A measuring and testing tool, not product code.
 */
public final class ShmClientMain {
    private static final PrintStream OUT = System.out;
    /** restart: a failure later than its deadline by more than this (scheduling on a busy machine) counts as late. */
    private static final long LATE_SLACK_NANOS = TimeUnit.MILLISECONDS.toNanos(50);

    private ShmClientMain() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            throw new IllegalArgumentException("usage: ShmClientMain echo|errors|restart|bench HOST PORT ...");
        }
        String host = args[1];
        int port = Integer.parseInt(args[2]);
        switch (args[0]) {
            case "echo" -> echo(host, port, args[3], Integer.parseInt(args[4]), Integer.parseInt(args[5]));
            case "errors" -> errors(host, port, args[3]);
            case "deadline" -> deadline(host, port, args[3], args[4]);
            case "restart" -> restart(host, port, args[3], Integer.parseInt(args[4]), Integer.parseInt(args[5]),
                    Integer.parseInt(args[6]));
            case "bench" -> bench(host, port, args[3], Integer.parseInt(args[4]));
            default -> throw new IllegalArgumentException("unknown mode " + args[0]);
        }
        OUT.flush();
    }

    private static RemoteGateway connect(String host, int port, RemoteGateway.Options options) {
        return ModelGateways.connect(host, port, options.withClientName("ShmClientMain-"
                + ProcessHandle.current().pid()));
    }

    private static int features(RemoteGateway gateway, String model) {
        return gateway.describeModels().stream().filter(m -> m.id().name().equals(model)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no model " + model)).features();
    }

    // ------------------------------------------------------------------ echo

    private static void echo(String host, int port, String model, int rows, int requests) {
        try (RemoteGateway gateway = connect(host, port, RemoteGateway.Options.defaults())) {
            OUT.println("models\t" + String.join(",", gateway.models()));
            for (RemoteGateway.Model m : gateway.describeModels()) {
                OUT.println("describe\t" + m.id() + "\t" + m.features() + "\t" + m.outputWidth() + "\t" + m.signature());
            }
            int features = features(gateway, model);
            FeatureArena arena = FeatureArena.allocate(1, rows, features);
            float[] row = new float[features];
            try (FeatureArena.Slot slot = arena.acquire()) {
                for (int k = 0; k < requests; k++) {
                    for (int r = 0; r < rows; r++) {
                        for (int f = 0; f < features; f++) {
                            row[f] = k / 2f + r / 4f + (f % 8) / 8f;
                        }
                        slot.putRow(r, row);
                    }
                    ScoreResult result = gateway.score(slot.request(rows).model(model)
                            .timeout(Duration.ofSeconds(10)).build());
                    for (int r = 0; r < rows; r++) {
                        OUT.println(result.score(r));
                    }
                    OUT.println("servedBy\t" + result.servedBy());
                }
                // The asynchronous path, once: the same request as the last one.
                CompletableFuture<ScoreResult> future = gateway.scoreAsync(slot.request(rows).model(model)
                        .timeout(Duration.ofSeconds(10)).build());
                OUT.println("async\t" + future.join().score(0));
            }
            OUT.println("OK");
        }
    }

    // ------------------------------------------------------------------ errors

    private static void errors(String host, int port, String model) {
        RemoteGateway.Options options = RemoteGateway.Options.defaults().withSlots(32).withMaxRows(4096);
        try (RemoteGateway gateway = connect(host, port, options)) {
            int features = features(gateway, model);
            FeatureArena arena = FeatureArena.allocate(4, 64, features);
            try (FeatureArena.Slot slot = arena.acquire()) {
                for (int r = 0; r < 4; r++) {
                    float[] row = new float[features];
                    Arrays.fill(row, 0.5f);
                    slot.putRow(r, row);
                }
                Duration timeout = Duration.ofSeconds(5);
                slot.features().put(5, Float.NaN);
                report("nan", () -> gateway.score(slot.request(4).model(model).timeout(timeout).build()));
                slot.features().put(5, 0.5f);
                // Half the features per row: Python's InputShapeError, not a Java check.
                report("shape", () -> gateway.score(ScoreRequest.builder().model(model).rows(4)
                        .featureCount(features / 2).featureBuffer(slot.featureBuffer())
                        .scoreBuffer(slot.scoreBuffer()).timeout(timeout).build()));
                report("unknown", () -> gateway.score(slot.request(4).model("nope").timeout(timeout).build()));
                report("version", () -> gateway.score(slot.request(4).model(model + "@999").timeout(timeout).build()));
                ByteBuffer big = ByteBuffer.allocateDirect(8192 * features * 4).order(ByteOrder.nativeOrder());
                ByteBuffer bigOut = ByteBuffer.allocateDirect(8192 * 4).order(ByteOrder.nativeOrder());
                report("rows", () -> gateway.score(ScoreRequest.builder().model(model).rows(8192).featureCount(features)
                        .featureBuffer(big).scoreBuffer(bigOut).timeout(timeout).build()));
                report("expired", () -> gateway.score(slot.request(4).model(model)
                        .deadlineNanos(System.nanoTime() - 1).build()));
                report("after", () -> gateway.score(slot.request(4).model(model).timeout(timeout).build()));
            }
            for (String line : gateway.health().split("\n")) {
                OUT.println("health\t" + line);
            }
        }
    }

    /**
     * A request that waits in the ring past its deadline: {@code slowModel} blocks (the test's model waits for the
     * test), so a request sent behind it, when stdin says {@code go}, fails in Java at its 1 ms deadline; the gateway
     * skips it once the slow one is released (the test checks that it never scored it).
     */
    private static void deadline(String host, int port, String model, String slowModel) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (RemoteGateway gateway = connect(host, port, RemoteGateway.Options.defaults().withSlots(4))) {
            int features = features(gateway, model);
            FeatureArena arena = FeatureArena.allocate(2, 4, features);
            try (FeatureArena.Slot slow = arena.acquire(); FeatureArena.Slot fast = arena.acquire()) {
                slow.putRow(0, new float[features]);
                fast.putRow(0, new float[features]);
                CompletableFuture<ScoreResult> first = gateway.scoreAsync(slow.request(1).model(slowModel)
                        .timeout(Duration.ofSeconds(30)).build());
                OUT.println("sent");
                OUT.flush();
                if (!"go".equals(in.readLine())) {
                    throw new IllegalStateException("expected 'go' on stdin");
                }
                report("deadline", () -> gateway.score(fast.request(1).model(model)
                        .timeout(Duration.ofMillis(1)).build()));
                OUT.flush();
                report("slow", first::join);
                // The gateway answers the abandoned request (as expired) right after the slow one; its slot is free
                // again once it has, so this succeeds on one of the two slots whatever their order.
                report("after", () -> gateway.score(fast.request(1).model(model).timeout(Duration.ofSeconds(5))
                        .build()));
            }
        }
    }

    private static void report(String name, Runnable call) {
        try {
            call.run();
            OUT.println("case\t" + name + "\tok\t-");
        } catch (ScoregateException e) {
            OUT.println("case\t" + name + "\t" + e.getClass().getSimpleName() + "\t" + e.getMessage()
                    .replace('\n', ' '));
        }
    }

    // ------------------------------------------------------------------ restart

    private static void restart(String host, int port, String model, int threads, int timeoutMillis, int after)
            throws InterruptedException {
        RemoteGateway.Options options = RemoteGateway.Options.defaults().withSlots(threads * 2)
                .withWatchInterval(Duration.ofMillis(500)).withReconnectBackoff(Duration.ofMillis(100));
        Duration timeout = Duration.ofMillis(timeoutMillis);
        AtomicLong ok = new AtomicLong();
        AtomicLong unavailable = new AtomicLong();
        AtomicLong deadline = new AtomicLong();
        AtomicLong other = new AtomicLong();
        AtomicLong late = new AtomicLong();
        AtomicLong mismatches = new AtomicLong();
        AtomicLong maxFailNanos = new AtomicLong();
        AtomicLong okAfterReconnect = new AtomicLong();
        AtomicBoolean down = new AtomicBoolean();
        AtomicBoolean reconnected = new AtomicBoolean();
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong downAt = new AtomicLong();
        CountDownLatch finished = new CountDownLatch(1);
        try (RemoteGateway gateway = connect(host, port, options)) {
            int features = features(gateway, model);
            FeatureArena arena = FeatureArena.allocate(threads, 8, features);
            CountDownLatch warm = new CountDownLatch(threads);
            List<Thread> workers = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                Thread w = new Thread(() -> {
                    try (FeatureArena.Slot slot = arena.acquire()) {
                        float[] row = new float[features];
                        for (int r = 0; r < 8; r++) {
                            for (int f = 0; f < features; f++) {
                                row[f] = (thread + 1) * 0.01f * (r + 1) - f * 0.001f;
                            }
                            slot.putRow(r, row);
                        }
                        float[] reference = null;
                        while (!stop.get()) {
                            ScoreRequest request = slot.request(8).model(model).timeout(timeout).build();
                            long t0 = System.nanoTime();
                            try {
                                ScoreResult result = gateway.score(request);
                                if (reference == null) {
                                    reference = new float[8];
                                    for (int r = 0; r < 8; r++) {
                                        reference[r] = result.score(r);
                                    }
                                    warm.countDown();
                                } else {
                                    for (int r = 0; r < 8; r++) {
                                        if (Float.floatToRawIntBits(result.score(r))
                                                != Float.floatToRawIntBits(reference[r])) {
                                            mismatches.incrementAndGet();
                                        }
                                    }
                                }
                                ok.incrementAndGet();
                                if (down.get() && gateway.sessionsOpened() > 1) {
                                    if (reconnected.compareAndSet(false, true)) {
                                        OUT.println("RECONNECTED\t" + TimeUnit.NANOSECONDS.toMillis(
                                                System.nanoTime() - downAt.get()) + " ms after DOWN");
                                    }
                                    if (okAfterReconnect.incrementAndGet() == after) {
                                        finished.countDown();
                                    }
                                }
                            } catch (ScoregateException e) {
                                long took = System.nanoTime() - t0;
                                maxFailNanos.accumulateAndGet(took, Math::max);
                                if (took > timeout.toNanos() + LATE_SLACK_NANOS) {
                                    late.incrementAndGet();
                                }
                                if (e instanceof GatewayUnavailableException) {
                                    unavailable.incrementAndGet();
                                    synchronized (down) { // DOWN is printed before anything that follows it
                                        if (!down.get()) {
                                            downAt.set(System.nanoTime());
                                            OUT.println("DOWN\t" + TimeUnit.NANOSECONDS.toMicros(took) + " us\t"
                                                    + e.getMessage().replace('\n', ' '));
                                            down.set(true);
                                        }
                                    }
                                    try {
                                        gateway.awaitConnected(Duration.ofSeconds(60));
                                    } catch (GatewayUnavailableException stillDown) {
                                        // checked again by the next call
                                    }
                                } else if (e instanceof DeadlineExceededException) {
                                    deadline.incrementAndGet();
                                } else {
                                    other.incrementAndGet();
                                    OUT.println("OTHER\t" + e);
                                }
                            }
                        }
                    }
                }, "restart-load-" + t);
                w.setDaemon(true);
                w.start();
                workers.add(w);
            }
            if (!warm.await(60, TimeUnit.SECONDS)) {
                OUT.println("STUCK\tthreads did not warm up");
                return;
            }
            OUT.println("READY");
            if (!finished.await(120, TimeUnit.SECONDS)) {
                OUT.println("STUCK\tno reconnection within 120 s");
            }
            stop.set(true);
            for (Thread w : workers) {
                w.join(TimeUnit.SECONDS.toMillis(10));
            }
            OUT.println("SUMMARY\tok=" + ok.get() + "\tunavailable=" + unavailable.get() + "\tdeadline="
                    + deadline.get() + "\tother=" + other.get() + "\tlate=" + late.get() + "\tmismatches="
                    + mismatches.get() + "\tsessions=" + gateway.sessionsOpened() + "\tok_after=" + okAfterReconnect.get()
                    + "\tmax_fail_us=" + TimeUnit.NANOSECONDS.toMicros(maxFailNanos.get()));
        }
    }

    // ------------------------------------------------------------------ bench

    private static void bench(String host, int port, String model, int features) throws Exception {
        RemoteGateway.Options options = RemoteGateway.Options.defaults().withSlots(64).withMaxRows(1024);
        int inputRows = 4096;
        ByteBuffer inputs = LoadRunner.inputs(inputRows, features, 11);
        ClientServer py4j = new ClientServer.ClientServerBuilder().pythonAddress(InetAddress.getByName(host))
                .pythonPort(port).autoStartJavaServer(false).enableMemoryManagement(false).build();
        try (RemoteGateway gateway = connect(host, port, options)) {
            BytesBaseline baseline = (BytesBaseline) py4j.getPythonServerEntryPoint(new Class<?>[] {BytesBaseline.class});
            OUT.println("ready");
            OUT.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            String line;
            while ((line = in.readLine()) != null && !line.equals("quit")) {
                String[] f = line.trim().split("\\s+");
                if (f.length != 6 || !f[0].equals("run")) {
                    OUT.println("error\texpected: run shm|bytes ROWS THREADS SECONDS FILE, got " + line);
                    OUT.flush();
                    continue;
                }
                LoadRunner.Call call = f[1].equals("bytes") ? LoadRunner.bytes(baseline) : LoadRunner.gateway(gateway);
                int rows = Integer.parseInt(f[2]);
                int threads = Integer.parseInt(f[3]);
                long nanos = (long) (Double.parseDouble(f[4]) * 1e9);
                LoadRunner.Report report = LoadRunner.run(call, model, features, rows, inputs, inputRows, threads,
                        nanos, Duration.ofSeconds(5), 7);
                write(Path.of(f[5]), report.latenciesNanos());
                OUT.println("done\t" + report.calls() + "\t" + report.elapsedNanos() + "\t" + report.errors() + "\t"
                        + (report.firstError() == null ? "-" : report.firstError().replace('\n', ' ')));
                OUT.flush();
            }
        } finally {
            py4j.shutdown();
        }
    }

    private static void write(Path path, long[] values) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(values.length * Long.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        buffer.asLongBuffer().put(values);
        try (FileChannel file = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            while (buffer.hasRemaining()) {
                file.write(buffer);
            }
        }
    }
}
