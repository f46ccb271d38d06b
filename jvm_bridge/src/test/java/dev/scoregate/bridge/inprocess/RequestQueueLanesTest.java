package dev.scoregate.bridge.inprocess;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.ScoreRequest;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Which lane an arrival goes to when two lanes serve one queue: a returning lane and a lane scoring short batches
 * keep the work (no wake-up, no second Python thread on the GIL), a long batch or a second model wakes the idle lane,
 * and a lane that is late is not waited for. No spinning, so every hand-over is a signal the test can see.
 */
@Timeout(30)
class RequestQueueLanesTest {
    private static final ModelId SERVED = new ModelId("m", "1");
    private static final long LONG_TIMEOUT = TimeUnit.SECONDS.toNanos(20);
    /** Long enough that a signalled lane has surely taken the request, were it signalled. */
    private static final long QUIET_MS = 150;

    private final ExecutorService laneOne = Executors.newSingleThreadExecutor();

    @AfterEach
    void stop() {
        laneOne.shutdownNow();
    }

    private static Pending pending(int model) {
        ScoreRequest request = ScoreRequest.builder().timeout(Duration.ofSeconds(20)).model("m" + model).rows(1)
                .featureCount(1).featureBuffer(FakePython.direct(1)).scoreBuffer(FakePython.direct(1)).build();
        return new Pending(request, model, SERVED, System.nanoTime(), -1, 0, 0, null, new CompletableFuture<>());
    }

    private static RequestQueue queue(int models, long gatherNanos) {
        return new RequestQueue(models, 2, 100, 64, 0, new SpinBudget(0), 0, gatherNanos);
    }

    /** Lane 0 takes a request of model 0 and is scoring it; returns lane 0's batch. */
    private static RequestQueue.Batch laneZeroScores(RequestQueue queue) {
        RequestQueue.Batch zero = new RequestQueue.Batch(64);
        queue.offer(pending(0));
        assertEquals(1, queue.take(0, 0, zero));
        return zero;
    }

    /** Lane 1 takes from another thread; returns once it is parked in the queue. */
    private Future<Integer> parkLaneOne(RequestQueue queue, RequestQueue.Batch batch) throws InterruptedException {
        Future<Integer> taken = laneOne.submit(() -> queue.take(1, LONG_TIMEOUT, batch));
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (queue.idleLanes() == 0 && System.nanoTime() < until) {
            Thread.sleep(1);
        }
        assertEquals(1, queue.idleLanes(), "lane 1 parked");
        return taken;
    }

    @Test
    void anArrivalWhileALaneIsReturningStaysWithThatLane() throws Exception {
        RequestQueue queue = queue(1, 0); // no gathering: only the returning rule
        RequestQueue.Batch zero = laneZeroScores(queue);
        RequestQueue.Batch one = new RequestQueue.Batch(64);
        Future<Integer> laneOneTook = parkLaneOne(queue, one);

        zero.clear();
        queue.returning(0); // lane 0 completed its batch and heads back to take()
        Pending next = pending(0);
        queue.offer(next);
        Thread.sleep(QUIET_MS);
        assertFalse(laneOneTook.isDone(), "the idle lane was woken for a request its returning peer takes");
        assertEquals(1, queue.take(0, 0, zero));
        assertSame(next, zero.items[0], "the returning lane took it");

        // Lane 0 is scoring now, not returning, and nothing gathers: an arrival wakes lane 1.
        Pending other = pending(0);
        queue.offer(other);
        assertEquals(1, laneOneTook.get(10, TimeUnit.SECONDS));
        assertSame(other, one.items[0]);
    }

    @Test
    void shortBatchesGatherOnTheScoringLaneASecondModelWakesTheIdleOne() throws Exception {
        RequestQueue queue = queue(2, TimeUnit.SECONDS.toNanos(10)); // nobody is late within this test
        queue.scored(0, 1, 20_000); // a 1-row batch of model 0 takes 20 us
        laneZeroScores(queue); // lane 0 scores
        RequestQueue.Batch one = new RequestQueue.Batch(64);
        Future<Integer> laneOneTook = parkLaneOne(queue, one);

        Pending short1 = pending(0);
        queue.offer(short1);
        Thread.sleep(QUIET_MS);
        assertFalse(laneOneTook.isDone(), "a short batch was handed to a second lane");

        // Model 1 arrives: what is queued is no longer one batch, so the idle lane is woken and takes the oldest.
        queue.offer(pending(1));
        assertEquals(1, laneOneTook.get(10, TimeUnit.SECONDS));
        assertSame(short1, one.items[0]);
    }

    @Test
    void longBatchesAndUnknownCostsWakeTheIdleLane() throws Exception {
        RequestQueue queue = queue(1, TimeUnit.MILLISECONDS.toNanos(1));
        laneZeroScores(queue); // lane 0 scores
        RequestQueue.Batch one = new RequestQueue.Batch(64);
        Future<Integer> laneOneTook = parkLaneOne(queue, one);
        Pending unknown = pending(0); // no cost reported yet: assume the batch is worth a second lane
        queue.offer(unknown);
        assertEquals(1, laneOneTook.get(10, TimeUnit.SECONDS));
        assertSame(unknown, one.items[0]);

        queue.scored(0, 1, TimeUnit.MILLISECONDS.toNanos(2)); // 2 ms a batch: above the 1 ms bound
        one.clear();
        laneOneTook = parkLaneOne(queue, one);
        Pending slow = pending(0);
        queue.offer(slow);
        assertEquals(1, laneOneTook.get(10, TimeUnit.SECONDS));
        assertSame(slow, one.items[0]);
    }

    @Test
    void anAwakeLaneLeavesAShortBatchToTheScoringLaneUntilThatLaneIsLate() throws Exception {
        long gather = TimeUnit.MILLISECONDS.toNanos(50);
        RequestQueue queue = queue(1, gather);
        queue.scored(0, 1, 10_000);
        laneZeroScores(queue); // lane 0 scores
        RequestQueue.Batch one = new RequestQueue.Batch(64);
        long laneZeroScoring = System.nanoTime();
        Pending left = pending(0);
        queue.offer(left); // no lane is idle: nobody to wake

        // Lane 1 comes to take (say its take timeout ran out): the work is lane 0's, until lane 0 is late.
        long took = laneOne.submit(() -> {
            assertEquals(1, queue.take(1, LONG_TIMEOUT, one));
            return System.nanoTime();
        }).get(10, TimeUnit.SECONDS);
        assertSame(left, one.items[0]);
        assertTrue(took - laneZeroScoring >= RequestQueue.STUCK_FACTOR * gather,
                "lane 1 took it " + (took - laneZeroScoring) + " ns after lane 0 began scoring, before lane 0 was late");
    }

    @Test
    void costsAreKeptAsASlowlyRisingFloorPerSizeClass() throws Exception {
        RequestQueue queue = queue(1, TimeUnit.MILLISECONDS.toNanos(1));
        queue.scored(0, 1, 100_000); // 0.1 ms: short
        queue.scored(0, 1, 10_000_000); // one 10 ms batch (the lane was descheduled): the floor rises by 1/16 only
        queue.scored(0, 32, 5_000_000); // batches of 17-32 rows are long: their own class
        laneZeroScores(queue); // lane 0 scores
        RequestQueue.Batch one = new RequestQueue.Batch(64);
        Future<Integer> laneOneTook = parkLaneOne(queue, one);
        queue.offer(pending(0));
        Thread.sleep(QUIET_MS);
        assertFalse(laneOneTook.isDone(), "one slow sample made a short model look long");
        for (int i = 0; i < 30; i++) {
            queue.offer(pending(0)); // 31 queued rows now: the 17-32 class, which is long
        }
        assertTrue(laneOneTook.get(10, TimeUnit.SECONDS) > 0);
    }
}
