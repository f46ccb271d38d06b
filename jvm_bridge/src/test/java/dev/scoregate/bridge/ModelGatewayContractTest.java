package dev.scoregate.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.FloatBuffer;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The path an ad server takes (slot, request, gateway, result) against a fake gateway. */
@Timeout(30)
class ModelGatewayContractTest {
    private static final int FEATURES = 4;

    private final ModelGateway gateway = new SummingGateway("ctr", "7");
    private final FeatureArena arena = FeatureArena.allocate(2, 8, FEATURES);

    private static ScoreRequest fill(FeatureArena.Slot slot, String model, int rows) {
        for (int row = 0; row < rows; row++) {
            slot.putRow(row, new float[] {row, 1, 2, 3}); // sums to row + 6
        }
        return slot.request(rows).model(model).timeout(Duration.ofSeconds(5)).build();
    }

    @Test
    void scoresInPlaceAndReportsTheServingVersion() {
        try (FeatureArena.Slot slot = arena.acquire()) {
            ScoreResult result = gateway.score(fill(slot, "ctr", 3));
            assertEquals(new ModelId("ctr", "7"), result.servedBy());
            assertEquals(3, result.rows());
            for (int row = 0; row < 3; row++) {
                assertEquals(row + 6f, result.score(row));
                assertEquals(row + 6f, arena.buffer().getFloat(slot.scoresOffset() + row * Float.BYTES));
            }
            FloatBuffer scores = result.scores();
            assertEquals(3, scores.remaining());
            assertEquals(8f, scores.get(2));
            assertThrows(IndexOutOfBoundsException.class, () -> result.score(3));
        }
    }

    @Test
    void scoreAsyncCompletesWithTheSameResult() throws Exception {
        try (FeatureArena.Slot slot = arena.acquire()) {
            ScoreResult result = gateway.scoreAsync(fill(slot, "ctr@7", 2)).get(10, TimeUnit.SECONDS);
            assertEquals(7f, result.score(1));
        }
    }

    @Test
    void unknownModelFailsSyncAndAsync() {
        try (FeatureArena.Slot slot = arena.acquire()) {
            ScoreRequest request = fill(slot, "ctr@8", 1);
            UnknownModelException e = assertThrows(UnknownModelException.class, () -> gateway.score(request));
            assertEquals("unknown model 'ctr@8'; loaded: ctr", e.getMessage());

            CompletableFuture<ScoreResult> future = gateway.scoreAsync(request);
            ExecutionException failed = assertThrows(ExecutionException.class, () -> future.get(10, TimeUnit.SECONDS));
            assertTrue(failed.getCause() instanceof UnknownModelException, String.valueOf(failed.getCause()));
        }
    }

    @Test
    void passedDeadlineFailsInsteadOfScoringLate() {
        try (FeatureArena.Slot slot = arena.acquire()) {
            ScoreRequest request = slot.request(1).model("ctr").deadlineNanos(System.nanoTime() - 2_000_000).build();
            DeadlineExceededException e = assertThrows(DeadlineExceededException.class, () -> gateway.score(request));
            assertTrue(e.getMessage().startsWith("model 'ctr': deadline exceeded: passed "), e.getMessage());
        }
    }

    @Test
    void resultRequiresTheServedVersion() {
        try (FeatureArena.Slot slot = arena.acquire()) {
            ScoreRequest request = fill(slot, "ctr", 1);
            assertThrows(IllegalArgumentException.class, () -> ScoreResult.of(ModelId.parse("ctr"), request));
        }
    }

    @Test
    void modelsListsNamesWithoutVersions() {
        assertEquals(List.of("ctr"), gateway.models());
    }
}
