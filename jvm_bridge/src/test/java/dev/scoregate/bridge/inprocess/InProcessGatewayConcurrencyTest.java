package dev.scoregate.bridge.inprocess;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * 64 request threads against two fake Python workers: every result is checked, on arena slots (in place when alone,
 * staged when batched) and on plain buffers, across two models of different shapes.
 */
@Timeout(60)
class InProcessGatewayConcurrencyTest {
    private static final int THREADS = 64;
    private static final int CALLS = 250;
    private static final ModelSpec[] MODELS = {new ModelSpec("ctr", "7", 5, 1), new ModelSpec("cvr", "2", 3, 2)};
    private static final int MAX_ROWS = 4;

    @Test
    void everyResultOfManyThreadsIsRight() throws Exception {
        InProcessGateway gateway = new InProcessGateway(List.of(MODELS),
                InProcessGateway.Options.defaults().withMaxBatchRows(64));
        FeatureArena[] arenas = new FeatureArena[MODELS.length];
        for (int m = 0; m < MODELS.length; m++) {
            // Slot scores hold MAX_ROWS x 2 floats: room for cvr's two outputs per row.
            arenas[m] = gateway.newArena(THREADS, MAX_ROWS * 2, MODELS[m].features());
        }
        List<FakePython.Worker> workers = List.of(FakePython.Worker.start(gateway, 0),
                FakePython.Worker.start(gateway, 1));
        AtomicLong wrong = new AtomicLong();
        CountDownLatch start = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        try {
            List<Future<?>> callers = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int seed = t;
                callers.add(pool.submit(() -> {
                    start.await();
                    SplittableRandom random = new SplittableRandom(seed);
                    for (int call = 0; call < CALLS; call++) {
                        int m = random.nextInt(MODELS.length);
                        ModelSpec spec = MODELS[m];
                        int rows = 1 + random.nextInt(MAX_ROWS);
                        float base = random.nextInt(1000); // small integers: every sum is exact in float32
                        if (random.nextBoolean()) {
                            try (FeatureArena.Slot slot = arenas[m].acquire(Duration.ofSeconds(10))) {
                                for (int i = 0; i < rows * spec.features(); i++) {
                                    slot.features().put(i, base + i);
                                }
                                ScoreRequest request = slot.request(rows).model(spec.name())
                                        .timeout(Duration.ofSeconds(20)).build();
                                wrong.addAndGet(check(spec, base, gateway.score(request)));
                            }
                        } else {
                            ScoreRequest request = ScoreRequest.builder().model(spec.id().toString()).rows(rows)
                                    .featureCount(spec.features())
                                    .featureBuffer(FakePython.features(base, rows, spec.features()))
                                    .scoreBuffer(FakePython.direct(rows * spec.outputWidth()))
                                    .timeout(Duration.ofSeconds(20)).build();
                            wrong.addAndGet(check(spec, base, gateway.score(request)));
                        }
                    }
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> caller : callers) {
                caller.get(50, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
            gateway.close();
        }
        assertEquals(0, wrong.get(), "wrong scores");
        long requests = 0;
        for (FakePython.Worker worker : workers) {
            worker.join(TimeUnit.SECONDS.toMillis(10));
            assertFalse(worker.isAlive());
            assertNull(worker.error);
            for (long[] control : worker.batches) {
                assertTrue(control[1] <= 64, "rows per batch within maxBatchRows");
                assertTrue(control[2] == WorkerLane.STAGING || control[5] == 1, "in place only alone");
                requests += control[5];
            }
        }
        assertEquals((long) THREADS * CALLS, requests, "every request scored exactly once");
    }

    private static long check(ModelSpec spec, float base, ScoreResult result) {
        long wrong = spec.id().equals(result.servedBy()) ? 0 : 1;
        ByteBuffer scores = result.scoreBuffer();
        for (int r = 0; r < result.rows(); r++) {
            for (int j = 0; j < spec.outputWidth(); j++) {
                float want = FakePython.expected(base, r, spec.features(), j);
                if (scores.getFloat((r * spec.outputWidth() + j) * Float.BYTES) != want) {
                    wrong++;
                }
            }
        }
        return wrong;
    }
}
