package dev.scoregate.bridge.inprocess;

import dev.scoregate.bridge.DeadlineExceededException;
import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import dev.scoregate.bridge.ScoregateException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * One admitted request on its way through the gateway: its queue links, the state that says who owns its buffers,
 * and its outcome. A synchronous caller spins briefly when a core is free ({@link SpinBudget}), then parks its own
 * thread ({@link LockSupport#parkNanos}) until the outcome is set or its deadline passes, and the lane unparks it;
 * an asynchronous one has a future instead.
 *
 * <h2>States</h2>
 * Leaving {@link #QUEUED} happens under the queue's lock. Leaving {@link #TAKEN} is a CAS, because there the lane
 * (claiming the request to complete it) and the caller (giving up at its deadline) race. The rules they protect:
 * <ol>
 *   <li>A request the caller has given up on is never written: the lane writes a score buffer only after winning
 *       {@code TAKEN -> DONE} (staged copy-back) or {@code TAKEN -> IN_PLACE} (before Python scores in place).</li>
 *   <li>A request scored in place cannot be given up on: Python writes into its slot while it runs, so the caller
 *       waits for the lane even past the deadline, and gets whatever the lane reports.</li>
 *   <li>Leaving {@link #IN_PLACE} is a CAS too: once Python has marked the batch scored
 *       ({@link WorkerLane#scored}), a caller that is spinning for it takes its success itself, without waiting for
 *       the lane's {@code complete()}, which then skips it. A batch that fails is never marked.</li>
 * </ol>
 */
final class Pending {
    /** Linked in the queue. The caller may withdraw it; a lane may take it, or expire it. */
    static final int QUEUED = 0;
    /** In a lane's batch, staged (or not yet decided). The lane reads its features; the caller may still abandon. */
    static final int TAKEN = 1;
    /** In a lane's batch, scored in its own arena slot: nobody but the lane may move it on. */
    static final int IN_PLACE = 2;
    /** The lane claimed it to complete or fail it; the outcome follows at once. */
    static final int DONE = 3;
    /** Its caller gave up while it was {@link #TAKEN}: the lane skips it and writes nothing. */
    static final int ABANDONED = 4;
    /** Left the queue without being taken: expired, withdrawn by its caller, or failed by close(). */
    static final int REMOVED = 5;

    private static final Object SUCCESS = new Object();
    private static final VarHandle STATE;

    static {
        try {
            STATE = MethodHandles.lookup().findVarHandle(Pending.class, "state", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    final ScoreRequest request;
    final int model;
    /**
     * The version that scores it: the one listed at start until its lane stamps the version Python holds
     * ({@link WorkerLane#serving}), before the scores are visible. Written by the lane thread only; read by whoever
     * completes or awaits the request after its state says so.
     */
    ModelId servedBy;
    final long admittedNanos;
    /** The registered arena the request's slot belongs to, or -1: then it is always staged. */
    final int arenaId;
    final int featureOffset;
    final int scoreOffset;
    private final Thread waiter;
    private final CompletableFuture<ScoreResult> future;

    // Guarded by RequestQueue's lock: the queue in arrival order, and the same requests per model.
    Pending prev;
    Pending next;
    Pending modelPrev;
    Pending modelNext;

    /** Nothing else was queued when it was linked: its wait is about one scoring, worth spinning for. */
    boolean queuedAlone;

    volatile int state;
    /** In place: the lane scoring it and the batch's sequence number (see {@link WorkerLane#scored}). */
    private volatile WorkerLane lane;
    private long sequence;
    /** Null until finished; then SUCCESS or a Failure. Set before the waiter is woken or the future completed. */
    private volatile Object outcome;

    Pending(ScoreRequest request, int model, ModelId servedBy, long admittedNanos, int arenaId, int featureOffset,
            int scoreOffset, Thread waiter, CompletableFuture<ScoreResult> future) {
        this.request = request;
        this.model = model;
        this.servedBy = servedBy;
        this.admittedNanos = admittedNanos;
        this.arenaId = arenaId;
        this.featureOffset = featureOffset;
        this.scoreOffset = scoreOffset;
        this.waiter = waiter;
        this.future = future;
    }

    long deadline() {
        return request.deadlineNanos();
    }

    int rows() {
        return request.rows();
    }

    /** Lane: {@code TAKEN -> IN_PLACE}, before handing the slot to Python. False if the caller abandoned it. */
    boolean claimInPlace() {
        return STATE.compareAndSet(this, TAKEN, IN_PLACE);
    }

    /** Lane, in place: the batch {@code sequence} of {@code lane} holds this request (before Python sees it). */
    void scoredBy(WorkerLane lane, long sequence) {
        this.sequence = sequence;
        this.lane = lane; // the volatile write publishes the sequence
    }

    /**
     * Lane: the right to write the outcome (and, when staged, the score buffer). False if abandoned, or if its
     * spinning caller already took its success (rule 3).
     */
    boolean claim() {
        if (state == IN_PLACE) {
            return STATE.compareAndSet(this, IN_PLACE, DONE);
        }
        return STATE.compareAndSet(this, TAKEN, DONE);
    }

    /** Caller, spinning: takes its success if Python marked its in-place batch scored (rule 3). */
    private boolean scoredEarly() {
        WorkerLane l = lane;
        if (l != null && l.scored(sequence) && STATE.compareAndSet(this, IN_PLACE, DONE)) {
            outcome = SUCCESS;
            l.answeredEarly();
            return true;
        }
        return false;
    }

    void succeed() {
        outcome = SUCCESS;
        if (future != null) {
            future.complete(ScoreResult.of(servedBy, request));
        } else {
            LockSupport.unpark(waiter);
        }
    }

    void fail(Failure failure) {
        outcome = failure;
        if (future != null) {
            future.completeExceptionally(failure.toException(request.model().toString()));
        } else {
            LockSupport.unpark(waiter);
        }
    }

    /** Lane: this request's deadline had passed when the lane reached it in the queue. */
    void expire(long nowNanos) {
        long queued = nowNanos - admittedNanos;
        fail(model -> new DeadlineExceededException(model, "queued " + millis(queued)
                + "; the deadline passed before a worker took it; never scored"));
    }

    /**
     * Caller: parks until the outcome, or until the deadline, when it gives up if it still can (rule 2).
     * Interruption gives up the same way, and the interrupt status is kept.
     */
    ScoreResult await(RequestQueue queue, SpinBudget spin, long spinNanos) {
        if (spinNanos > 0 && queuedAlone && outcome == null) {
            spinForOutcome(spin, spinNanos);
        }
        boolean interrupted = false;
        try {
            while (outcome == null) {
                long remaining = deadline() - System.nanoTime();
                boolean interruptedNow = Thread.interrupted();
                interrupted |= interruptedNow;
                if (remaining <= 0 || interruptedNow) {
                    ScoregateException gaveUp = giveUp(queue, interruptedNow);
                    if (gaveUp != null) {
                        throw gaveUp;
                    }
                    while (outcome == null) { // the lane owns it now; its outcome comes regardless of our deadline
                        LockSupport.park(this);
                        interrupted |= Thread.interrupted();
                    }
                    break;
                }
                LockSupport.parkNanos(this, remaining);
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
        Object result = outcome;
        if (result == SUCCESS) {
            return ScoreResult.of(servedBy, request);
        }
        throw ((Failure) result).toException(request.model().toString());
    }

    /**
     * Busy-waits up to {@code spinNanos} (never past the deadline) for the outcome, if the budget has a free core:
     * the lane's unpark then costs nothing and the caller does not pay a wake-up (see {@link SpinBudget}). Only
     * requests that found the queue empty spin: behind others, the wait is several scorings long and the core is
     * better left to the lanes.
     */
    private void spinForOutcome(SpinBudget spin, long spinNanos) {
        if (!spin.tryAcquire()) {
            return;
        }
        try {
            long start = System.nanoTime();
            long limit = Math.min(spinNanos, deadline() - start);
            for (int i = 1; outcome == null && System.nanoTime() - start < limit && !spin.overcommitted(); i++) {
                if (scoredEarly()) {
                    break;
                }
                SpinBudget.pause(i);
            }
        } finally {
            spin.release();
        }
    }

    /** Timer of an asynchronous request, at its deadline. */
    void expireAsync(RequestQueue queue) {
        if (outcome == null) {
            ScoregateException gaveUp = giveUp(queue, false);
            if (gaveUp != null) {
                future.completeExceptionally(gaveUp);
            }
        }
    }

    /** Withdraws or abandons the request; null if the lane owns it (in place, or already finishing). */
    private ScoregateException giveUp(RequestQueue queue, boolean interrupted) {
        boolean wasQueued = queue.withdraw(this);
        if (!wasQueued && !STATE.compareAndSet(this, TAKEN, ABANDONED)) {
            return null;
        }
        String model = request.model().toString();
        long waited = System.nanoTime() - admittedNanos;
        String detail = wasQueued
                ? "queued " + millis(waited) + " and no worker took it; never scored"
                : "a worker took it but did not score it within " + millis(waited) + "; its result is discarded";
        if (interrupted) {
            return new ScoregateException(model, "model '" + model + "': interrupted while waiting: " + detail);
        }
        return new DeadlineExceededException(model, detail);
    }

    private static String millis(long nanos) {
        return String.format("%.3f ms", (double) nanos / TimeUnit.MILLISECONDS.toNanos(1));
    }

    @Override
    public String toString() {
        return "Pending[" + request + ", state=" + state + "]";
    }
}
