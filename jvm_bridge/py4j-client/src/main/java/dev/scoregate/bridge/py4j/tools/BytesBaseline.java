package dev.scoregate.bridge.py4j.tools;

/**
 * The benchmark's baseline: tensors as Py4J {@code byte[]} arguments and results, one Py4J call per request. The
 * Python side exists only in the benchmark ({@code perf/suites/py4j.py} adds {@code scoreBytes} to the gateway's
 * entry point); the product gateway does not offer it.
 */
public interface BytesBaseline {
    /** Scores {@code rows x features} native-order float32 {@code x}; returns the scores as native-order float32. */
    byte[] scoreBytes(String model, int rows, int features, byte[] x);
}
