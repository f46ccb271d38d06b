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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Who may spin, and that spinning lanes neither miss arrivals nor hold the budget after they stop. */
@Timeout(20)
class SpinBudgetTest {
    private static final ModelId SERVED = new ModelId("m", "1");

    private static Pending pending() {
        ScoreRequest request = ScoreRequest.builder().timeout(Duration.ofSeconds(10)).model("m0").rows(1)
                .featureCount(1).featureBuffer(FakePython.direct(1)).scoreBuffer(FakePython.direct(1)).build();
        return new Pending(request, 0, SERVED, System.nanoTime(), -1, 0, 0, null, new CompletableFuture<>());
    }

    @Test
    void permitsStopAtTheCoresAndBusyLanesCount() {
        SpinBudget budget = new SpinBudget(2);
        assertTrue(budget.tryAcquire());
        assertTrue(budget.tryAcquire());
        assertFalse(budget.tryAcquire(), "two cores, two spinners");
        budget.release();
        budget.busy();
        assertFalse(budget.tryAcquire(), "a scoring lane holds a core");
        assertFalse(budget.overcommitted());
        budget.busy();
        assertTrue(budget.overcommitted(), "the spinner must yield to the second scoring lane");
        budget.release();
        budget.release();
        budget.release();
        assertEquals(0, budget.active());
    }

    @Test
    void noBudgetMeansNoSpinning() {
        SpinBudget none = new SpinBudget(0);
        RequestQueue queue = new RequestQueue(1, 1, 10, 10, 0, none, TimeUnit.SECONDS.toNanos(5), 0);
        long start = System.nanoTime();
        assertEquals(0, queue.take(0, TimeUnit.MILLISECONDS.toNanos(20), new RequestQueue.Batch(10)));
        long took = System.nanoTime() - start;
        assertTrue(took < TimeUnit.SECONDS.toNanos(2), "parked for its 20 ms timeout, did not spin 5 s: " + took);
        assertEquals(0, none.active());
    }

    @Test
    void aSpinningLaneSeesAnArrivalWithoutASignalAndGivesItsPermitBack() throws Exception {
        SpinBudget budget = new SpinBudget(4);
        // A long lane spin: the arrival lands while the lane spins, so only the spin loop can see it.
        RequestQueue queue = new RequestQueue(1, 2, 10, 10, 0, budget, TimeUnit.SECONDS.toNanos(10), 0);
        ExecutorService lanes = Executors.newSingleThreadExecutor();
        try {
            RequestQueue.Batch batch = new RequestQueue.Batch(10);
            Future<Integer> taken = lanes.submit(() -> queue.take(0, TimeUnit.SECONDS.toNanos(10), batch));
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (budget.active() == 0 && System.nanoTime() < until) {
                Thread.onSpinWait(); // wait until the lane spins
            }
            assertEquals(1, budget.active(), "the lane holds a spin permit");
            Pending p = pending();
            long offered = System.nanoTime();
            assertEquals(RequestQueue.ADMITTED, queue.offer(p));
            assertEquals(1, taken.get(5, TimeUnit.SECONDS));
            assertTrue(System.nanoTime() - offered < TimeUnit.SECONDS.toNanos(2), "seen while spinning");
            assertSame(p, batch.items[0]);
            assertEquals(0, budget.active(), "the permit is back");
        } finally {
            lanes.shutdownNow();
        }
    }

    @Test
    void aSpinningLaneStopsForCloseAndForABusyLane() throws Exception {
        SpinBudget budget = new SpinBudget(1);
        RequestQueue queue = new RequestQueue(1, 2, 10, 10, 0, budget, TimeUnit.SECONDS.toNanos(30), 0);
        ExecutorService lanes = Executors.newSingleThreadExecutor();
        try {
            Future<Integer> taken = lanes.submit(() -> queue.take(0, TimeUnit.SECONDS.toNanos(30),
                    new RequestQueue.Batch(10)));
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (budget.active() == 0 && System.nanoTime() < until) {
                Thread.onSpinWait();
            }
            budget.busy(); // another lane starts scoring on the only core: the spinner parks instead
            until = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (budget.active() != 1 && System.nanoTime() < until) {
                Thread.sleep(1);
            }
            assertEquals(1, budget.active(), "the spinner gave its permit back and parked");
            queue.close();
            assertEquals(-1, taken.get(5, TimeUnit.SECONDS));
        } finally {
            lanes.shutdownNow();
        }
    }

    @Test
    void aCallerAloneInTheQueueSpinsForItsOutcomeOthersDoNot() {
        RequestQueue queue = new RequestQueue(1, 1, 10, 10, 0);
        Pending first = pending();
        Pending second = pending();
        queue.offer(first);
        queue.offer(second);
        assertTrue(first.queuedAlone);
        assertFalse(second.queuedAlone, "behind another request: parks at once");
    }

    @Test
    void defaultsSpinAndCanBeTurnedOff() {
        InProcessGateway.Options defaults = InProcessGateway.Options.defaults();
        assertTrue(defaults.callerSpinNanos() > 0 && defaults.laneSpinNanos() > 0);
        InProcessGateway.Options off = defaults.withSpin(0, 0);
        assertEquals(0, off.callerSpinNanos());
        assertEquals(0, off.laneSpinNanos());
        assertEquals(defaults.workers(), off.withWorkers(2).workers());
    }
}
