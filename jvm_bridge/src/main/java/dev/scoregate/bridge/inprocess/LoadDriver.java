package dev.scoregate.bridge.inprocess;

import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.ModelGateway;
import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import dev.scoregate.bridge.ScoregateException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * Closed-loop load from real Java threads through a {@link ModelGateway}: the Python side's benchmarks and stress
 * tests drive the bridge with it, inside the JPype-hosted JVM, so every measured call crosses the bridge exactly as
 * an ad server's would.
 *
 * <p>Each thread owns one arena slot. Per call it copies {@code rows} consecutive rows, starting at a random row, out
 * of the shared {@code inputs} matrix into its slot (not timed), scores them (timed), and, when {@code expected} is
 * given, compares every output with {@code expected[model][startRow + r]} within {@code tolerance} (0: bitwise).
 * Threads stop when {@code totalCalls} calls have been started or {@code durationNanos} has passed, whichever is first.
 *
 * <p>Not a product class: an example and a measuring tool (STYLE.md lesson 15).
 */
public final class LoadDriver {

    /**
     * What a run did.
     *
     * @param calls          calls completed (successfully or not)
     * @param errors         calls that threw a {@link ScoregateException}
     * @param mismatches     outputs that differed from {@code expected} beyond the tolerance
     * @param elapsedNanos   wall time from the start barrier to the last thread's end
     * @param latenciesNanos per-call latency of the first calls of each thread (up to the sample cap), unordered
     * @param firstError     the first error's message, or null
     * @param servedBy       with routing keys: successful calls per {@code name@version} that scored them; else empty
     * @param unsticky       with routing keys: calls whose version differed from an earlier call of the same model and
     *                       key (a canary must be sticky: 0)
     */
    public record Report(long calls, long errors, long mismatches, long elapsedNanos, long[] latenciesNanos,
                         String firstError, Map<String, Long> servedBy, long unsticky) {
        public double throughputPerSecond() {
            return elapsedNanos == 0 ? 0 : calls * 1e9 / elapsedNanos;
        }
    }

    private static final int SAMPLE_CAP_PER_THREAD = 1 << 20;

    private LoadDriver() {
    }

    /**
     * Runs the load and returns its report.
     *
     * @param gateway       the gateway to call ({@code ModelGateways.get()})
     * @param models        models to call, round-robin per thread
     * @param features      features per row (all models take the same rows)
     * @param rows          rows per call
     * @param inputs        direct native-order buffer of {@code inputRows x features} float32, read-only here
     * @param inputRows     rows in {@code inputs}; must be at least {@code rows}
     * @param expected      {@code expected[m][row]}: the output of model {@code m} for input row {@code row}, or null
     * @param tolerance     largest accepted absolute difference (0 for bitwise equality)
     * @param threads       Java request threads
     * @param totalCalls    calls to start in total (Long.MAX_VALUE: until the duration ends)
     * @param durationNanos longest run time
     * @param timeoutMillis each call's deadline
     * @param seed          seeds the start-row choice of thread {@code t} with {@code seed + t}
     */
    public static Report run(ModelGateway gateway, String[] models, int features, int rows, ByteBuffer inputs,
                             int inputRows, float[][] expected, double tolerance, int threads, long totalCalls,
                             long durationNanos, long timeoutMillis, long seed) throws InterruptedException {
        return run(gateway, models, features, rows, inputs, inputRows, expected, tolerance, threads, totalCalls,
                durationNanos, timeoutMillis, seed, 0);
    }

    /**
     * {@link #run(ModelGateway, String[], int, int, ByteBuffer, int, float[][], double, int, long, long, long, long)}
     * where each call carries a routing key drawn from {@code [0, keys)} (0: no key), and the report counts which
     * version scored each call and whether each (model, key) always got the same one.
     */
    public static Report run(ModelGateway gateway, String[] models, int features, int rows, ByteBuffer inputs,
                             int inputRows, float[][] expected, double tolerance, int threads, long totalCalls,
                             long durationNanos, long timeoutMillis, long seed, long keys)
            throws InterruptedException {
        if (rows > inputRows || rows <= 0 || threads <= 0 || models.length == 0) {
            throw new IllegalArgumentException("need 0 < rows <= inputRows, threads > 0 and at least one model");
        }
        FeatureArena arena = gateway instanceof InProcessGateway inProcess
                ? inProcess.newArena(threads, rows, features)
                : FeatureArena.allocate(threads, rows, features);
        AtomicLong started = new AtomicLong();
        AtomicLong completed = new AtomicLong();
        AtomicLong errors = new AtomicLong();
        AtomicLong mismatches = new AtomicLong();
        String[] firstError = new String[1];
        ConcurrentHashMap<String, LongAdder> servedBy = new ConcurrentHashMap<>();
        ConcurrentHashMap<Long, ModelId> versionOf = new ConcurrentHashMap<>();
        AtomicLong unsticky = new AtomicLong();
        List<long[]> samples = new ArrayList<>();
        int[] sampleCounts = new int[threads];
        CountDownLatch ready = new CountDownLatch(threads);
        CountDownLatch go = new CountDownLatch(1);
        CountDownLatch done = new CountDownLatch(threads);
        Duration timeout = Duration.ofMillis(timeoutMillis);
        long rowBytes = (long) features * Float.BYTES;
        Thread[] workers = new Thread[threads];
        long[] deadline = new long[1];
        for (int t = 0; t < threads; t++) {
            int thread = t;
            long[] mine = new long[(int) Math.min(SAMPLE_CAP_PER_THREAD, Math.max(1, totalCalls / threads + 1))];
            samples.add(mine);
            workers[t] = new Thread(() -> {
                SplittableRandom random = new SplittableRandom(seed + thread);
                ByteBuffer source = inputs.duplicate().order(ByteOrder.nativeOrder());
                try (FeatureArena.Slot slot = arena.acquire()) {
                    ByteBuffer target = slot.featureBuffer().duplicate().order(ByteOrder.nativeOrder());
                    ready.countDown();
                    go.await();
                    int call = 0;
                    while (System.nanoTime() < deadline[0] && started.incrementAndGet() <= totalCalls) {
                        int model = (thread + call++) % models.length;
                        int start = inputRows == rows ? 0 : random.nextInt(inputRows - rows + 1);
                        source.limit((int) ((start + rows) * rowBytes)).position((int) (start * rowBytes));
                        target.clear();
                        target.put(source);
                        ScoreRequest.Builder builder = slot.request(rows).model(models[model]).timeout(timeout);
                        long key = keys > 0 ? random.nextLong(keys) : -1;
                        ScoreRequest request = (key >= 0 ? builder.routingKey(key) : builder).build();
                        long t0 = System.nanoTime();
                        try {
                            ScoreResult result = gateway.score(request);
                            long took = System.nanoTime() - t0;
                            if (sampleCounts[thread] < mine.length) {
                                mine[sampleCounts[thread]++] = took;
                            }
                            if (key >= 0) {
                                ModelId by = result.servedBy();
                                servedBy.computeIfAbsent(by.toString(), k -> new LongAdder()).increment();
                                ModelId before = versionOf.putIfAbsent(key * models.length + model, by);
                                if (before != null && !before.equals(by)) {
                                    unsticky.incrementAndGet();
                                }
                            }
                            if (expected != null) {
                                float[] want = expected[model];
                                for (int r = 0; r < rows; r++) {
                                    float got = result.score(r);
                                    float exp = want[start + r];
                                    boolean same = tolerance == 0
                                            ? Float.floatToRawIntBits(got) == Float.floatToRawIntBits(exp)
                                            : Math.abs(got - exp) <= tolerance;
                                    if (!same) {
                                        mismatches.incrementAndGet();
                                    }
                                }
                            }
                        } catch (ScoregateException e) {
                            if (errors.getAndIncrement() == 0) {
                                firstError[0] = e.toString();
                            }
                        }
                        completed.incrementAndGet();
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                } finally {
                    done.countDown();
                }
            }, "scoregate-load-" + t);
            workers[t].setDaemon(true);
            workers[t].start();
        }
        if (!ready.await(60, TimeUnit.SECONDS)) {
            throw new IllegalStateException("load threads did not start");
        }
        long begin = System.nanoTime();
        deadline[0] = begin + durationNanos;
        go.countDown();
        long waitNanos = durationNanos + TimeUnit.MILLISECONDS.toNanos(timeoutMillis) + TimeUnit.SECONDS.toNanos(60);
        if (!done.await(waitNanos, TimeUnit.NANOSECONDS)) {
            throw new IllegalStateException("load threads did not finish: a call is stuck (deadlock?)");
        }
        long elapsed = System.nanoTime() - begin;
        int total = 0;
        for (int c : sampleCounts) {
            total += c;
        }
        long[] all = new long[total];
        int at = 0;
        for (int t = 0; t < threads; t++) {
            System.arraycopy(samples.get(t), 0, all, at, sampleCounts[t]);
            at += sampleCounts[t];
        }
        Map<String, Long> counts = new TreeMap<>();
        servedBy.forEach((k, v) -> counts.put(k, v.sum()));
        return new Report(completed.get(), errors.get(), mismatches.get(), elapsed, all, firstError[0], counts,
                unsticky.get());
    }
}
