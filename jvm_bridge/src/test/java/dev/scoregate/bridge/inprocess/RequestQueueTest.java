package dev.scoregate.bridge.inprocess;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.scoregate.bridge.DeadlineExceededException;
import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The queue's order, batching and bookkeeping, one thread, no lanes. */
@Timeout(10)
class RequestQueueTest {
    private static final ModelId SERVED = new ModelId("m", "1");

    private static Pending pending(int model, int rows, ScoreRequest.Builder deadline,
                                   CompletableFuture<ScoreResult> future) {
        ScoreRequest request = deadline.model("m" + model).rows(rows).featureCount(1)
                .featureBuffer(FakePython.direct(rows)).scoreBuffer(FakePython.direct(rows)).build();
        return new Pending(request, model, SERVED, System.nanoTime(), -1, 0, 0, null, future);
    }

    private static Pending pending(int model, int rows) {
        return pending(model, rows, ScoreRequest.builder().timeout(Duration.ofSeconds(10)), new CompletableFuture<>());
    }

    private static List<Pending> take(RequestQueue queue, RequestQueue.Batch batch) {
        batch.clear();
        int n = queue.take(0, 0, batch);
        assertEquals(Math.max(n, 0), batch.size);
        return List.copyOf(Arrays.asList(batch.items).subList(0, batch.size));
    }

    @Test
    void takesTheOldestThenYoungerOfItsModelWhileTheyFit() {
        RequestQueue queue = new RequestQueue(2, 1, 10, 3, 0);
        RequestQueue.Batch batch = new RequestQueue.Batch(3);
        Pending a = pending(0, 2);
        Pending b = pending(1, 1);
        Pending c = pending(0, 1);
        Pending d = pending(0, 1);
        for (Pending p : List.of(a, b, c, d)) {
            assertEquals(RequestQueue.ADMITTED, queue.offer(p));
        }
        assertEquals(List.of(a, c), take(queue, batch)); // d does not fit in 3 rows
        assertEquals(3, batch.rows);
        assertEquals(Pending.TAKEN, a.state);
        assertEquals(List.of(b), take(queue, batch)); // b is older than d
        assertEquals(List.of(d), take(queue, batch));
        assertEquals(List.of(), take(queue, batch));
        assertEquals(0, queue.queued());
    }

    @Test
    void expiredRequestsAreSetAsideNotTaken() {
        RequestQueue queue = new RequestQueue(1, 1, 10, 10, 0);
        RequestQueue.Batch batch = new RequestQueue.Batch(10);
        CompletableFuture<ScoreResult> future = new CompletableFuture<>();
        Pending late = pending(0, 1, ScoreRequest.builder().deadlineNanos(System.nanoTime()), future);
        Pending fine = pending(0, 1);
        queue.offer(late);
        queue.offer(fine);
        assertEquals(List.of(fine), take(queue, batch));
        assertEquals(List.of(late), batch.expired);
        assertEquals(Pending.REMOVED, late.state);

        late.expire(System.nanoTime());
        ExecutionException e = assertThrows(ExecutionException.class, future::get);
        DeadlineExceededException cause = assertInstanceOf(DeadlineExceededException.class, e.getCause());
        assertTrue(cause.getMessage().contains("the deadline passed before a worker took it; never scored"),
                cause.getMessage());
    }

    @Test
    void withdrawRemovesOnlyAQueuedRequest() {
        RequestQueue queue = new RequestQueue(1, 1, 10, 10, 0);
        RequestQueue.Batch batch = new RequestQueue.Batch(10);
        Pending first = pending(0, 1);
        Pending second = pending(0, 1);
        queue.offer(first);
        queue.offer(second);
        assertTrue(queue.withdraw(first));
        assertEquals(Pending.REMOVED, first.state);
        assertFalse(queue.withdraw(first));
        assertEquals(List.of(second), take(queue, batch));
        assertFalse(queue.withdraw(second), "taken: the lane owns it");
    }

    @Test
    void admissionIsBoundedByQueuedRequests() {
        RequestQueue queue = new RequestQueue(1, 1, 2, 10, 0);
        RequestQueue.Batch batch = new RequestQueue.Batch(10);
        assertEquals(RequestQueue.ADMITTED, queue.offer(pending(0, 1)));
        assertEquals(RequestQueue.ADMITTED, queue.offer(pending(0, 1)));
        assertEquals(RequestQueue.OVERLOADED, queue.offer(pending(0, 1)));
        assertEquals(2, take(queue, batch).size());
        assertEquals(RequestQueue.ADMITTED, queue.offer(pending(0, 1)), "taken requests no longer count");
    }

    @Test
    void closeHandsBackEverythingQueuedAndRefusesMore() {
        RequestQueue queue = new RequestQueue(2, 1, 10, 10, 0);
        Pending a = pending(0, 1);
        Pending b = pending(1, 1);
        queue.offer(a);
        queue.offer(b);
        List<Pending> left = queue.close();
        assertEquals(2, left.size());
        assertSame(a, left.get(0));
        assertTrue(left.stream().allMatch(p -> p.state == Pending.REMOVED));
        assertEquals(0, queue.queued());
        assertEquals(RequestQueue.CLOSED, queue.offer(pending(0, 1)));
        assertEquals(-1, queue.take(0, 1_000_000_000L, new RequestQueue.Batch(10)));
    }
}
