package dev.scoregate.bridge.inprocess;

import static dev.scoregate.bridge.inprocess.FakePython.expected;
import static dev.scoregate.bridge.inprocess.FakePython.features;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;

/**
 * What the gateway tests share: two models of different shapes, requests whose expected scores are known
 * ({@link FakePython#expected}), caller threads, and gateways closed after each test. The test thread, or a
 * {@link FakePython.Worker}, plays the Python worker.
 */
abstract class GatewayFixture {
    static final ModelSpec CTR = new ModelSpec("ctr", "7", 4, 1);
    static final ModelSpec CVR = new ModelSpec("cvr", "2", 3, 2);
    static final long WAIT = TimeUnit.SECONDS.toNanos(10);

    final List<InProcessGateway> gateways = new ArrayList<>();
    final ExecutorService callers = Executors.newCachedThreadPool();

    @AfterEach
    void tearDown() {
        gateways.forEach(InProcessGateway::close);
        callers.shutdownNow();
    }

    InProcessGateway gateway(InProcessGateway.Options options) {
        InProcessGateway gateway = new InProcessGateway(List.of(CTR, CVR), options);
        gateways.add(gateway);
        return gateway;
    }

    static InProcessGateway.Options oneLane() {
        return InProcessGateway.Options.defaults().withWorkers(1);
    }

    /** A request on plain direct buffers with features base, base+1, ... */
    static ScoreRequest plain(ModelSpec spec, String model, int rows, float base, Duration timeout) {
        return ScoreRequest.builder().model(model).rows(rows).featureCount(spec.features())
                .featureBuffer(features(base, rows, spec.features()))
                .scoreBuffer(FakePython.direct(rows * spec.outputWidth())).timeout(timeout).build();
    }

    static ScoreRequest plain(ModelSpec spec, int rows, float base) {
        return plain(spec, spec.name(), rows, base, Duration.ofSeconds(10));
    }

    static ScoreRequest onSlot(FeatureArena.Slot slot, String model, int rows, float base, Duration timeout) {
        int features = slot.featureCount();
        for (int i = 0; i < rows * features; i++) {
            slot.features().put(i, base + i);
        }
        return slot.request(rows).model(model).timeout(timeout).build();
    }

    static void assertScores(ModelSpec spec, float base, ScoreResult result) {
        assertEquals(spec.id(), result.servedBy());
        for (int r = 0; r < result.rows(); r++) {
            for (int j = 0; j < spec.outputWidth(); j++) {
                assertEquals(expected(base, r, spec.features(), j),
                        result.scoreBuffer().getFloat((r * spec.outputWidth() + j) * Float.BYTES), "row " + r);
            }
        }
    }

    CompletableFuture<ScoreResult> call(InProcessGateway gateway, ScoreRequest request) {
        return CompletableFuture.supplyAsync(() -> gateway.score(request), callers);
    }

    static <T extends Throwable> T failure(Class<T> type, Future<?> future) throws Exception {
        ExecutionException e = assertThrows(ExecutionException.class, () -> future.get(10, TimeUnit.SECONDS));
        return assertInstanceOf(type, e.getCause());
    }

    /** Waits (yielding, up to 10 s) until {@code n} requests are queued: request threads park, nothing signals. */
    static void awaitQueued(InProcessGateway gateway, int n) {
        long until = System.nanoTime() + WAIT;
        while (gateway.queued() != n) {
            assertTrue(System.nanoTime() - until < 0, "queued " + gateway.queued() + ", expected " + n);
            Thread.yield();
        }
    }
}
