package dev.scoregate.bridge;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * A fake {@link ModelGateway} for tests of the contract: one model whose score is the sum of a row's features.
 * Does what every transport must: checks the model and the deadline, writes scores in place, throws only the tree.
 */
final class SummingGateway implements ModelGateway {
    private final String model;
    private final String version;

    SummingGateway(String model, String version) {
        this.model = model;
        this.version = version;
    }

    @Override
    public ScoreResult score(ScoreRequest request) {
        ModelId id = request.model();
        if (!id.name().equals(model) || (id.version() != null && !id.version().equals(version))) {
            throw new UnknownModelException(id.toString(), models());
        }
        long remaining = request.remainingNanos(System.nanoTime());
        if (remaining <= 0) {
            throw DeadlineExceededException.overrun(id.toString(), -remaining, "before scoring started");
        }
        ByteBuffer features = request.featureBuffer();
        ByteBuffer scores = request.scoreBuffer();
        int n = request.featureCount();
        for (int row = 0; row < request.rows(); row++) {
            float sum = 0;
            for (int f = 0; f < n; f++) {
                sum += features.getFloat((row * n + f) * Float.BYTES);
            }
            scores.putFloat(row * Float.BYTES, sum);
        }
        return ScoreResult.of(new ModelId(model, version), request);
    }

    @Override
    public CompletableFuture<ScoreResult> scoreAsync(ScoreRequest request) {
        return CompletableFuture.supplyAsync(() -> score(request));
    }

    @Override
    public List<String> models() {
        return List.of(model);
    }

    @Override
    public String toString() {
        return "SummingGateway[" + model + "@" + version + "]";
    }
}
