package dev.scoregate.perf;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Random;

/**
 * The feature rows that both sides of the ONNX-Runtime-Java-versus-bridge comparison score ({@link OrtJavaBenchmark},
 * {@link InProcessBridgeBenchmark}): standard normal values from a fixed seed, {@value #FEATURES} per row, the input
 * of the benchmark MLP ({@code perf/bench_model.py}: 64 -> 256 -> 128 -> 1). Plain JDK code on purpose: the bridge
 * benchmark runs in a JVM that must never load ONNX Runtime's Java classes (its native library would then sit beside
 * Python's in one process).
 */
final class BenchRows {
    /** Input width of the benchmark MLP. */
    static final int FEATURES = 64;

    /** Every benchmark thread of every fork, on either side, scores the same rows. */
    static final long SEED = 11L;

    private BenchRows() {
    }

    /** A direct, native-order buffer of {@code floats} floats: the only kind either side reads without a copy. */
    static FloatBuffer direct(int floats) {
        return ByteBuffer.allocateDirect(floats * Float.BYTES).order(ByteOrder.nativeOrder()).asFloatBuffer();
    }

    /** Writes {@code rows} rows from absolute index 0 of {@code target}; its position and limit are left alone. */
    static void fill(FloatBuffer target, int rows) {
        Random random = new Random(SEED);
        for (int i = 0; i < rows * FEATURES; i++) {
            target.put(i, (float) random.nextGaussian());
        }
    }
}
