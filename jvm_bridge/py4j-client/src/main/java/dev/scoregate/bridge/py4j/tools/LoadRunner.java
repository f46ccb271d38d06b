package dev.scoregate.bridge.py4j.tools;

import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.ModelGateway;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoregateException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Closed-loop load from Java threads, for the benchmark suite {@code py4j}: each thread copies {@code rows}
 * consecutive rows from a random start of a shared input matrix into its own arena slot (not timed), then makes one
 * timed call. The call is either {@link ModelGateway#score} (the shared-memory transport) or the Py4J
 * {@code byte[]} baseline, which also times copying the features into a {@code byte[]} and the scores back: work a
 * Py4J caller cannot avoid.
 *
 * <p>A measuring tool, not product code.
 */
final class LoadRunner {

    /** One timed call on thread-owned buffers. */
    interface Call {
        void score(String model, int rows, int features, ByteBuffer featureBuffer, ByteBuffer scoreBuffer,
                   FeatureArena.Slot slot, Duration timeout);
    }

    /** @param latenciesNanos per-call latencies, up to a cap per thread */
    record Report(long calls, long errors, long elapsedNanos, long[] latenciesNanos, String firstError) {
    }

    private static final int SAMPLE_CAP_PER_THREAD = 1 << 18;

    private LoadRunner() {
    }

    /** The shared input matrix: {@code rows x features} float32 in [-1, 1), seeded. */
    static ByteBuffer inputs(int rows, int features, long seed) {
        ByteBuffer buffer = ByteBuffer.allocateDirect(rows * features * Float.BYTES).order(ByteOrder.nativeOrder());
        SplittableRandom random = new SplittableRandom(seed);
        for (int i = 0; i < rows * features; i++) {
            buffer.putFloat(i * Float.BYTES, (float) (random.nextDouble() * 2 - 1));
        }
        return buffer;
    }

    /** The shared-memory transport: one {@link ModelGateway#score} call. */
    static Call gateway(ModelGateway gateway) {
        return (model, rows, features, x, out, slot, timeout) ->
                gateway.score(slot.request(rows).model(model).timeout(timeout).build());
    }

    /** The baseline: the same tensors as Py4J {@code byte[]} arguments and results. */
    static Call bytes(BytesBaseline baseline) {
        return (model, rows, features, x, out, slot, timeout) -> {
            byte[] payload = new byte[rows * features * Float.BYTES];
            x.get(0, payload);
            byte[] scores = baseline.scoreBytes(model, rows, features, payload);
            out.put(0, scores);
        };
    }

    static Report run(Call call, String model, int features, int rows, ByteBuffer inputs, int inputRows, int threads,
                      long durationNanos, Duration timeout, long seed) throws InterruptedException {
        FeatureArena arena = FeatureArena.allocate(threads, rows, features);
        AtomicLong calls = new AtomicLong();
        AtomicLong errors = new AtomicLong();
        String[] firstError = new String[1];
        long[][] samples = new long[threads][];
        int[] counts = new int[threads];
        CountDownLatch ready = new CountDownLatch(threads);
        CountDownLatch go = new CountDownLatch(1);
        CountDownLatch done = new CountDownLatch(threads);
        long[] deadline = new long[1];
        long rowBytes = (long) features * Float.BYTES;
        for (int t = 0; t < threads; t++) {
            int thread = t;
            samples[t] = new long[SAMPLE_CAP_PER_THREAD];
            Thread worker = new Thread(() -> {
                SplittableRandom random = new SplittableRandom(seed + thread);
                ByteBuffer source = inputs.duplicate().order(ByteOrder.nativeOrder());
                try (FeatureArena.Slot slot = arena.acquire()) {
                    ByteBuffer target = slot.featureBuffer().duplicate().order(ByteOrder.nativeOrder());
                    ready.countDown();
                    go.await();
                    long[] mine = samples[thread];
                    while (System.nanoTime() < deadline[0]) {
                        int start = inputRows == rows ? 0 : random.nextInt(inputRows - rows + 1);
                        source.limit((int) ((start + rows) * rowBytes)).position((int) (start * rowBytes));
                        target.clear();
                        target.put(source);
                        long t0 = System.nanoTime();
                        try {
                            call.score(model, rows, features, slot.featureBuffer(), slot.scoreBuffer(), slot, timeout);
                            if (counts[thread] < mine.length) {
                                mine[counts[thread]++] = System.nanoTime() - t0;
                            }
                        } catch (ScoregateException | py4j.Py4JException e) {
                            if (errors.getAndIncrement() == 0) {
                                firstError[0] = e.toString();
                            }
                        }
                        calls.incrementAndGet();
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                } finally {
                    done.countDown();
                }
            }, "scoregate-load-" + t);
            worker.setDaemon(true);
            worker.start();
        }
        if (!ready.await(60, TimeUnit.SECONDS)) {
            throw new IllegalStateException("load threads did not start");
        }
        long begin = System.nanoTime();
        deadline[0] = begin + durationNanos;
        go.countDown();
        if (!done.await(durationNanos + timeout.toNanos() + TimeUnit.SECONDS.toNanos(60), TimeUnit.NANOSECONDS)) {
            throw new IllegalStateException("load threads did not finish: a call is stuck");
        }
        long elapsed = System.nanoTime() - begin;
        int total = 0;
        for (int c : counts) {
            total += c;
        }
        long[] all = new long[total];
        int at = 0;
        for (int t = 0; t < threads; t++) {
            System.arraycopy(samples[t], 0, all, at, counts[t]);
            at += counts[t];
        }
        return new Report(calls.get(), errors.get(), elapsed, all, firstError[0]);
    }
}
