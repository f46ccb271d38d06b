package dev.scoregate.perf;

import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.MethodDescriptor;
import io.grpc.stub.ClientCalls;
import java.io.InputStream;
import java.nio.ByteBuffer;
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
 * Scoregate's KServe V2 gRPC endpoint on loopback, called from Java the way a non-bridge JVM client would: a unary
 * {@code ModelInfer} per call on one shared HTTP/2 channel, the features in {@code raw_input_contents}, the scores read
 * from {@code raw_output_contents}. Same model, rows, batch and thread sweeps as {@link OrtJavaBenchmark}.
 *
 * <p>Needs the endpoint serving the benchmark MLP: {@code python -m gateway serve-grpc --models DIR --port P}, then
 * {@code java -jar perf/target/benchmarks.jar GrpcBenchmark -p port=P}; {@code python -m perf run jmh} does both.
 * The request is encoded per call ({@link V2Wire}), as generated stubs would, and its time is part of the call.
 */
@BenchmarkMode({Mode.Throughput, Mode.SampleTime})
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1, timeUnit = TimeUnit.SECONDS)
@Measurement(iterations = 5, time = 1, timeUnit = TimeUnit.SECONDS)
@Fork(2)
public class GrpcBenchmark {

    private static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(byte[] value) {
            return V2Wire.stream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
            return V2Wire.readAll(stream);
        }
    };

    private static final MethodDescriptor<byte[], byte[]> MODEL_INFER = MethodDescriptor.<byte[], byte[]>newBuilder()
            .setType(MethodDescriptor.MethodType.UNARY)
            .setFullMethodName(V2Wire.MODEL_INFER)
            .setRequestMarshaller(BYTES)
            .setResponseMarshaller(BYTES)
            .build();

    /** One channel per fork, shared by the benchmark threads, as gRPC recommends. */
    @State(Scope.Benchmark)
    public static class Endpoint {
        @Param({"8001"})
        public int port;

        ManagedChannel channel;

        @Setup(Level.Trial)
        public void setUp() {
            channel = ManagedChannelBuilder.forAddress("127.0.0.1", port).usePlaintext()
                    .maxInboundMessageSize(64 << 20).build();
        }

        @TearDown(Level.Trial)
        public void tearDown() throws InterruptedException {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    /** One benchmark thread's rows, in a direct buffer as an ad server would hold them. */
    @State(Scope.Thread)
    public static class Caller {
        @Param({"1", "32", "256"})
        public int batch;

        @Param({"bench_mlp"})
        public String model;

        /** The benchmark MLP's input tensor. */
        @Param({"features"})
        public String input;

        ByteBuffer rows;

        @Setup(Level.Trial)
        public void setUp() {
            rows = ByteBuffer.allocateDirect(batch * BenchRows.FEATURES * Float.BYTES)
                    .order(java.nio.ByteOrder.nativeOrder());
            BenchRows.fill(rows.asFloatBuffer(), batch);
        }
    }

    /** One {@code ModelInfer}: encode, send, wait, find the scores. */
    @Benchmark
    public ByteBuffer infer(Endpoint endpoint, Caller caller) {
        byte[] request = V2Wire.inferRequest(caller.model, caller.input, caller.rows, caller.batch, BenchRows.FEATURES);
        byte[] response = ClientCalls.blockingUnaryCall(endpoint.channel, MODEL_INFER,
                CallOptions.DEFAULT.withDeadlineAfter(5, TimeUnit.SECONDS), request);
        return V2Wire.rawOutput(response);
    }
}
