package dev.scoregate.bridge.shm;

import dev.scoregate.bridge.DeadlineExceededException;
import dev.scoregate.bridge.GatewayUnavailableException;
import dev.scoregate.bridge.ScoregateException;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.concurrent.locks.LockSupport;

/**
 * The client half of the slot protocol over one mapped ring ({@link RingLayout}); the gateway half is
 * {@code jvm_bridge/shm_session.py}. No call crosses a socket per request: a request thread claims a slot, writes
 * its features and request fields, publishes the request seq, and waits for the response seq.
 *
 * <h2>One request</h2>
 * <ol>
 *   <li>{@link #claim()}: a free slot, preferring the one this thread used last (its worker's numpy views and ONNX
 *       Runtime binding are warm). {@code -1} when every slot is busy or quarantined.</li>
 *   <li>{@link #copyIn}, then {@link #publish}: the request fields with plain stores, then
 *       {@code requestSeq = s} with {@code setRelease}, so the gateway that sees {@code s} sees everything before it.
 *       Then {@link VarHandle#fullFence()} and a read of the serving worker's sleep word: if it is odd (asleep),
 *       ring its doorbell, once per odd value. With the worker's own fence between writing its sleep word and
 *       re-reading the seqs, one side always sees the other (Dekker), so no request sleeps unseen.</li>
 *   <li>{@link #await} waits for {@code responseSeq == s} ({@code getAcquire}: the outcome, message and scores
 *       written before it are visible) in three phases: park through most of the time this model usually takes for
 *       this many rows (learned from the answer time the gateway writes into the slot, in its clock), waking early
 *       by the overshoot parks have shown; spin until the answer is due and {@code spinNanos} beyond, if a core is
 *       spare (busy gateway workers plus spinning callers fit in the cores); then park with a doubling back-off up to {@code maxParkNanos},
 *       checking on every wake-up the deadline, the ring's failure (set by {@link #fail}, which also unparks every
 *       waiter), the gateway's state word and its heartbeat. Parks alone would add the timer slack (about 50 µs on
 *       Linux) to every call and let the gateway's worker fall asleep before the next request; spinning alone would
 *       burn a core per waiting caller.</li>
 *   <li>On an answer: {@link #copyOut} or read the error, then {@link #release}. On the deadline or an interrupt:
 *       the slot is <em>abandoned</em>, not freed: the gateway may still be writing into it, so {@link #claim()}
 *       hands it out again only once its response seq has caught up.</li>
 * </ol>
 *
 * <h2>Threads</h2>
 * Thread-safe. A slot belongs to the thread that claimed it until it releases or abandons it; its request line and
 * {@code seq[slot]} are written by that thread only. The ring is shared by every request thread of one session.
 */
final class SlotRing {
    private static final VarHandle LONGS = MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.nativeOrder());

    /** How much earlier than the learned overshoot to wake, and the overshoot assumed before any was seen. */
    private static final long PARK_MARGIN_NANOS = 10_000;
    private static final long FIRST_OVERSHOOT_NANOS = 60_000;
    private static final long MAX_OVERSHOOT_NANOS = 1_000_000;
    private static final long MAX_TYPICAL_NANOS = TimeUnit.SECONDS.toNanos(1);
    private static final int ROW_BUCKETS = 16;
    private static final int MAX_MODELS = 1024;
    /** The gateway runs on this host (it shares our memory), so these are its cores too. */
    private static final int CORES = Runtime.getRuntime().availableProcessors();

    static final int FREE = 0;
    static final int BUSY = 1;
    static final int ABANDONED = 2;

    private final RingLayout layout;
    private final ByteBuffer memory;
    private final Doorbell doorbell;
    private final long spinNanos;
    private final long maxParkNanos;
    private final long clockOffsetNanos;
    private final long heartbeatTimeoutNanos;
    private final AtomicIntegerArray owner;
    /** The last request seq published per slot; written by the slot's owner only (ownership orders it). */
    private final long[] seq;
    private final AtomicReferenceArray<Thread> waiters;
    /** Per worker: the odd sleep word we last rang its doorbell for. */
    private final AtomicLongArray rung;
    private final ThreadLocal<int[]> lastSlot;
    /**
     * Typical service time per (model, log2 rows), an EWMA of what the gateway reports. Plain longs: a lost or stale
     * update only makes one wait less well timed.
     */
    private final long[] typicalNanos = new long[MAX_MODELS * ROW_BUCKETS];
    /** How late parks have woken lately (EWMA, ns); a plain field, as {@link #typicalNanos}. */
    private long overshootNanos = FIRST_OVERSHOOT_NANOS;
    private final AtomicInteger spinners = new AtomicInteger();
    /** Requests published and not yet answered or given up on. */
    private final AtomicInteger inFlight = new AtomicInteger();
    /** Why the ring is dead, or null while it serves. */
    private volatile String failure;

    /**
     * @param memory                the mapped ring, formatted by the gateway (or {@link RingLayout#format})
     * @param clockOffsetNanos      gateway clock minus {@link System#nanoTime()}: deadlines are written, and the
     *                              heartbeat read, in the gateway's clock
     * @param heartbeatTimeoutNanos a heartbeat older than this fails the ring; {@code <= 0}: not checked
     */
    SlotRing(ByteBuffer memory, Doorbell doorbell, long spinNanos, long maxParkNanos, long clockOffsetNanos,
             long heartbeatTimeoutNanos) {
        this.memory = memory.duplicate().order(ByteOrder.nativeOrder());
        this.layout = RingLayout.read(this.memory);
        this.doorbell = doorbell;
        this.spinNanos = spinNanos;
        this.maxParkNanos = Math.max(1, maxParkNanos);
        this.clockOffsetNanos = clockOffsetNanos;
        this.heartbeatTimeoutNanos = heartbeatTimeoutNanos;
        int slots = layout.slots();
        this.owner = new AtomicIntegerArray(slots);
        this.seq = new long[slots];
        for (int i = 0; i < slots; i++) {
            seq[i] = (long) LONGS.getAcquire(this.memory, layout.slot(i) + RingLayout.S_REQ_SEQ);
        }
        this.waiters = new AtomicReferenceArray<>(slots);
        this.rung = new AtomicLongArray(layout.workers());
        // Spread threads over the slots (and so over the workers) until each has a slot of its own.
        this.lastSlot = ThreadLocal.withInitial(() -> new int[] {(int) (Thread.currentThread().getId() % slots)});
    }

    RingLayout layout() {
        return layout;
    }

    /** Gateway clock minus {@link System#nanoTime()}. */
    long clockOffsetNanos() {
        return clockOffsetNanos;
    }

    /** A free slot, now owned by the caller; -1 if every slot is busy or still quarantined. */
    int claim() {
        int[] hint = lastSlot.get();
        int n = layout.slots();
        for (int k = 0, i = hint[0]; k < n; k++, i = i + 1 == n ? 0 : i + 1) {
            int state = owner.get(i);
            if (state == FREE && owner.compareAndSet(i, FREE, BUSY)
                    || state == ABANDONED && answered(i, seq[i]) && owner.compareAndSet(i, ABANDONED, BUSY)) {
                hint[0] = i;
                return i;
            }
        }
        return -1;
    }

    /** Gives an answered slot back. */
    void release(int slot) {
        if (waiters.getAndSet(slot, null) != null) {
            inFlight.decrementAndGet();
        }
        owner.set(slot, FREE);
    }

    /** Copies {@code bytes} of {@code source} (from absolute index 0) into the slot's features. */
    void copyIn(int slot, ByteBuffer source, int bytes) {
        memory.put(layout.features(slot), whole(source, bytes), 0, bytes);
    }

    /** Copies {@code bytes} of the slot's scores into {@code target} (from absolute index 0). */
    void copyOut(int slot, ByteBuffer target, int bytes) {
        whole(target, bytes).put(0, memory, layout.scores(slot), bytes);
    }

    /**
     * Writes the request line and publishes it (see the class comment, step 2).
     *
     * @param deadline the deadline in the gateway's clock
     * @return the request's seq, for {@link #await}
     */
    long publish(int slot, int model, int rows, int features, int width, long deadline, int bucket, long pinned) {
        int base = layout.slot(slot);
        memory.putInt(base + RingLayout.S_MODEL, model);
        memory.putInt(base + RingLayout.S_BUCKET, bucket);
        memory.putLong(base + RingLayout.S_PINNED, pinned);
        memory.putInt(base + RingLayout.S_ROWS, rows);
        memory.putInt(base + RingLayout.S_FEATURES, features);
        memory.putInt(base + RingLayout.S_WIDTH, width);
        memory.putLong(base + RingLayout.S_DEADLINE, deadline);
        long s = ++seq[slot];
        waiters.set(slot, Thread.currentThread());
        inFlight.incrementAndGet();
        LONGS.setRelease(memory, base + RingLayout.S_REQ_SEQ, s);
        VarHandle.fullFence(); // store-load: our seq before the worker's sleep word (class comment, step 2)
        int worker = layout.workerOf(slot);
        long sleep = (long) LONGS.getAcquire(memory, layout.sleepWord(worker));
        if ((sleep & 1) == 1 && rung.getAndSet(worker, sleep) != sleep) {
            try {
                doorbell.ring(worker);
            } catch (IOException e) {
                fail("the gateway's doorbell is gone (" + e.getMessage() + "); the gateway process has stopped");
            }
        }
        return s;
    }

    /**
     * Waits for the answer to request {@code s} on {@code slot} (class comment, step 3).
     *
     * @param deadlineNanos the caller's deadline, a {@link System#nanoTime()} value
     * @param model         the model as the request named it, for messages
     * @param modelIndex    its index in the session's table, and {@code rows}: which service time to expect
     * @return {@link RingLayout#SCORED} or {@link RingLayout#FAILED}
     * @throws DeadlineExceededException   at the deadline (the slot is abandoned)
     * @throws GatewayUnavailableException once the ring has failed: the gateway died, closed or stopped beating
     * @throws ScoregateException          if interrupted (the slot is abandoned; the interrupt status is kept)
     */
    int await(int slot, long s, long deadlineNanos, String model, int modelIndex, int rows) {
        long start = System.nanoTime();
        int key = typicalKey(modelIndex, rows);
        long typical = key < 0 ? 0 : typicalNanos[key];
        long due = start + typical;
        // 1. Park through most of the service time this model usually takes for this many rows, waking early by
        //    the overshoot parks have had lately (the timer slack, about 50 µs on Linux, plus scheduling delay).
        long overshoot = overshootNanos;
        long wakeAt = due - overshoot - PARK_MARGIN_NANOS;
        long now = start;
        while (now < wakeAt && now < deadlineNanos && !answered(slot, s) && failure == null
                && !Thread.currentThread().isInterrupted()) {
            long until = Math.min(wakeAt, deadlineNanos);
            LockSupport.parkNanos(this, until - now);
            now = System.nanoTime();
            if (now >= until) {
                overshootNanos = overshoot + (Math.min(now - until, MAX_OVERSHOOT_NANOS) - overshoot) / 8;
            }
        }
        // 2. Spin until the answer is due and spinNanos beyond, if a core is spare: the gateway's busy workers and
        //    the threads spinning already each take one, and a spinner that takes a worker's core slows everyone.
        int busyWorkers = Math.min(inFlight.get(), layout.workers());
        if (!answered(slot, s) && spinners.incrementAndGet() + busyWorkers <= CORES) {
            try {
                long spinUntil = Math.max(now, due) + spinNanos;
                while (!answered(slot, s) && System.nanoTime() < spinUntil) {
                    // Yield, not just pause: when the gateway's worker shares our core (a busy host), it runs now
                    // instead of after our time slice; on a free core yield returns at once (~1 µs).
                    Thread.yield();
                }
            } finally {
                spinners.decrementAndGet();
            }
        } else if (!answered(slot, s)) {
            spinners.decrementAndGet();
        }
        // 3. Park with back-off.
        if (!answered(slot, s)) {
            awaitParked(slot, s, deadlineNanos, model, start);
        }
        int base = layout.slot(slot);
        if (key >= 0) {
            // The gateway's own clock says when it answered: learning from it, not from when we noticed, keeps a
            // late wake-up from teaching us to wake up later still.
            long took = memory.getLong(base + RingLayout.S_ANSWERED) - (start + clockOffsetNanos);
            if (took > 0 && took < MAX_TYPICAL_NANOS) {
                typicalNanos[key] = typical == 0 ? took : typical + (took - typical) / 8;
            }
        }
        return memory.getInt(base + RingLayout.S_OUTCOME);
    }

    /** 3. Park with a doubling back-off, checking everything that ends the wait. */
    private void awaitParked(int slot, long s, long deadlineNanos, String model, long start) {
        long park = 1_000;
        while (!answered(slot, s)) {
            String dead = check();
            if (dead != null) {
                throw new GatewayUnavailableException(model, dead + "; the request may or may not have been scored",
                        null);
            }
            long now = System.nanoTime();
            long remaining = deadlineNanos - now;
            if (remaining <= 0) {
                abandon(slot);
                throw new DeadlineExceededException(model, "the gateway did not answer within "
                        + millis(now - start) + "; its result is discarded");
            }
            if (Thread.interrupted()) {
                abandon(slot);
                Thread.currentThread().interrupt();
                throw new ScoregateException(model, "model '" + model + "': interrupted while waiting "
                        + millis(now - start) + " for the gateway; its result is discarded");
            }
            LockSupport.parkNanos(this, Math.min(park, remaining));
            park = Math.min(park * 2, maxParkNanos);
        }
    }

    private int typicalKey(int modelIndex, int rows) {
        int bucket = 32 - Integer.numberOfLeadingZeros(Math.max(1, rows)); // 1, 2-3, 4-7, ... rows
        int key = modelIndex * ROW_BUCKETS + Math.min(bucket, ROW_BUCKETS - 1);
        return modelIndex < 0 || key >= typicalNanos.length ? -1 : key;
    }

    /** The error code of an answered, failed slot. */
    int code(int slot) {
        return memory.getInt(layout.slot(slot) + RingLayout.S_CODE);
    }

    /** The version that scored an answered slot, as its number; -1 if the gateway's version is not a number. */
    long served(int slot) {
        return memory.getLong(layout.slot(slot) + RingLayout.S_SERVED);
    }

    /** The message of an answered, failed slot (UTF-8, as the gateway wrote it). */
    String message(int slot) {
        int base = layout.slot(slot);
        int length = Math.max(0, Math.min(memory.getInt(base + RingLayout.S_MESSAGE_LENGTH), layout.messageBytes()));
        byte[] bytes = new byte[length];
        memory.get(base + RingLayout.S_MESSAGE, bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }

    private boolean answered(int slot, long s) {
        return (long) LONGS.getAcquire(memory, layout.slot(slot) + RingLayout.S_RESP_SEQ) == s;
    }

    private void abandon(int slot) {
        if (waiters.getAndSet(slot, null) != null) {
            inFlight.decrementAndGet();
        }
        owner.set(slot, ABANDONED);
    }

    /** Why the ring cannot serve, or null: failed, closed by the gateway, or its heartbeat is too old. */
    String check() {
        String dead = failure;
        if (dead != null) {
            return dead;
        }
        if ((long) LONGS.getAcquire(memory, RingLayout.H_STATE) == RingLayout.CLOSED) {
            return fail("the gateway closed this session (it is shutting down or restarting)");
        }
        if (heartbeatTimeoutNanos > 0) {
            long beat = (long) LONGS.getAcquire(memory, RingLayout.H_HEARTBEAT);
            long age = System.nanoTime() + clockOffsetNanos - beat;
            if (beat != 0 && age > heartbeatTimeoutNanos) {
                return fail("the gateway stopped heartbeating " + millis(age) + " ago (hung or stopped)");
            }
        }
        return null;
    }

    /**
     * Fails the ring for good: every waiter is woken and fails with {@link GatewayUnavailableException}, and so does
     * every later call. The first reason sticks. Thread-safe.
     *
     * @return the reason that stuck
     */
    String fail(String reason) {
        synchronized (waiters) {
            if (failure == null) {
                failure = reason;
            }
        }
        for (int i = 0; i < waiters.length(); i++) {
            Thread waiter = waiters.get(i);
            if (waiter != null) {
                LockSupport.unpark(waiter);
            }
        }
        return failure;
    }

    /** The reason the ring failed, or null. */
    String failure() {
        return failure;
    }

    /** Slots in each ownership state right now, {free, busy, abandoned}; for tests and diagnostics. */
    int[] census() {
        int[] counts = new int[3];
        for (int i = 0; i < owner.length(); i++) {
            counts[owner.get(i)]++;
        }
        return counts;
    }

    /** Bulk copies check the limit; ScoreRequest ignores position and limit, so look past a caller's limit. */
    private static ByteBuffer whole(ByteBuffer buffer, int bytes) {
        return buffer.limit() >= bytes ? buffer : buffer.duplicate().clear();
    }

    private static String millis(long nanos) {
        return String.format("%.3f ms", (double) nanos / TimeUnit.MILLISECONDS.toNanos(1));
    }

    @Override
    public String toString() {
        return "SlotRing[" + layout + (failure == null ? "" : ", failed: " + failure) + "]";
    }
}
