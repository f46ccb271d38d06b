package dev.scoregate.bridge.inprocess;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
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
 */
final class RequestQueue {
    static final int ADMITTED = 0;
    static final int CLOSED = 1;
    static final int OVERLOADED = 2;

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

    // Guarded by lock.
    private Pending head;
    private Pending tail;
    /** Written under the lock; read without it by spinning lanes. */
    private volatile int queued;
    /** Lanes busy-waiting for work (outside the lock): an arrival needs no signal while one is. */
    private int spinningLanes;
    /** Idle lanes, most recently idle on top: {@code idleStack[0..idleLanes)}. */
    private final int[] idleStack;
    private int idleLanes;
    private volatile boolean closed;

    RequestQueue(int models, int lanes, int capacity, int maxBatchRows, long maxDelayNanos) {
        this(models, lanes, capacity, maxBatchRows, maxDelayNanos, SpinBudget.forThisMachine(), 0);
    }

    RequestQueue(int models, int lanes, int capacity, int maxBatchRows, long maxDelayNanos, SpinBudget spin,
                 long laneSpinNanos) {
        this.spin = spin;
        this.laneSpinNanos = laneSpinNanos;
        this.modelHead = new Pending[models];
        this.modelTail = new Pending[models];
        this.filling = new Condition[lanes];
        this.idle = new Condition[lanes];
        this.idleStack = new int[lanes];
        this.fillingModel = new int[lanes];
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
            if (spinningLanes == 0) {
                signalIdleLane(); // a spinning lane sees the arrival by itself, without a wake-up
            }
            return ADMITTED;
        } finally {
            lock.unlock();
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
            spinForWork(Math.min(laneSpinNanos, Math.max(0, timeoutNanos)));
        }
        boolean interrupted = false;
        lock.lock();
        try {
            while (batch.size == 0) {
                if (closed) {
                    return -1;
                }
                if (head != null) {
                    collect(head.model, batch, System.nanoTime());
                    continue;
                }
                long remaining = until - System.nanoTime();
                if (remaining <= 0) {
                    return 0;
                }
                idleStack[idleLanes++] = lane;
                try {
                    idle[lane].awaitNanos(remaining);
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
    private void spinForWork(long nanos) {
        if (!spin.tryAcquire()) {
            return;
        }
        try {
            lock.lock();
            try {
                spinningLanes++;
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
        } else {
            modelTail[m].modelNext = p;
        }
        modelTail[m] = p;
        queued++;
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
        } else {
            p.modelNext.modelPrev = p.modelPrev;
        }
        p.prev = null;
        p.next = null;
        p.modelPrev = null;
        p.modelNext = null;
        queued--;
    }

    @Override
    public String toString() {
        return "RequestQueue[capacity=" + capacity + ", maxBatchRows=" + maxBatchRows + ", maxDelay="
                + TimeUnit.NANOSECONDS.toMicros(maxDelayNanos) + " us]";
    }
}
