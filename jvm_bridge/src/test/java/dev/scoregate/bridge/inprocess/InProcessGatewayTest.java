package dev.scoregate.bridge.inprocess;

import static dev.scoregate.bridge.inprocess.FakePython.expected;
import static dev.scoregate.bridge.inprocess.FakePython.features;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.scoregate.bridge.DeadlineExceededException;
import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.GatewayUnavailableException;
import dev.scoregate.bridge.InvalidInputException;
import dev.scoregate.bridge.ModelGateways;
import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.Routing;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import dev.scoregate.bridge.UnknownModelException;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The scoring paths: in place and staged, batching and fairness, validation, the buffers Python maps. */
@Timeout(30)
class InProcessGatewayTest extends GatewayFixture {

    @Test
    void singleRequestOnARegisteredArenaIsScoredInPlace() throws Exception {
        InProcessGateway gateway = gateway(oneLane());
        FeatureArena arena = gateway.newArena(3, 4, CTR.features());
        assertEquals(0, arena.registrationId());
        WorkerLane lane = gateway.lane(0);
        try (FeatureArena.Slot unused = arena.acquire(); FeatureArena.Slot slot = arena.acquire()) {
            assertNotNull(unused);
            CompletableFuture<ScoreResult> result = call(gateway, onSlot(slot, "ctr", 3, 1f, Duration.ofSeconds(10)));

            assertEquals(1, lane.take(WAIT));
            long[] control = FakePython.score(gateway, lane);
            assertArrayEquals(new long[] {0, 3, 0, slot.offset(), slot.scoresOffset(), 1, 4, 1}, control);
            assertEquals(0, slot.offset() % 64);
            assertEquals(expected(1f, 2, 4, 0), slot.scoreBuffer().getFloat(2 * Float.BYTES), "Python wrote in place");
            lane.complete();

            ScoreResult scored = result.get(10, TimeUnit.SECONDS);
            assertScores(CTR, 1f, scored);
            assertEquals(new ModelId("ctr", "7"), scored.servedBy());
        }
    }

    @Test
    void aSpinningCallerOfALongInPlaceBatchTakesItsScoresOnceMarkedAndTheLaneSkipsIt() throws Exception {
        assumeTrue(Runtime.getRuntime().availableProcessors() >= 2, "a caller spins only while a core is free");
        InProcessGateway gateway = gateway(oneLane().withSpin(TimeUnit.SECONDS.toNanos(20), 0));
        FeatureArena arena = gateway.newArena(1, 4, CTR.features());
        WorkerLane lane = gateway.lane(0);
        ByteBuffer control = lane.control();
        try (FeatureArena.Slot slot = arena.acquire()) {
            // Its cost unknown yet: a mark does not answer it; complete() does, and teaches the queue its cost.
            CompletableFuture<ScoreResult> first = call(gateway, onSlot(slot, "ctr", 3, 1f, Duration.ofSeconds(30)));
            assertEquals(1, lane.take(WAIT));
            long seq = control.getLong(10 * Long.BYTES);
            assertTrue(seq > 0);
            FakePython.score(gateway, lane);
            control.putLong(9 * Long.BYTES, seq);
            Thread.sleep(50);
            assertFalse(first.isDone(), "a batch not known to run long waits for complete()");
            control.putLong(8 * Long.BYTES, TimeUnit.MILLISECONDS.toNanos(5)); // its CPU time: above gatherNanos
            lane.complete();
            assertScores(CTR, 1f, first.get(10, TimeUnit.SECONDS));

            // Known to run long: the mark answers the spinning caller before complete(), which then skips it.
            CompletableFuture<ScoreResult> second = call(gateway, onSlot(slot, "ctr", 3, 5f, Duration.ofSeconds(30)));
            assertEquals(1, lane.take(WAIT));
            assertEquals(seq + 1, control.getLong(10 * Long.BYTES));
            FakePython.score(gateway, lane);
            control.putLong(9 * Long.BYTES, seq); // the previous batch's mark
            Thread.sleep(50);
            assertFalse(second.isDone(), "a stale mark answers nothing");
            control.putLong(9 * Long.BYTES, seq + 1);
            assertScores(CTR, 5f, second.get(10, TimeUnit.SECONDS));
            lane.complete(); // no second outcome, no error

            // Unmarked (a failure is never marked), complete() or fail() answers as before.
            CompletableFuture<ScoreResult> third = call(gateway, onSlot(slot, "ctr", 3, 9f, Duration.ofSeconds(30)));
            assertEquals(1, lane.take(WAIT));
            lane.fail(WorkerLane.INVALID_INPUT, "model 'ctr': NaN in row 2");
            String message = failure(InvalidInputException.class, third).getMessage();
            assertTrue(message.contains("NaN in row 2"), message);
        }
    }

    @Test
    void arenaBufferIsTheWholeRegisteredArena() {
        InProcessGateway gateway = gateway(oneLane());
        FeatureArena first = gateway.newArena(2, 4, 4);
        FeatureArena second = gateway.newArena(1, 2, 3);
        assertEquals(1, second.registrationId());
        ByteBuffer mapped = gateway.arena(0);
        assertTrue(mapped.isDirect());
        assertEquals(ByteOrder.nativeOrder(), mapped.order());
        assertEquals(first.buffer().capacity(), mapped.capacity());
        try (FeatureArena.Slot slot = first.acquire()) {
            slot.putRow(1, new float[] {5, 6, 7, 8});
            assertEquals(7f, mapped.getFloat(slot.offset() + 6 * Float.BYTES));
        }
        assertThrows(IndexOutOfBoundsException.class, () -> gateway.arena(2));
    }

    @Test
    void unregisteredArenasAndPlainBuffersAreStaged() throws Exception {
        InProcessGateway gateway = gateway(oneLane());
        InProcessGateway other = gateway(oneLane());
        FeatureArena foreign = other.newArena(1, 4, CTR.features()); // also registration 0, but not ours
        FeatureArena unregistered = FeatureArena.allocate(1, 4, CTR.features());
        WorkerLane lane = gateway.lane(0);
        long[] stagedOne = {0, 2, WorkerLane.STAGING, 0, lane.stagingOutputOffset(), 1, 4, 1};
        try (FeatureArena.Slot a = foreign.acquire(); FeatureArena.Slot b = unregistered.acquire()) {
            for (ScoreRequest request : List.of(onSlot(a, "ctr", 2, 3f, Duration.ofSeconds(10)),
                    onSlot(b, "ctr@7", 2, 3f, Duration.ofSeconds(10)), plain(CTR, 2, 3f))) {
                CompletableFuture<ScoreResult> result = gateway.scoreAsync(request);
                assertEquals(1, lane.take(WAIT));
                assertArrayEquals(stagedOne, FakePython.score(gateway, lane));
                lane.complete();
                assertScores(CTR, 3f, result.get(10, TimeUnit.SECONDS));
            }
        }
    }

    @Test
    void queuedRequestsOfOneModelAreBatchedAndOutputsRoutedBack() throws Exception {
        InProcessGateway gateway = gateway(oneLane());
        FeatureArena arena = gateway.newArena(1, 8, CVR.features());
        WorkerLane lane = gateway.lane(0);
        try (FeatureArena.Slot slot = arena.acquire()) {
            int[] rows = {1, 3, 2, 4};
            List<CompletableFuture<ScoreResult>> results = new ArrayList<>();
            for (int i = 0; i < rows.length; i++) {
                ScoreRequest request = i == 1
                        ? onSlot(slot, "cvr", rows[i], 100f * i, Duration.ofSeconds(10)) // registered, but batched
                        : plain(CVR, rows[i], 100f * i);
                results.add(gateway.scoreAsync(request));
            }
            assertEquals(4, lane.take(WAIT));
            assertArrayEquals(new long[] {1, 10, WorkerLane.STAGING, 0, lane.stagingOutputOffset(), 4, 3, 2},
                    FakePython.score(gateway, lane));
            lane.complete();
            for (int i = 0; i < rows.length; i++) {
                ScoreResult result = results.get(i).get(10, TimeUnit.SECONDS);
                assertEquals(rows[i], result.rows());
                assertScores(CVR, 100f * i, result);
            }
        }
    }

    @Test
    void resultsNameTheVersionTheLaneWasLastToldItScoresWith() throws Exception {
        InProcessGateway gateway = gateway(oneLane());
        FeatureArena arena = gateway.newArena(1, 4, CTR.features());
        WorkerLane lane = gateway.lane(0);
        try (FeatureArena.Slot slot = arena.acquire()) {
            // Staged: two queued requests. Python names version 9 after taking the batch (a hot swap), before
            // scoring: both results name it, and so does the next batch, in place.
            List<CompletableFuture<ScoreResult>> staged = List.of(gateway.scoreAsync(plain(CTR, 1, 0f)),
                    gateway.scoreAsync(plain(CTR, 2, 1f)));
            assertEquals(2, lane.take(WAIT));
            assertEquals(new ModelId("ctr", "7"), lane.serving(0));
            lane.serving(0, "9");
            FakePython.score(gateway, lane);
            lane.complete();
            for (CompletableFuture<ScoreResult> result : staged) {
                assertEquals(new ModelId("ctr", "9"), result.get(10, TimeUnit.SECONDS).servedBy());
            }
            CompletableFuture<ScoreResult> inPlace = call(gateway, onSlot(slot, "ctr", 1, 2f, Duration.ofSeconds(10)));
            assertEquals(1, lane.take(WAIT));
            FakePython.score(gateway, lane);
            lane.complete();
            assertEquals(new ModelId("ctr", "9"), inPlace.get(10, TimeUnit.SECONDS).servedBy());
            lane.serving(0, ""); // an unversioned model is named "0", as at start
            assertEquals(new ModelId("ctr", "0"), lane.serving(0));
            assertEquals(new ModelId("cvr", "2"), lane.serving(1)); // the other model keeps its start version
        }
    }

    @Test
    void keyedRequestsInTheCanaryShareTakeTheNamesCanaryRoute() throws Exception {
        InProcessGateway gateway = gateway(oneLane());
        WorkerLane lane = gateway.lane(0);
        // ctr, cvr, the spare indices, then their canary routes
        assertEquals(2 * (2 + InProcessGateway.Options.DEFAULT_SPARE_MODELS), gateway.routes());
        int route = gateway.canaryRoute(0);
        assertEquals(2 + InProcessGateway.Options.DEFAULT_SPARE_MODELS, route);
        assertEquals(0, gateway.canaryThreshold("ctr"));
        gateway.route("ctr", "8", 5000);
        assertEquals(5000, gateway.canaryThreshold("ctr"));
        int canaries = 0;
        for (int user = 0; user < 40; user++) {
            String key = "user-" + user;
            boolean canary = Routing.bucket(Routing.key(key)) < 5000;
            CompletableFuture<ScoreResult> result = gateway.scoreAsync(keyed(CTR, "ctr", key, user));
            assertEquals(1, lane.take(WAIT));
            long[] control = FakePython.score(gateway, lane);
            assertEquals(canary ? route : 0, control[0], key);
            assertEquals(CTR.features(), control[6]);
            if (canary && !lane.serving(route).version().equals("8")) {
                lane.serving(route, "8"); // as Python does when it first scores the route with the candidate
            }
            lane.complete();
            ScoreResult scored = result.get(10, TimeUnit.SECONDS);
            assertEquals(canary ? "ctr@8" : "ctr@7", scored.servedBy().toString());
            assertEquals(expected(user, 0, CTR.features(), 0), scored.score(0));
            canaries += canary ? 1 : 0;
        }
        assertTrue(canaries > 8 && canaries < 32, "about half of 40 keys: " + canaries);
        // A pinned version, no key, another name, or the canary ended: the listed route.
        String inShare = "user-" + java.util.stream.IntStream.range(0, 40)
                .filter(u -> Routing.bucket(Routing.key("user-" + u)) < 5000).findFirst().orElseThrow();
        List<ScoreRequest> listed = List.of(keyed(CTR, "ctr@7", inShare, 0), plain(CTR, 1, 0f));
        for (ScoreRequest request : listed) {
            CompletableFuture<ScoreResult> result = gateway.scoreAsync(request);
            assertEquals(1, lane.take(WAIT));
            assertEquals(0, FakePython.score(gateway, lane)[0]);
            lane.complete();
            assertEquals("ctr@7", result.get(10, TimeUnit.SECONDS).servedBy().toString());
        }
        gateway.route("ctr", null, 0);
        CompletableFuture<ScoreResult> ended = gateway.scoreAsync(keyed(CTR, "ctr", inShare, 0));
        assertEquals(1, lane.take(WAIT));
        assertEquals(0, FakePython.score(gateway, lane)[0]);
        lane.complete();
        ended.get(10, TimeUnit.SECONDS);
        assertThrows(UnknownModelException.class, () -> gateway.route("nope", "1", 1));
        assertThrows(UnknownModelException.class, () -> gateway.route("ctr@7", "8", 1));
        assertThrows(IllegalArgumentException.class, () -> gateway.route("ctr", "8", Routing.BUCKETS + 1));
    }

    @Test
    void aNameAddedAfterStartIsServedUnderASpareIndex() throws Exception {
        InProcessGateway gateway = gateway(oneLane().withSpareModels(1));
        WorkerLane lane = gateway.lane(0);
        ModelSpec pcvr = new ModelSpec("pcvr", "3", 2, 1);
        assertThrows(UnknownModelException.class, () -> gateway.score(plain(pcvr, 1, 0f)), "before it is added");
        assertEquals(2, gateway.addModel(pcvr)); // after ctr and cvr
        assertEquals(List.of("ctr", "cvr", "pcvr"), gateway.models());
        assertEquals(pcvr, gateway.spec("pcvr@3"));
        CompletableFuture<ScoreResult> result = gateway.scoreAsync(plain(pcvr, 2, 5f));
        assertEquals(1, lane.take(WAIT));
        long[] control = FakePython.score(gateway, lane);
        assertEquals(2, control[0]);
        assertEquals(pcvr.features(), control[6]);
        lane.complete();
        ScoreResult scored = result.get(10, TimeUnit.SECONDS);
        assertEquals(new ModelId("pcvr", "3"), scored.servedBy());
        assertEquals(expected(5f, 0, pcvr.features(), 0), scored.score(0));
        // Its canary route, like a listed name's.
        gateway.route("pcvr", "4", Routing.BUCKETS);
        CompletableFuture<ScoreResult> canary = gateway.scoreAsync(keyed(pcvr, "pcvr", "user-1", 1));
        assertEquals(1, lane.take(WAIT));
        assertEquals(gateway.canaryRoute(2), FakePython.score(gateway, lane)[0]);
        lane.serving(gateway.canaryRoute(2), "4");
        lane.complete();
        assertEquals("pcvr@4", canary.get(10, TimeUnit.SECONDS).servedBy().toString());
        // Refused, each with what to do: a name already served, no spare index left, rows wider than lanes stage.
        assertThrows(IllegalArgumentException.class, () -> gateway.addModel(new ModelSpec("ctr", "8", 4, 1)));
        IllegalStateException full = assertThrows(IllegalStateException.class,
                () -> gateway.addModel(new ModelSpec("brand", "1", 2, 1)));
        assertTrue(full.getMessage().contains("spareModels"), full.getMessage());
        InProcessGateway roomy = gateway(oneLane());
        IllegalArgumentException wide = assertThrows(IllegalArgumentException.class,
                () -> roomy.addModel(new ModelSpec("wide", "1", 1000, 1)));
        assertTrue(wide.getMessage().contains("restart"), wide.getMessage());
        roomy.close();
        assertThrows(GatewayUnavailableException.class, () -> roomy.addModel(new ModelSpec("late", "1", 2, 1)));
    }

    @Test
    void aPinIsScoredByItsVersionOrFails() throws Exception {
        InProcessGateway gateway = gateway(oneLane());
        WorkerLane lane = gateway.lane(0);
        gateway.route("ctr", "8", 1000);
        // Pinning the canary's version takes the canary route, without a key.
        CompletableFuture<ScoreResult> canary = gateway.scoreAsync(plain(CTR, "ctr@8", 1, 0f, Duration.ofSeconds(5)));
        assertEquals(1, lane.take(WAIT));
        assertEquals(gateway.canaryRoute(0), FakePython.score(gateway, lane)[0]);
        lane.serving(gateway.canaryRoute(0), "8");
        lane.complete();
        assertEquals("ctr@8", canary.get(10, TimeUnit.SECONDS).servedBy().toString());
        // A hot swap replaced ctr@7 with ctr@9 (not listed at start): a pin of 9 is admitted and scored by it, a pin
        // of 7 is scored by 9 and fails as unknown (its scores are not handed over as 7's).
        List<CompletableFuture<ScoreResult>> pins = List.of(
                gateway.scoreAsync(plain(CTR, "ctr@9", 1, 0f, Duration.ofSeconds(5))),
                gateway.scoreAsync(plain(CTR, "ctr@7", 1, 0f, Duration.ofSeconds(5))));
        assertEquals(2, lane.take(WAIT));
        lane.serving(0, "9");
        assertEquals(0, FakePython.score(gateway, lane)[0]);
        lane.complete();
        assertEquals("ctr@9", pins.get(0).get(10, TimeUnit.SECONDS).servedBy().toString());
        Exception stale = assertThrows(Exception.class, () -> pins.get(1).get(10, TimeUnit.SECONDS));
        assertTrue(stale.getCause() instanceof UnknownModelException, stale.toString());
        assertTrue(stale.getCause().getMessage().contains("'ctr@7': that version does not serve in process; ctr@9 "
                + "does"), stale.getCause().getMessage());
        failure(UnknownModelException.class, gateway.scoreAsync(plain(CTR, "nope@1", 1, 0f, Duration.ofSeconds(5))));
    }

    private static ScoreRequest keyed(ModelSpec spec, String model, String key, float base) {
        return ScoreRequest.builder().model(model).rows(1).featureCount(spec.features())
                .featureBuffer(features(base, 1, spec.features()))
                .scoreBuffer(FakePython.direct(spec.outputWidth())).timeout(Duration.ofSeconds(10))
                .routingKey(key).build();
    }

    @Test
    void concurrentCallersAreBatchedIntoOneTake() throws Exception {
        // maxBatchRows is exactly what the callers bring, so the lane waits (maxDelay) until all are in: one take.
        int callers = 8;
        InProcessGateway gateway = gateway(oneLane().withMaxBatchRows(2 * callers).withMaxDelayNanos(WAIT));
        FeatureArena arena = gateway.newArena(callers, 2, CTR.features());
        List<FeatureArena.Slot> slots = new ArrayList<>();
        List<CompletableFuture<ScoreResult>> results = new ArrayList<>();
        for (int i = 0; i < callers; i++) {
            ScoreRequest request;
            if (i % 2 == 0) {
                FeatureArena.Slot slot = arena.acquire();
                slots.add(slot);
                request = onSlot(slot, "ctr", 2, 10f * i, Duration.ofSeconds(20));
            } else {
                request = plain(CTR, "ctr", 2, 10f * i, Duration.ofSeconds(20));
            }
            results.add(call(gateway, request));
        }
        WorkerLane lane = gateway.lane(0);
        assertEquals(callers, lane.take(WAIT));
        long[] control = FakePython.score(gateway, lane);
        assertEquals(2 * callers, control[1]);
        assertEquals(WorkerLane.STAGING, control[2]);
        assertEquals(callers, control[5]);
        lane.complete();
        for (int i = 0; i < callers; i++) {
            assertScores(CTR, 10f * i, results.get(i).get(10, TimeUnit.SECONDS));
        }
        slots.forEach(FeatureArena.Slot::release);
    }

    @Test
    void fillingWaitsAtMostMaxDelayAndTakesOnlyItsModel() throws Exception {
        InProcessGateway gateway = gateway(oneLane().withMaxDelayNanos(TimeUnit.MILLISECONDS.toNanos(20)));
        CompletableFuture<ScoreResult> ctr = gateway.scoreAsync(plain(CTR, 1, 1f));
        CompletableFuture<ScoreResult> cvr = gateway.scoreAsync(plain(CVR, 1, 2f));
        WorkerLane lane = gateway.lane(0);
        assertEquals(1, lane.take(WAIT)); // ctr alone: nothing more of ctr came within 20 ms
        assertEquals(0, FakePython.score(gateway, lane)[0]);
        lane.complete();
        assertEquals(1, lane.take(WAIT));
        assertEquals(1, FakePython.score(gateway, lane)[0]);
        lane.complete();
        assertScores(CTR, 1f, ctr.get(10, TimeUnit.SECONDS));
        assertScores(CVR, 2f, cvr.get(10, TimeUnit.SECONDS));
    }

    @Test
    void oldestRequestGoesFirstAcrossModels() throws Exception {
        InProcessGateway gateway = gateway(oneLane().withMaxBatchRows(2));
        WorkerLane lane = gateway.lane(0);
        Map<String, CompletableFuture<ScoreResult>> results = new LinkedHashMap<>();
        results.put("a1", gateway.scoreAsync(plain(CTR, 1, 1f)));
        results.put("a2", gateway.scoreAsync(plain(CTR, 1, 2f)));
        results.put("b1", gateway.scoreAsync(plain(CVR, 1, 3f)));
        results.put("a3", gateway.scoreAsync(plain(CTR, 1, 4f)));
        results.put("a4", gateway.scoreAsync(plain(CTR, 1, 5f)));
        results.put("a5", gateway.scoreAsync(plain(CTR, 1, 6f)));

        assertEquals(2, lane.take(WAIT)); // a1, a2: the batch is full at maxBatchRows
        FakePython.score(gateway, lane);
        lane.complete();
        assertTrue(results.get("a2").isDone() && !results.get("a3").isDone());
        assertEquals(1, lane.take(WAIT)); // b1 is older than a3, however many ctr requests wait
        assertEquals(1, FakePython.score(gateway, lane)[0]);
        lane.complete();
        assertTrue(results.get("b1").isDone() && !results.get("a3").isDone());
        assertEquals(2, lane.take(WAIT)); // a3, a4
        FakePython.score(gateway, lane);
        lane.complete();
        results.put("b2", gateway.scoreAsync(plain(CVR, 1, 7f)));
        assertEquals(1, lane.take(WAIT)); // a5, alone: b2 is younger, and another model
        assertEquals(0, FakePython.score(gateway, lane)[0]);
        lane.complete();
        assertEquals(1, lane.take(WAIT));
        FakePython.score(gateway, lane);
        lane.complete();
        float base = 1f;
        for (String name : List.of("a1", "a2", "b1", "a3", "a4", "a5", "b2")) {
            assertScores(name.startsWith("a") ? CTR : CVR, base++, results.get(name).get(10, TimeUnit.SECONDS));
        }
    }

    @Test
    void invalidRequestsFailBeforeQueueing() throws Exception {
        InProcessGateway gateway = gateway(oneLane().withMaxBatchRows(8));
        UnknownModelException unknown = assertThrows(UnknownModelException.class,
                () -> gateway.score(plain(CTR, "nope", 1, 0f, Duration.ofSeconds(1))));
        assertEquals("unknown model 'nope'; loaded: ctr@7, cvr@2", unknown.getMessage());
        // (a pin of a version of a served name is admitted and checked once scored: aPinIsScoredByItsVersionOrFails)
        UnknownModelException async = failure(UnknownModelException.class,
                gateway.scoreAsync(plain(CTR, "nope@1", 1, 0f, Duration.ofSeconds(1))));
        assertEquals(Optional.of("nope@1"), async.modelName());

        InvalidInputException features = assertThrows(InvalidInputException.class,
                () -> gateway.score(plain(CVR, "ctr", 1, 0f, Duration.ofSeconds(1))));
        assertEquals("model 'ctr' input 'features': expected 4 features per row, got 3", features.getMessage());
        InvalidInputException rows = assertThrows(InvalidInputException.class, () -> gateway.score(plain(CTR, 9, 0f)));
        assertEquals(Optional.of("rows"), rows.inputName());
        assertTrue(rows.getMessage().contains("9 rows exceed maxBatchRows 8"), rows.getMessage());
        ScoreRequest narrow = ScoreRequest.builder().model("cvr").rows(2).featureCount(3)
                .featureBuffer(features(0f, 2, 3)).scoreBuffer(FakePython.direct(3)).timeout(Duration.ofSeconds(1))
                .build(); // room for 3 floats; cvr writes 2 rows x 2 outputs
        InvalidInputException scores = assertThrows(InvalidInputException.class, () -> gateway.score(narrow));
        assertEquals(Optional.of("scores"), scores.inputName());
        DeadlineExceededException late = assertThrows(DeadlineExceededException.class, () -> gateway.score(
                ScoreRequest.builder().model("ctr").rows(1).featureCount(4).featureBuffer(features(0f, 1, 4))
                        .scoreBuffer(FakePython.direct(1)).deadlineNanos(System.nanoTime() - 1_000_000).build()));
        assertTrue(late.getMessage().contains("before the request was queued"), late.getMessage());

        // Heap and foreign-order buffers never get this far: ScoreRequest rejects them.
        ScoreRequest.Builder heap = ScoreRequest.builder().model("ctr").rows(1).featureCount(4)
                .featureBuffer(ByteBuffer.allocate(16).order(ByteOrder.nativeOrder()))
                .scoreBuffer(FakePython.direct(1)).timeout(Duration.ofSeconds(1));
        assertThrows(InvalidInputException.class, heap::build);
        ByteBuffer foreign = ByteBuffer.allocateDirect(16).order(
                ByteOrder.nativeOrder() == ByteOrder.BIG_ENDIAN ? ByteOrder.LITTLE_ENDIAN : ByteOrder.BIG_ENDIAN);
        assertThrows(InvalidInputException.class, heap.featureBuffer(foreign)::build);
        assertEquals(0, gateway.queued());
    }

    @Test
    void bareNameMeansTheFirstListedVersion() throws Exception {
        ModelSpec canary = new ModelSpec("ctr", "8", 4, 1);
        InProcessGateway gateway = new InProcessGateway(List.of(CTR, canary), oneLane());
        gateways.add(gateway);
        assertEquals(List.of("ctr"), gateway.models());
        assertSame(CTR, gateway.spec("ctr"));
        assertSame(canary, gateway.spec("ctr@8"));
        CompletableFuture<ScoreResult> pinned = gateway.scoreAsync(plain(CTR, "ctr@8", 1, 0f, Duration.ofSeconds(5)));
        WorkerLane lane = gateway.lane(0);
        assertEquals(1, lane.take(WAIT));
        assertEquals(1, FakePython.score(gateway, lane)[0]);
        lane.complete();
        assertEquals(new ModelId("ctr", "8"), pinned.get(10, TimeUnit.SECONDS).servedBy());
        assertThrows(IllegalArgumentException.class, () -> new InProcessGateway(List.of(CTR, CTR)));
        assertThrows(IllegalArgumentException.class, () -> new InProcessGateway(List.of()));
    }

    @Test
    void lanesAreUsedInProtocolOrderOnly() {
        InProcessGateway gateway = gateway(oneLane());
        WorkerLane lane = gateway.lane(0);
        assertSame(lane, gateway.lane(0));
        assertThrows(IndexOutOfBoundsException.class, () -> gateway.lane(1));
        assertThrows(IllegalStateException.class, lane::complete);
        assertThrows(IllegalStateException.class, () -> lane.fail(1, "x"));
        gateway.scoreAsync(plain(CTR, 1, 0f));
        assertEquals(1, lane.take(WAIT));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> lane.take(0));
        assertTrue(e.getMessage().contains("still outstanding"), e.getMessage());
        lane.fail(0, "done");
        assertEquals(0, lane.take(0));
    }

    @Test
    void controlAndStagingAreAlignedNativeAndShared() {
        InProcessGateway gateway = gateway(oneLane().withMaxBatchRows(10));
        WorkerLane lane = gateway.lane(0);
        ByteBuffer control = lane.control();
        assertTrue(control.isDirect());
        assertEquals(ByteOrder.nativeOrder(), control.order());
        assertEquals(WorkerLane.CONTROL_LONGS * Long.BYTES, control.capacity());
        control.putLong(8 * Long.BYTES, 42);
        assertEquals(42, lane.control().getLong(8 * Long.BYTES), "the same memory on every call");

        ByteBuffer staging = lane.staging();
        assertTrue(staging.isDirect());
        assertEquals(ByteOrder.nativeOrder(), staging.order());
        assertEquals(0, staging.alignmentOffset(0, 64));
        int outputs = lane.stagingOutputOffset();
        assertEquals(0, outputs % 64);
        assertTrue(outputs >= 10 * 4 * Float.BYTES, "inputs: maxBatchRows x max features");
        assertTrue(staging.capacity() >= outputs + 10 * 2 * Float.BYTES, "outputs: maxBatchRows x max width");
    }

    @Test
    void optionsAndSpecsAreChecked() {
        InProcessGateway.Options defaults = InProcessGateway.Options.defaults();
        assertEquals(new InProcessGateway.Options(2, 1024, 0, 8192), defaults);
        assertThrows(IllegalArgumentException.class, () -> defaults.withWorkers(0));
        assertThrows(IllegalArgumentException.class, () -> defaults.withMaxDelayNanos(-1));
        assertThrows(IllegalArgumentException.class, () -> new ModelSpec("ctr", null, 4, 1));
        assertThrows(IllegalArgumentException.class, () -> new ModelSpec("c@t", "1", 4, 1));
        assertThrows(IllegalArgumentException.class, () -> new ModelSpec("ctr", "1", 0, 1));
        assertThrows(IllegalArgumentException.class, () -> new ModelSpec("ctr", "1", 4, 0));
        assertThrows(IllegalArgumentException.class, () -> new InProcessGateway(List.of(new ModelSpec("big", "1",
                1 << 20, 1)), defaults), "staging beyond 2 GiB");
    }

    @Test
    void echoMainScoresThroughTheRegisteredGateway() throws Exception {
        InProcessGateway gateway = gateway(oneLane());
        FakePython.Worker worker = FakePython.Worker.start(gateway, 0);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        ModelGateways.register(gateway);
        try (PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8)) {
            EchoMain.run(new String[] {"cvr"}, out);
        } finally {
            ModelGateways.unregister(gateway);
        }
        List<String> lines = bytes.toString(StandardCharsets.UTF_8).lines().toList();
        List<String> want = new ArrayList<>();
        for (int k = 0; k < EchoMain.REQUESTS; k++) {
            for (int r = 0; r < EchoMain.ROWS; r++) {
                float sum = 0;
                for (int f = 0; f < CVR.features(); f++) {
                    sum += k / 2f + r / 4f + (f % 8) / 8f;
                }
                for (int j = 0; j < CVR.outputWidth(); j++) {
                    want.add(Float.toString(sum + j));
                }
            }
        }
        want.add("OK");
        assertEquals(want, lines);
        gateway.close();
        worker.join(TimeUnit.SECONDS.toMillis(10));
        assertFalse(worker.isAlive());
        assertNull(worker.error);
        assertTrue(worker.batches.stream().allMatch(c -> c[2] == 0), "each call was scored in place");
        GatewayUnavailableException none = assertThrows(GatewayUnavailableException.class,
                () -> EchoMain.run(new String[] {"cvr"}, System.out));
        assertTrue(none.getMessage().startsWith("no ModelGateway is registered"), none.getMessage());
    }
}
