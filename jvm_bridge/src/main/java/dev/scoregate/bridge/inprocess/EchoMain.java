package dev.scoregate.bridge.inprocess;

import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.ModelGateway;
import dev.scoregate.bridge.ModelGateways;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import java.io.PrintStream;
import java.time.Duration;

/**
 * A smoke client for the Python side's integration tests, run inside the JPype-hosted JVM: looks up
 * {@link ModelGateways#get()}, scores {@value #REQUESTS} requests of {@value #ROWS} rows through one arena slot on
 * model {@code args[0]}, and prints every output, one per line ({@link Float#toString}), then {@code OK}.
 *
 * <p>Usage: {@code EchoMain <model> [features]}. The feature count comes from the gateway's {@link ModelSpec} when it
 * is an {@link InProcessGateway} (whose registered arena makes each call the in-place path); any other gateway needs
 * {@code features} and is assumed to give one output per row.
 *
 * <p>Inputs, exact in float32: request {@code k}, row {@code r}, feature {@code f} holds
 * {@code k / 2 + r / 4 + (f mod 8) / 8}. Outputs print in order: request, then row, then output column.
 */
public final class EchoMain {
    static final int REQUESTS = 3;
    static final int ROWS = 2;

    private EchoMain() {
    }

    public static void main(String[] args) {
        run(args, System.out);
    }

    static void run(String[] args, PrintStream out) {
        if (args.length < 1 || args.length > 2) {
            throw new IllegalArgumentException("usage: EchoMain <model> [features]");
        }
        String model = args[0];
        ModelGateway gateway = ModelGateways.get();
        int features;
        int width;
        FeatureArena arena;
        if (gateway instanceof InProcessGateway inProcess) {
            ModelSpec spec = inProcess.spec(model);
            features = spec.features();
            width = spec.outputWidth();
            // A slot's score region holds maxRows floats: room for ROWS rows of `width` outputs.
            arena = inProcess.newArena(1, ROWS * width, features);
        } else {
            if (args.length < 2) {
                throw new IllegalArgumentException("usage: EchoMain <model> <features> (needed when the registered "
                        + "gateway is not an InProcessGateway: " + gateway + ")");
            }
            features = Integer.parseInt(args[1]);
            width = 1;
            arena = FeatureArena.allocate(1, ROWS, features);
        }
        float[] row = new float[features];
        try (FeatureArena.Slot slot = arena.acquire()) {
            for (int k = 0; k < REQUESTS; k++) {
                for (int r = 0; r < ROWS; r++) {
                    for (int f = 0; f < features; f++) {
                        row[f] = k / 2f + r / 4f + (f % 8) / 8f;
                    }
                    slot.putRow(r, row);
                }
                ScoreRequest request = slot.request(ROWS).model(model).timeout(Duration.ofSeconds(10)).build();
                ScoreResult result = gateway.score(request);
                for (int i = 0; i < ROWS * width; i++) {
                    out.println(result.scoreBuffer().getFloat(i * Float.BYTES));
                }
            }
        }
        out.println("OK");
    }
}
