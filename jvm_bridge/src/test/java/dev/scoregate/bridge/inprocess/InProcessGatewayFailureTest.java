package dev.scoregate.bridge.inprocess;

import static dev.scoregate.bridge.inprocess.FakePython.features;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.scoregate.bridge.DeadlineExceededException;
import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.GatewayUnavailableException;
import dev.scoregate.bridge.InvalidInputException;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import dev.scoregate.bridge.ScoregateException;
import dev.scoregate.bridge.UnknownModelException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Deadlines, Python-reported failures, overload, close and interrupts: who gets which exception, and when. */
@Timeout(30)
class InProcessGatewayFailureTest extends GatewayFixture {

    @Test
    void aRequestWhoseDeadlinePassesWhileQueuedIsNeverHandedToAWorker() throws Exception {
        InProcessGateway gateway = gateway(oneLane());
        ScoreRequest sync = plain(CTR, "ctr", 1, 1f, Duration.ofMillis(50));
        long start = System.nanoTime();
        DeadlineExceededException e = assertThrows(DeadlineExceededException.class, () -> gateway.score(sync));
        assertTrue(System.nanoTime() - start >= TimeUnit.MILLISECONDS.toNanos(50));
        assertTrue(e.getMessage().startsWith("model 'ctr': deadline exceeded: queued ")
                && e.getMessage().endsWith("no worker took it; never scored"), e.getMessage());
        assertEquals(Optional.of("ctr"), e.modelName());

        CompletableFuture<ScoreResult> async = gateway.scoreAsync(plain(CVR, "cvr@2", 1, 1f, Duration.ofMillis(50)));
        DeadlineExceededException late = failure(DeadlineExceededException.class, async);
        assertTrue(late.getMessage().startsWith("model 'cvr@2': deadline exceeded: queued "), late.getMessage());

        assertEquals(0, gateway.queued());
        assertEquals(0, gateway.lane(0).take(0), "nothing left for a worker");
    }

    @Test
    void aStagedRequestAbandonedAtItsDeadlineIsNeverWritten() throws Exception {
        InProcessGateway gateway = gateway(oneLane());
        WorkerLane lane = gateway.lane(0);
        ScoreRequest request = plain(CTR, "ctr", 2, 1f, Duration.ofMillis(100));
        CompletableFuture<ScoreResult> result = call(gateway, request);
        assertEquals(1, lane.take(WAIT));
        FakePython.score(gateway, lane);
        DeadlineExceededException e = failure(DeadlineExceededException.class, result);
        assertTrue(e.getMessage().contains("a worker took it but did not score it within"), e.getMessage());
        request.scoreBuffer().putFloat(0, -1f); // the caller owns its buffer again
        lane.complete();
        assertEquals(-1f, request.scoreBuffer().getFloat(0), "complete() must skip an abandoned request");
    }

    @Test
    void aRequestScoredInPlaceIsWaitedForPastItsDeadline() throws Exception {
        InProcessGateway gateway = gateway(oneLane());
        FeatureArena arena = gateway.newArena(1, 2, CTR.features());
        WorkerLane lane = gateway.lane(0);
        try (FeatureArena.Slot slot = arena.acquire()) {
            ScoreRequest request = onSlot(slot, "ctr", 2, 1f, Duration.ofMillis(100));
            CompletableFuture<ScoreResult> result = call(gateway, request);
            assertEquals(1, lane.take(WAIT));
            assertEquals(0, FakePython.control(lane)[2], "in place");
            // An event at the same deadline: a queued request that expires then.
            ScoreRequest marker = ScoreRequest.builder().model("cvr").rows(1).featureCount(3)
                    .featureBuffer(features(0f, 1, 3)).scoreBuffer(FakePython.direct(2))
                    .deadlineNanos(request.deadlineNanos()).build();
            failure(DeadlineExceededException.class, gateway.scoreAsync(marker));
            assertFalse(result.isDone(), "Python is writing into the caller's slot: the caller must wait");
            FakePython.score(gateway, lane);
            lane.complete();
            assertScores(CTR, 1f, result.get(10, TimeUnit.SECONDS));
        }
    }

    @Test
    void failCodesBecomeTypedExceptionsOnEveryRequestOfTheBatch() throws Exception {
        InProcessGateway gateway = gateway(oneLane());
        WorkerLane lane = gateway.lane(0);
        Map<Integer, Class<? extends ScoregateException>> codes = Map.of(
                WorkerLane.INVALID_INPUT, InvalidInputException.class,
                WorkerLane.UNKNOWN_MODEL, UnknownModelException.class,
                WorkerLane.DEADLINE_EXCEEDED, DeadlineExceededException.class,
                WorkerLane.UNAVAILABLE, GatewayUnavailableException.class,
                0, ScoregateException.class,
                99, ScoregateException.class);
        for (Map.Entry<Integer, Class<? extends ScoregateException>> code : codes.entrySet()) {
            String message = "model 'cvr' input 'x': python says " + code.getKey();
            CompletableFuture<ScoreResult> sync = call(gateway, plain(CVR, "cvr@2", 1, 0f, Duration.ofSeconds(10)));
            awaitQueued(gateway, 1);
            CompletableFuture<ScoreResult> async1 = gateway.scoreAsync(plain(CVR, 2, 0f));
            CompletableFuture<ScoreResult> async2 = gateway.scoreAsync(plain(CVR, 1, 0f));
            assertEquals(3, lane.take(WAIT));
            lane.fail(code.getKey(), message);
            for (CompletableFuture<ScoreResult> result : List.of(sync, async1, async2)) {
                ScoregateException e = failure(code.getValue(), result);
                assertSame(code.getValue(), e.getClass());
                assertEquals(message, e.getMessage());
                assertTrue(e.modelName().orElseThrow().startsWith("cvr"));
            }
        }
        CompletableFuture<ScoreResult> unknown = gateway.scoreAsync(plain(CTR, 1, 0f));
        assertEquals(1, lane.take(WAIT));
        lane.fail(WorkerLane.UNKNOWN_MODEL, null);
        UnknownModelException e = failure(UnknownModelException.class, unknown);
        assertEquals(List.of("ctr@7", "cvr@2"), e.loaded());
        assertTrue(e.getMessage().contains("without a message"), e.getMessage());
    }

    @Test
    void beyondQueueCapacityScoreFailsFastAsOverloaded() throws Exception {
        InProcessGateway gateway = gateway(oneLane().withQueueCapacity(3));
        List<CompletableFuture<ScoreResult>> queued = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            queued.add(gateway.scoreAsync(plain(CTR, 1, i)));
        }
        long start = System.nanoTime();
        GatewayUnavailableException e = assertThrows(GatewayUnavailableException.class,
                () -> gateway.score(plain(CTR, 1, 9f)));
        assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(1), "fails fast, not at the deadline");
        assertTrue(e.getMessage().startsWith("model 'ctr': overloaded: 3 requests are queued"), e.getMessage());
        CompletableFuture<ScoreResult> refused = gateway.scoreAsync(plain(CVR, 1, 9f));
        assertTrue(refused.isCompletedExceptionally(), "the future fails at once, scoreAsync does not throw");

        WorkerLane lane = gateway.lane(0);
        assertEquals(3, lane.take(WAIT));
        FakePython.score(gateway, lane);
        lane.complete();
        assertScores(CTR, 0f, queued.get(0).get(10, TimeUnit.SECONDS));
        CompletableFuture<ScoreResult> admitted = gateway.scoreAsync(plain(CTR, 1, 5f)); // room again
        assertEquals(1, lane.take(WAIT));
        FakePython.score(gateway, lane);
        lane.complete();
        assertScores(CTR, 5f, admitted.get(10, TimeUnit.SECONDS));
    }

    @Test
    void closeFailsQueuedAndBlockedRequestsButLetsTakenBatchesComplete() throws Exception {
        InProcessGateway gateway = gateway(InProcessGateway.Options.defaults());
        WorkerLane lane0 = gateway.lane(0);
        WorkerLane lane1 = gateway.lane(1);

        CompletableFuture<ScoreResult> inFlight = gateway.scoreAsync(plain(CVR, 1, 4f));
        assertEquals(1, lane1.take(WAIT));
        FakePython.score(gateway, lane1);

        List<CompletableFuture<ScoreResult>> pending = new ArrayList<>();
        for (int i = 0; i < 3; i++) { // request threads parked in score()
            pending.add(call(gateway, plain(CTR, "ctr", 1, i, Duration.ofSeconds(30))));
        }
        pending.add(gateway.scoreAsync(plain(CTR, "ctr", 1, 0f, Duration.ofSeconds(30))));
        pending.add(gateway.scoreAsync(plain(CVR, "cvr", 1, 0f, Duration.ofSeconds(30))));
        awaitQueued(gateway, 5);

        gateway.close();
        for (CompletableFuture<ScoreResult> result : pending) {
            GatewayUnavailableException e = failure(GatewayUnavailableException.class, result);
            assertTrue(e.getMessage().endsWith("the in-process gateway closed before a worker took the request; "
                    + "never scored"), e.getMessage());
        }
        assertEquals(0, gateway.queued());
        assertEquals(-1, lane0.take(WAIT));
        lane1.complete(); // taken before close: completes normally
        assertScores(CVR, 4f, inFlight.get(10, TimeUnit.SECONDS));
        assertEquals(-1, lane1.take(0));

        GatewayUnavailableException after = assertThrows(GatewayUnavailableException.class,
                () -> gateway.score(plain(CTR, 1, 0f)));
        assertEquals("model 'ctr': the in-process gateway is closed (the Python host stopped)", after.getMessage());
        failure(GatewayUnavailableException.class, gateway.scoreAsync(plain(CTR, 1, 0f)));
        assertThrows(GatewayUnavailableException.class, () -> gateway.newArena(1, 1, 1));
        gateway.close(); // idempotent
    }

    @Test
    void closeReleasesALaneBlockedInTake() throws Exception {
        InProcessGateway gateway = gateway(oneLane());
        CompletableFuture<Integer> take = CompletableFuture.supplyAsync(
                () -> gateway.lane(0).take(TimeUnit.SECONDS.toNanos(30)), callers);
        gateway.close();
        assertEquals(-1, take.get(10, TimeUnit.SECONDS));
    }

    @Test
    void closeCutsAFillingLaneShortAndItsBatchStillCompletes() throws Exception {
        InProcessGateway gateway = gateway(oneLane().withMaxDelayNanos(TimeUnit.SECONDS.toNanos(30)));
        WorkerLane lane = gateway.lane(0);
        CompletableFuture<ScoreResult> result = call(gateway, plain(CTR, "ctr", 1, 2f, Duration.ofSeconds(30)));
        awaitQueued(gateway, 1);
        CompletableFuture<int[]> worker = CompletableFuture.supplyAsync(() -> { // the lane's one thread
            int took = lane.take(WAIT);
            FakePython.score(gateway, lane);
            lane.complete();
            return new int[] {took, lane.take(WAIT)};
        }, callers);
        awaitQueued(gateway, 0); // the lane holds it and waits for more ctr requests
        gateway.close();
        assertArrayEquals(new int[] {1, -1}, worker.get(10, TimeUnit.SECONDS));
        assertScores(CTR, 2f, result.get(10, TimeUnit.SECONDS));
    }

    @Test
    void anInterruptedCallerWithdrawsItsQueuedRequestAndKeepsTheInterrupt() throws Exception {
        InProcessGateway gateway = gateway(oneLane());
        CompletableFuture<Throwable> thrown = new CompletableFuture<>();
        CompletableFuture<Boolean> stillInterrupted = new CompletableFuture<>();
        Thread caller = new Thread(() -> {
            try {
                gateway.score(plain(CTR, "ctr", 1, 0f, Duration.ofSeconds(30)));
                thrown.complete(null);
            } catch (Throwable e) {
                thrown.complete(e);
            }
            stillInterrupted.complete(Thread.currentThread().isInterrupted());
        });
        caller.start();
        awaitQueued(gateway, 1);
        caller.interrupt();
        Throwable e = thrown.get(10, TimeUnit.SECONDS);
        assertSame(ScoregateException.class, e.getClass());
        assertTrue(e.getMessage().startsWith("model 'ctr': interrupted while waiting: queued "), e.getMessage());
        assertTrue(stillInterrupted.get(10, TimeUnit.SECONDS));
        assertEquals(0, gateway.queued());
        assertEquals(0, gateway.lane(0).take(0));
    }

    @Test
    void anInterruptDoesNotCutALanesWaitShort() {
        InProcessGateway gateway = gateway(oneLane());
        long timeout = TimeUnit.MILLISECONDS.toNanos(20);
        Thread.currentThread().interrupt();
        long start = System.nanoTime();
        try {
            assertEquals(0, gateway.lane(0).take(timeout));
            assertTrue(System.nanoTime() - start >= timeout, "a Python worker must not spin on take()");
        } finally {
            assertTrue(Thread.interrupted(), "the interrupt status is kept");
        }
    }
}
