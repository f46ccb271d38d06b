package dev.scoregate.perf;

import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.ScoreRequest;
import java.nio.FloatBuffer;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * What it costs an ad server to get a batch of feature rows into a {@link FeatureArena} slot, against copying the
 * same rows into a plain heap {@code float[]} ({@link #baseline}), and what a slot lease costs.
 *
 * <p>Read the write benchmarks as ratios to {@code baseline} at the same {@code rows}: the arena is worth it only if
 * filling a slot costs about what filling a heap array does, because the slot saves the copy (and the JNI pinning)
 * that a heap array would need on its way to ONNX Runtime.
 *
 * <pre>
 * java -jar perf/target/benchmarks.jar FeatureArenaBenchmark                       # reported numbers (2 forks)
 * java -jar perf/target/benchmarks.jar FeatureArenaBenchmark.acquireRelease -t 2   # lease under contention
 * java -jar perf/target/benchmarks.jar FeatureArenaBenchmark -f 1 -wi 1 -i 1 -w 1s -r 1s -p rows=1   # smoke
 * </pre>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 5, time = 1, timeUnit = TimeUnit.SECONDS)
@Measurement(iterations = 5, time = 1, timeUnit = TimeUnit.SECONDS)
@Fork(2)
public class FeatureArenaBenchmark {

    /** Fixed so every fork and every run writes the same values. */
    private static final long SEED = 42L;

    private static final ModelId MODEL = new ModelId("ctr", null);

    /** One thread's batch: its rows, a heap matrix to copy them into, and a slot leased for the whole trial. */
    @State(Scope.Thread)
    public static class Batch {
        /** Candidates scored in one call: a single ad, a typical auction, a large one. */
        @Param({"1", "64", "256"})
        public int rows;

        @Param({"64"})
        public int features;

        float[][] values;
        float[] heap;
        FeatureArena arena;
        FeatureArena.Slot slot;
        long deadlineNanos;

        @Setup(Level.Trial)
        public void setUp() {
            Random random = new Random(SEED);
            values = new float[rows][features];
            for (float[] row : values) {
                for (int f = 0; f < features; f++) {
                    row[f] = random.nextFloat();
                }
            }
            heap = new float[rows * features];
            arena = FeatureArena.allocate(1, rows, features);
            slot = arena.acquire();
            deadlineNanos = Long.MAX_VALUE; // never checked here; build() takes it as given
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            slot.release();
        }
    }

    /** One arena shared by every benchmark thread, with a slot for each (run with {@code -t} up to 64). */
    @State(Scope.Benchmark)
    public static class SharedArena {
        FeatureArena arena;

        @Setup(Level.Trial)
        public void setUp() {
            arena = FeatureArena.allocate(64, 256, 64);
        }
    }

    /** The floor: the same rows copied into a heap {@code float[]}, row by row. */
    @Benchmark
    public float[] baseline(Batch batch) {
        int features = batch.features;
        for (int row = 0; row < batch.rows; row++) {
            System.arraycopy(batch.values[row], 0, batch.heap, row * features, features);
        }
        return batch.heap;
    }

    /** {@link FeatureArena.Slot#putRow}: the checked, one-call-per-row API. */
    @Benchmark
    public FeatureArena.Slot putRow(Batch batch) {
        FeatureArena.Slot slot = batch.slot;
        for (int row = 0; row < batch.rows; row++) {
            slot.putRow(row, batch.values[row]);
        }
        return slot;
    }

    /** The slot's {@link FloatBuffer} view with relative bulk puts: no per-row checks of ours. */
    @Benchmark
    public FloatBuffer bulkPut(Batch batch) {
        FloatBuffer view = batch.slot.features();
        view.clear();
        for (int row = 0; row < batch.rows; row++) {
            view.put(batch.values[row]);
        }
        return view;
    }

    /** The per-call request on a filled slot: one builder, one request, validation included. */
    @Benchmark
    public ScoreRequest buildRequest(Batch batch) {
        return batch.slot.request(batch.rows).model(MODEL).deadlineNanos(batch.deadlineNanos).build();
    }

    /** Lease and return one slot: the per-request overhead of the arena's free list. */
    @Benchmark
    public void acquireRelease(SharedArena shared, Blackhole blackhole) {
        FeatureArena.Slot slot = shared.arena.acquire();
        blackhole.consume(slot.index());
        slot.release();
    }
}
