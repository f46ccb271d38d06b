package dev.scoregate.bridge.inprocess;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The admission queue of an {@link InProcessGateway}: every pending request in arrival order, and the same requests
 * threaded per model, both as intrusive doubly linked lists so that every operation is O(1).
 *
 * <p>One lock guards both lists. It is held only to link or unlink a few requests, never while copying features,
 * scoring, or completing: 64 request threads contend for a handful of pointer writes each. A lane always starts
 * from the oldest request of any model (fair across models) and adds younger requests of that model (a batch is one
 * model). Idle lanes wait each on its own condition and are woken last-idle-first (a stack): under light load the
 * same lane, so the same Python thread, core and warm caches (model weights), serves request after request, instead
 * of the lanes taking turns (a plain condition wakes its longest waiter; measured with one Java caller on 2 cores,
 * last-idle-first took batch-1 p50 from 37 to 25 us). A lane filling a batch ({@code maxDelayNanos > 0})
 * waits on its own condition too, so an arrival wakes the lane that can use it.
 *
 * <p>A lane that has just completed a batch is <em>returning</em> until its next take: it will look at the queue
 * within microseconds, so an arrival meanwhile wakes nobody (as when a lane spins). Without this rule a single
 * caller that sends its next request the moment its answer lands always found the lane on its way back, woke the
 * other lane, and the lanes took turns, each paying a wake-up (measured with one Java caller and two lanes on 2
 * cores: requests split 50/50 between the lanes, 26-32k calls/s, against 59-62k with one lane).
 *
 * <p>Likewise, while a lane is scoring, arrivals neither wake nor feed another lane when everything queued is one
 * batch (one model, at most maxBatchRows rows) that scores in less than the gathering bound (Options.gatherNanos,
 * by the CPU times the lanes report per model and size of batch): the scoring lane takes it all when it is back.
 * Every lane is a Python thread and Python runs one at a time; two lanes win only when their ONNX Runtime runs
 * (which release the GIL) are long enough to overlap, and for short batches they take turns on the GIL instead, each
 * turn a wake-up. Measured with the batch-1 bench MLP from 8 Java callers on 2 cores: two lanes without gathering
 * served 3.5 requests a run and 33-39k calls/s, one lane 4.6 and 51-69k; two lanes with gathering 4.7-5.2 and
 * 46-61k. Batches of 128 rows (150 us) still use both lanes (10-11k calls/s against one lane's 6k). A lane scoring
 * for longer than {@link #STUCK_FACTOR} times the bound is not waited for; a request already left to it waits for
 * that lane's batch (or the next arrival, or an idle lane's take timeout).
 */
final class RequestQueue {
    static final int ADMITTED = 0;
    static final int CLOSED = 1;
    static final int OVERLOADED = 2;
    /** A lane scoring one batch for longer than this many gathering bounds is not waited for: it may be stuck. */
    static final int STUCK_FACTOR = 4;

    /** Batch sizes are costed per power of two of rows: 1, 2, 3-4, ..., up to 2^(SIZE_CLASSES-1) and beyond. */
    private static final int SIZE_CLASSES = 16;

    /** What one take removes from the queue. Owned by one lane; the queue writes it under its lock. */
    static final class Batch {
        final Pending[] items;
        int size;
        int rows;
        long earliestDeadline;
        /** Requests found expired while taking: failed by the lane once the lock is released. */
        final List<Pending> expired = new ArrayList<>();

        Batch(int capacity) {
            items = new Pending[capacity];
        }

        void clear() {
            Arrays.fill(items, 0, size, null);
            size = 0;
            rows = 0;
        }
    }

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition[] idle;
    private final Condition[] filling;
    private final int[] fillingModel;
    private final Pending[] modelHead;
    private final Pending[] modelTail;
    private final int capacity;
    private final int maxBatchRows;
    private final long maxDelayNanos;
    private final SpinBudget spin;
    private final long laneSpinNanos;
    /** Batches scoring in less than this gather on the lane already scoring (see the class comment); 0: never. */
    private final long gatherNanos;

    // Guarded by lock.
    private Pending head;
    private Pending tail;
    /** Written under the lock; read without it by spinning lanes. */
    private volatile int queued;
    /** Lanes busy-waiting for work (outside the lock): an arrival needs no signal while one is. */
    private int spinningLanes;
    /**
     * Lanes between a completed batch and their next take: an arrival needs no signal while one is either. Raised
     * by the lane without the lock ({@link #returning}); lowered only under it, by the lane itself, before it looks
     * at the queue, so an arrival that saw it raised is seen by that lane.
     */
    private final AtomicInteger returningLanes = new AtomicInteger();
    /** Per lane: whether it counts in returningLanes. Written only by the lane's own thread. */
    private final boolean[] returning;
    /** Per lane: when its outstanding batch was taken (0: none). Written under the lock (take) and by the lane. */
    private final long[] scoringSince;
    /**
     * Per model and size class ({@code model * SIZE_CLASSES + sizeClass(rows)}): what a batch costs to score, as the
     * lanes report it ({@link #scored}). Written by lanes without the lock, read under it: a stale value only makes
     * one wake-up more or less.
     */
    private final long[] runNanos;
    /** Rows queued, and models with at least one request queued. Guarded by lock. */
    private int queuedRows;
    private int queuedModels;
    /** Idle lanes, most recently idle on top: {@code idleStack[0..idleLanes)}. */
    private final int[] idleStack;
    private int idleLanes;
    private volatile boolean closed;

    RequestQueue(int models, int lanes, int capacity, int maxBatchRows, long maxDelayNanos) {
        this(models, lanes, capacity, maxBatchRows, maxDelayNanos, SpinBudget.forThisMachine(), 0,
                InProcessGateway.Options.DEFAULT_GATHER_NANOS);
    }

    RequestQueue(int models, int lanes, int capacity, int maxBatchRows, long maxDelayNanos, SpinBudget spin,
                 long laneSpinNanos, long gatherNanos) {
        this.spin = spin;
        this.gatherNanos = gatherNanos;
        this.laneSpinNanos = laneSpinNanos;
        this.modelHead = new Pending[models];
        this.modelTail = new Pending[models];
        this.filling = new Condition[lanes];
        this.idle = new Condition[lanes];
        this.idleStack = new int[lanes];
        this.fillingModel = new int[lanes];
        this.returning = new boolean[lanes];
        this.scoringSince = new long[lanes];
        this.runNanos = new long[models * SIZE_CLASSES];
        for (int i = 0; i < lanes; i++) {
            filling[i] = lock.newCondition();
            idle[i] = lock.newCondition();
            fillingModel[i] = -1;
        }
        this.capacity = capacity;
        this.maxBatchRows = maxBatchRows;
        this.maxDelayNanos = maxDelayNanos;
    }

    /** Links {@code p} at the tail and wakes a lane that can use it. The caller throws on a refusal, unlocked. */
    int offer(Pending p) {
        lock.lock();
        try {
            if (closed) {
                return CLOSED;
            }
            if (queued >= capacity) {
                return OVERLOADED;
            }
            link(p);
            p.queuedAlone = queued == 1;
            for (int lane = 0; lane < fillingModel.length; lane++) {
                if (fillingModel[lane] == p.model) {
                    filling[lane].signal();
                    return ADMITTED;
                }
            }
            if (spinningLanes == 0 && returningLanes.get() == 0 && idleLanes > 0 && dueBack(-1) == 0) {
                signalIdleLane(); // a spinning, returning or scoring lane (dueBack) sees the arrival by itself
            }
            return ADMITTED;
        } finally {
            lock.unlock();
        }
    }

    /**
     * How long, at most, to leave the queue to a lane other than {@code self} that is scoring, when everything queued
     * is one batch of one model that costs less than gatherNanos: that lane takes it all when it is back. A lane that
     * has scored for longer than {@link #STUCK_FACTOR} times gatherNanos may be stuck and counts for nothing. 0 if
     * there is no such lane. Under the lock.
     */
    private long dueBack(int self) {
        if (queuedModels != 1 || queuedRows > maxBatchRows) {
            return 0;
        }
        long cost = cost(head.model, queuedRows);
        if (cost <= 0 || cost >= gatherNanos) {
            return 0; // unknown yet, or long enough that another core should share the work
        }
        long now = 0;
        for (int lane = 0; lane < scoringSince.length; lane++) {
            long since = scoringSince[lane];
            if (lane != self && since != 0) {
                if (now == 0) {
                    now = System.nanoTime();
                }
                long left = since + STUCK_FACTOR * gatherNanos - now;
                if (left > 0) {
                    return left;
                }
            }
        }
        return 0;
    }

    /**
     * A lane reports how long a batch of {@code rows} rows of {@code model} took to score: the CPU time of the Python
     * thread, so waits for the GIL or for a core are left out. Kept per model and size class as a slowly rising
     * minimum: a lower figure replaces it, a higher one moves it up by 1/16 of the difference. Contention (the other
     * lane scoring on the sibling core, cache misses after a switch) only ever inflates a batch's time, so the floor
     * is the model's own cost, and the figure still follows the model when it really gets slower (a hot swap).
     */
    void scored(int model, int rows, long nanos) {
        if (nanos > 0) {
            int i = model * SIZE_CLASSES + sizeClass(rows);
            long cur = runNanos[i];
            runNanos[i] = cur == 0 || nanos < cur ? nanos : cur + ((nanos - cur) >> 4);
        }
    }

    /**
     * Whether a batch of {@code rows} rows of {@code model} is known to score for at least gatherNanos. Such batches
     * are not gathered on one lane, so nothing is lost when their caller, answered before its lane is back, queues
     * the next request meanwhile: the lanes only early-answer those (see {@link WorkerLane#scored}). For a shorter
     * batch the caller's next request would often go to the other lane, away from the warm one.
     */
    boolean runsLong(int model, int rows) {
        long c = cost(model, rows);
        return c > 0 && c >= gatherNanos;
    }

    /** The cost {@link #scored} keeps for a batch of {@code rows} rows of {@code model}; 0 if unknown. */
    long cost(int model, int rows) {
        return runNanos[model * SIZE_CLASSES + sizeClass(rows)];
    }

    /** 0 for 1 row, 1 for 2, 2 for 3-4, ... up to SIZE_CLASSES - 1: the power of two at or above {@code rows}. */
    private static int sizeClass(int rows) {
        int c = rows <= 1 ? 0 : 32 - Integer.numberOfLeadingZeros(rows - 1);
        return Math.min(c, SIZE_CLASSES - 1);
    }

    /**
     * {@code lane} completed (or failed) its batch and is on its way back to {@link #take}: until then, arrivals
     * leave the idle lanes asleep. Called by the lane's own thread only.
     */
    void returning(int lane) {
        scoringSince[lane] = 0;
        if (!returning[lane]) {
            returning[lane] = true;
            returningLanes.incrementAndGet();
        }
    }

    /** {@code lane} is back and about to look at the queue. Under the lock, by the lane's own thread. */
    private void arrived(int lane) {
        if (returning[lane]) {
            returning[lane] = false;
            returningLanes.decrementAndGet();
        }
    }

    /**
     * Fills {@code batch} with the oldest queued request and younger ones of its model, up to maxBatchRows rows,
     * waiting up to {@code timeoutNanos} for the first and, when maxDelayNanos &gt; 0, up to that long for more.
     *
     * @return the number of requests taken; 0 on timeout; -1 once closed. Interrupts are noted, not obeyed.
     */
    int take(int lane, long timeoutNanos, Batch batch) {
        long until = System.nanoTime() + Math.max(0, timeoutNanos);
        if (laneSpinNanos > 0 && queued == 0) {
            spinForWork(lane, Math.min(laneSpinNanos, Math.max(0, timeoutNanos)));
        }
        boolean interrupted = false;
        lock.lock();
        try {
            arrived(lane);
            while (batch.size == 0) {
                if (closed) {
                    return -1;
                }
                long leave = 0;
                if (head != null) {
                    leave = dueBack(lane);
                    if (leave <= 0) {
                        collect(head.model, batch, System.nanoTime());
                        continue;
                    }
                    // Another lane, due back now, takes it all as one batch: we would only split it (and the GIL).
                }
                long remaining = until - System.nanoTime();
                if (remaining <= 0) {
                    return 0;
                }
                idleStack[idleLanes++] = lane;
                try {
                    idle[lane].awaitNanos(leave > 0 ? Math.min(leave, remaining) : remaining);
                } catch (InterruptedException e) {
                    interrupted = true;
                } finally {
                    removeIdle(lane);
                }
            }
            if (maxDelayNanos > 0) {
                interrupted |= fill(lane, batch);
            }
            if (head != null && spinningLanes == 0) {
                signalIdleLane(); // what this batch left behind is someone else's
            }
            scoringSince[lane] = System.nanoTime();
            return batch.size;
        } finally {
            lock.unlock();
            if (interrupted) {
                // Lanes belong to Python, which does not use Java interrupts: keep the status, but returning early
                // would only make the worker spin on take().
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Busy-waits up to {@code nanos} for a request, if the spin budget has a free core (see {@link SpinBudget}:
     * spinning lanes on a saturated machine steal the core a busy lane needs). While this lane spins, arrivals do not
     * wake parked lanes: this one will see them, here or when it takes the lock.
     */
    private void spinForWork(int lane, long nanos) {
        if (!spin.tryAcquire()) {
            return;
        }
        try {
            lock.lock();
            try {
                spinningLanes++;
                arrived(lane); // counted as spinning now
            } finally {
                lock.unlock();
            }
            long start = System.nanoTime();
            for (int i = 1; queued == 0 && !closed && System.nanoTime() - start < nanos && !spin.overcommitted(); i++) {
                SpinBudget.pause(i);
            }
        } finally {
            lock.lock();
            try {
                spinningLanes--; // take() checks the queue under the lock next: nothing linked meanwhile is missed
            } finally {
                lock.unlock();
            }
            spin.release();
        }
    }

    /**
     * Waits up to maxDelayNanos (never past a member's deadline) for more requests of the batch's model.
     *
     * @return whether the thread was interrupted meanwhile (and the status cleared)
     */
    private boolean fill(int lane, Batch batch) {
        int model = batch.items[0].model;
        long now = System.nanoTime();
        long start = now;
        boolean interrupted = false;
        fillingModel[lane] = model;
        try {
            // Stops when full, when the next request of the model does not fit, on close, or when time is up.
            while (batch.rows < maxBatchRows && modelHead[model] == null && !closed) {
                long until = batch.earliestDeadline - (start + maxDelayNanos) < 0
                        ? batch.earliestDeadline : start + maxDelayNanos;
                long remaining = until - now;
                if (remaining <= 0) {
                    break;
                }
                try {
                    filling[lane].awaitNanos(remaining);
                } catch (InterruptedException e) {
                    interrupted = true;
                }
                now = System.nanoTime();
                collect(model, batch, now);
            }
        } finally {
            fillingModel[lane] = -1;
        }
        return interrupted;
    }

    /** Moves the model's queued requests into the batch, oldest first, while they fit; expired ones aside. */
    private void collect(int model, Batch batch, long now) {
        Pending p;
        while ((p = modelHead[model]) != null) {
            if (p.deadline() - now <= 0) {
                unlink(p);
                p.state = Pending.REMOVED;
                batch.expired.add(p);
                continue;
            }
            if (batch.size > 0 && batch.rows + p.rows() > maxBatchRows) {
                return; // (an empty batch takes its first request whatever its size: admission bounds it)
            }
            unlink(p);
            p.state = Pending.TAKEN;
            if (batch.size == 0 || p.deadline() - batch.earliestDeadline < 0) {
                batch.earliestDeadline = p.deadline();
            }
            batch.items[batch.size++] = p;
            batch.rows += p.rows();
        }
    }

    /** Caller, at its deadline: removes {@code p} if no lane took it yet. */
    boolean withdraw(Pending p) {
        if (p.state != Pending.QUEUED) {
            return false; // only the lock holder moves a request out of QUEUED, so this cannot turn back
        }
        lock.lock();
        try {
            if (p.state != Pending.QUEUED) {
                return false;
            }
            unlink(p);
            p.state = Pending.REMOVED;
            return true;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Wakes the most recently idle lane, if any, and takes it off the stack at once, so that the next arrival before
     * it runs wakes another lane. Under the lock.
     */
    private void signalIdleLane() {
        if (idleLanes > 0) {
            idle[idleStack[--idleLanes]].signal();
        }
    }

    /** Takes {@code lane} off the idle stack wherever it is (it woke, timed out or was signalled). Under the lock. */
    private void removeIdle(int lane) {
        for (int i = idleLanes - 1; i >= 0; i--) {
            if (idleStack[i] == lane) {
                System.arraycopy(idleStack, i + 1, idleStack, i, idleLanes - 1 - i);
                idleLanes--;
                return;
            }
        }
    }

    /** Refuses all further offers, wakes every lane, and returns what was queued for the caller to fail. */
    List<Pending> close() {
        lock.lock();
        try {
            closed = true;
            List<Pending> pending = new ArrayList<>(queued);
            for (Pending p = head; p != null; p = p.next) {
                p.state = Pending.REMOVED;
                pending.add(p);
            }
            for (Pending p : pending) {
                unlink(p);
            }
            for (Condition c : idle) {
                c.signalAll();
            }
            for (Condition c : filling) {
                c.signalAll();
            }
            return pending;
        } finally {
            lock.unlock();
        }
    }

    /** Lanes parked waiting for work, right now (for tests). */
    int idleLanes() {
        lock.lock();
        try {
            return idleLanes;
        } finally {
            lock.unlock();
        }
    }

    /** Requests queued and not yet taken, right now. */
    int queued() {
        lock.lock();
        try {
            return queued;
        } finally {
            lock.unlock();
        }
    }

    private void link(Pending p) {
        p.prev = tail;
        if (tail == null) {
            head = p;
        } else {
            tail.next = p;
        }
        tail = p;
        int m = p.model;
        p.modelPrev = modelTail[m];
        if (modelTail[m] == null) {
            modelHead[m] = p;
            queuedModels++;
        } else {
            modelTail[m].modelNext = p;
        }
        modelTail[m] = p;
        queued++;
        queuedRows += p.rows();
    }

    private void unlink(Pending p) {
        if (p.prev == null) {
            head = p.next;
        } else {
            p.prev.next = p.next;
        }
        if (p.next == null) {
            tail = p.prev;
        } else {
            p.next.prev = p.prev;
        }
        int m = p.model;
        if (p.modelPrev == null) {
            modelHead[m] = p.modelNext;
        } else {
            p.modelPrev.modelNext = p.modelNext;
        }
        if (p.modelNext == null) {
            modelTail[m] = p.modelPrev;
            if (p.modelPrev == null) {
                queuedModels--;
            }
        } else {
            p.modelNext.modelPrev = p.modelPrev;
        }
        p.prev = null;
        p.next = null;
        p.modelPrev = null;
        p.modelNext = null;
        queued--;
        queuedRows -= p.rows();
    }

    @Override
    public String toString() {
        return "RequestQueue[capacity=" + capacity + ", maxBatchRows=" + maxBatchRows + ", maxDelay="
                + TimeUnit.NANOSECONDS.toMicros(maxDelayNanos) + " us]";
    }
}
