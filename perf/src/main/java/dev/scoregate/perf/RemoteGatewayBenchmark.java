package dev.scoregate.perf;

import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.ModelGateways;
import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.RemoteGateway;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
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
 * The out-of-process mode as an ad server in its own JVM calls it: {@code ModelGateways.connect(host, port)}, then
 * {@code score(request)} over the session's shared-memory slot ring (Py4J carries only the session's control). Same
 * model, rows, batch and thread sweeps as {@link OrtJavaBenchmark} and {@link InProcessBridgeBenchmark}.
 *
 * <p>Needs a gateway serving the benchmark MLP: {@code python -m gateway serve-py4j --models DIR --port P}, then
 * {@code java -jar perf/target/benchmarks.jar RemoteGatewayBenchmark -p port=P}. {@code python -m perf run jmh}
 * starts that server per round and passes its port.
 */
@BenchmarkMode({Mode.Throughput, Mode.SampleTime})
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1, timeUnit = TimeUnit.SECONDS)
@Measurement(iterations = 5, time = 1, timeUnit = TimeUnit.SECONDS)
@Fork(2)
public class RemoteGatewayBenchmark {

    private static final Duration TIMEOUT = Duration.ofSeconds(5);

    /** One session per fork, shared by the benchmark threads (the client's slot ring is thread-safe). */
    @State(Scope.Benchmark)
    public static class Remote {
        /** Port of the gateway's Py4J control endpoint on 127.0.0.1. */
        @Param({"25334"})
        public int port;

        RemoteGateway gateway;

        @Setup(Level.Trial)
        public void setUp() {
            gateway = ModelGateways.connect("127.0.0.1", port);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            gateway.close();
        }
    }

    /** One benchmark thread's plain (unregistered) arena slot with the rows written once. */
    @State(Scope.Thread)
    public static class Caller {
        @Param({"1", "32", "256"})
        public int batch;

        @Param({"bench_mlp"})
        public String model;

        ModelId id;
        FeatureArena.Slot slot;

        @Setup(Level.Trial)
        public void setUp() {
            slot = FeatureArena.allocate(1, batch, BenchRows.FEATURES).acquire();
            BenchRows.fill(slot.features(), batch);
            id = new ModelId(model, null);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            slot.release();
        }
    }

    /** One call over the shared-memory ring: features copied into a ring slot, scores copied back. */
    @Benchmark
    public ScoreResult score(Remote remote, Caller caller) {
        ScoreRequest request = caller.slot.request(caller.batch).model(caller.id).timeout(TIMEOUT).build();
        return remote.gateway.score(request);
    }
}
