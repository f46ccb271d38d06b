package dev.scoregate.perf;

import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.ModelGateway;
import dev.scoregate.bridge.ModelGateways;
import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import dev.scoregate.bridge.inprocess.InProcessGateway;
import java.time.Duration;
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

/**
 * The in-process (JPype) bridge as an ad server calls it: {@code ModelGateways.get().score(request)} on a request
 * built over the thread's own arena slot, from JMH's benchmark threads. The counterpart of {@link OrtJavaBenchmark}:
 * same model (the benchmark MLP, served by Python under the name {@link Caller#model}), same rows ({@link BenchRows}),
 * same batch and thread sweeps.
 *
 * <p><b>Runs only inside a JVM hosted by Python</b> with Scoregate's gateway registered, so JMH cannot fork it:
 * {@code python -m perf run jmh} starts a Python process per fork that hosts the JVM with {@code benchmarks.jar} on
 * the classpath, serves the model through {@code InProcessHost} and calls JMH's {@code Runner} with {@code forks=0},
 * including only this class (the other benchmarks' classes, ONNX Runtime's Java API among them, stay unloaded:
 * two ONNX Runtime native libraries must not share a process). Run anywhere else, setup fails with
 * {@code GatewayUnavailableException}.
 *
 * <ul>
 *   <li>{@link #score}: one scoring call, request built per call as an ad server builds it (deadline included).</li>
 *   <li>{@link #baseline}: the same request built and not sent: the Java-side floor under {@code score}.</li>
 * </ul>
 */
@BenchmarkMode({Mode.Throughput, Mode.SampleTime})
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1, timeUnit = TimeUnit.SECONDS)
@Measurement(iterations = 5, time = 1, timeUnit = TimeUnit.SECONDS)
@Fork(0) // in the hosting JVM only (the Python host also passes forks=0): a forked JVM would have no gateway
public class InProcessBridgeBenchmark {

    /** Far beyond any call here: a deadline must be set, and none should fire. */
    private static final Duration TIMEOUT = Duration.ofSeconds(5);

    /** One benchmark thread's slot, leased for the whole trial, with the rows written once. */
    @State(Scope.Thread)
    public static class Caller {
        /** Rows per call: a single candidate, a small auction, a large one. */
        @Param({"1", "32", "256"})
        public int batch;

        /** The name the Python host serves the benchmark MLP under. */
        @Param({"bench_mlp"})
        public String model;

        ModelId id;
        FeatureArena.Slot slot;

        @Setup(Level.Trial)
        public void setUp() {
            ModelGateway gateway = ModelGateways.get();
            // An arena the gateway registered is scored in place; any other gateway gets a plain one.
            FeatureArena arena = gateway instanceof InProcessGateway inProcess
                    ? inProcess.newArena(1, batch, BenchRows.FEATURES)
                    : FeatureArena.allocate(1, batch, BenchRows.FEATURES);
            slot = arena.acquire();
            BenchRows.fill(slot.features(), batch);
            id = new ModelId(model, null);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            slot.release();
        }
    }

    /** The request, built and not sent. */
    @Benchmark
    public ScoreRequest baseline(Caller caller) {
        return caller.slot.request(caller.batch).model(caller.id).timeout(TIMEOUT).build();
    }

    /** One call through the process-wide gateway, looked up per call as a plugin would. */
    @Benchmark
    public ScoreResult score(Caller caller) {
        ScoreRequest request = caller.slot.request(caller.batch).model(caller.id).timeout(TIMEOUT).build();
        return ModelGateways.get().score(request);
    }
}
