package dev.scoregate.perf;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtLoggingLevel;
import ai.onnxruntime.OrtSession;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
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
 * What a JVM team gets without Scoregate: ONNX Runtime's own Java API scoring the benchmark MLP
 * ({@code perf/bench_model.py}, 64 -> 256 -> 128 -> 1) on the calling thread, with the session options Scoregate
 * uses by default (1 intra-op and 1 inter-op thread, spinning off, sequential, all graph optimisations). The
 * counterpart is {@link InProcessBridgeBenchmark}: same model, same rows ({@link BenchRows}), same batch and thread
 * sweeps; {@code python -m perf run jmh} runs both and reports their throughput ratios.
 *
 * <ul>
 *   <li>{@link #run}: the usual call: inputs in a tensor over a direct buffer (no copy in), ONNX Runtime allocates
 *       the output, the scores are read out ({@link OnnxTensor#getFloatBuffer()}, one copy) and the result closed.</li>
 *   <li>{@link #runPinned}: the best the API offers: the output is pre-bound to a direct buffer too (pinned outputs),
 *       so nothing is allocated or copied per call. This is what the bridge does with arena slots.</li>
 *   <li>{@link #baseline}: JMH's own per-call cost with this state; the floor under both.</li>
 * </ul>
 *
 * <p>One {@link OrtSession} is shared by all benchmark threads ({@code OrtSession.run} is thread-safe), each thread
 * with its own tensors ({@link Input}); threads come from JMH's {@code -t}.
 *
 * <pre>
 * java -jar perf/target/benchmarks.jar OrtJavaBenchmark -p model=$PWD/build/bench/bench_mlp_256_128.onnx -t 8
 * java -jar perf/target/benchmarks.jar 'OrtJavaBenchmark.run$' -p batch=1 -t 32 -f 1 -wi 1 -i 2 -w 1s -r 1s
 * </pre>
 * The model file is built by {@code python -c "from perf.bench_model import bench_mlp_path; bench_mlp_path()"}
 * (the {@code jmh} suite does it); its default path is relative to the repository root.
 */
@BenchmarkMode({Mode.Throughput, Mode.SampleTime})
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1, timeUnit = TimeUnit.SECONDS)
@Measurement(iterations = 5, time = 1, timeUnit = TimeUnit.SECONDS)
@Fork(2)
public class OrtJavaBenchmark {

    /** The loaded model, shared by every benchmark thread. */
    @State(Scope.Benchmark)
    public static class Session {
        /** The ONNX file; {@code -p model=/abs/path.onnx}. */
        @Param({"build/bench/bench_mlp_256_128.onnx"})
        public String model;

        OrtEnvironment env;
        OrtSession session;

        @Setup(Level.Trial)
        public void setUp() throws OrtException {
            Path path = Path.of(model);
            if (!Files.isRegularFile(path)) {
                throw new IllegalStateException(path.toAbsolutePath() + " is missing: build it with perf.bench_model"
                        + ".bench_mlp_path() or pass -p model=/abs/path.onnx");
            }
            env = OrtEnvironment.getEnvironment();
            try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
                // Scoregate's RuntimeOptions defaults (gateway/options.py), as gateway.runtime.session_options sets them.
                options.setIntraOpNumThreads(1);
                options.setInterOpNumThreads(1);
                options.addConfigEntry("session.intra_op.allow_spinning", "0");
                options.addConfigEntry("session.inter_op.allow_spinning", "0");
                options.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
                options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
                options.setSessionLogLevel(OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR);
                session = env.createSession(path.toString(), options);
            }
        }

        @TearDown(Level.Trial)
        public void tearDown() throws OrtException {
            session.close();
        }
    }

    /** One thread's input and output tensors, each over a direct buffer of its own. */
    @State(Scope.Thread)
    public static class Input {
        /** Rows per call: a single candidate, a small auction, a large one. */
        @Param({"1", "32", "256"})
        public int batch;

        OnnxTensor features;
        OnnxTensor scores;
        FloatBuffer scoreBuffer;
        Map<String, OnnxTensor> inputs;
        Map<String, OnnxTensor> outputs;

        @Setup(Level.Trial)
        public void setUp() throws OrtException {
            OrtEnvironment env = OrtEnvironment.getEnvironment(); // the process-wide one Session uses
            FloatBuffer rows = BenchRows.direct(batch * BenchRows.FEATURES);
            BenchRows.fill(rows, batch);
            // A direct native-order buffer is handed to ONNX Runtime by address: no copy per call.
            features = OnnxTensor.createTensor(env, rows, new long[] {batch, BenchRows.FEATURES});
            scoreBuffer = BenchRows.direct(batch);
            scores = OnnxTensor.createTensor(env, scoreBuffer, new long[] {batch});
            inputs = Map.of("features", features);
            outputs = Map.of("score", scores);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            features.close();
            scores.close();
        }
    }

    /** The harness floor: hands back the thread's input map without scoring. */
    @Benchmark
    public Map<String, OnnxTensor> baseline(Input input) {
        return input.inputs;
    }

    /** The usual call: ONNX Runtime allocates the output; the scores are copied out, the result closed. */
    @Benchmark
    public FloatBuffer run(Session session, Input input) throws OrtException {
        try (OrtSession.Result result = session.session.run(input.inputs)) {
            return ((OnnxTensor) result.get(0)).getFloatBuffer();
        }
    }

    /** Output pre-bound to the thread's direct buffer: no allocation, no copy (the Result does not own it). */
    @Benchmark
    public FloatBuffer runPinned(Session session, Input input) throws OrtException {
        // Not try-with-resources: the body would not use the result, which -Xlint:try reports.
        session.session.run(input.inputs, input.outputs).close();
        return input.scoreBuffer;
    }
}
