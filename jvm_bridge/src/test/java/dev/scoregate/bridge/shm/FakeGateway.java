package dev.scoregate.bridge.shm;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A Java stand-in for the Python gateway's ring workers ({@code jvm_bridge/shm_session.py}), the same protocol step
 * for step: scan the worker's slots for request seqs not yet answered, answer, write the response seq last; when idle,
 * store an odd sleep word, fence, scan once more, then wait on the doorbell. It "scores" with {@link Behaviour}.
 */
final class FakeGateway implements Doorbell {
    private static final VarHandle LONGS = MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.nativeOrder());

    /** What the fake does with one request: write scores (return 0) or fail with a code (return it, plus message). */
    interface Behaviour {
        /** @return {@code null} to report success, else {code, message} */
        Object[] serve(int model, int rows, int features, ByteBuffer x, int xOffset, ByteBuffer out, int outOffset);
    }

    /** Scores each row with the sum of its features. */
    static final Behaviour ROW_SUMS = (model, rows, features, x, xOff, out, outOff) -> {
        for (int r = 0; r < rows; r++) {
            float sum = 0;
            for (int f = 0; f < features; f++) {
                sum += x.getFloat(xOff + (r * features + f) * Float.BYTES);
            }
            out.putFloat(outOff + r * Float.BYTES, sum);
        }
        return null;
    };

    private final ByteBuffer memory;
    private final RingLayout layout;
    private final Behaviour behaviour;
    private final Semaphore[] bells;
    /** Released once per request the workers may serve; {@link Integer#MAX_VALUE} permits when not paused. */
    private final Semaphore gate;
    private final List<Thread> threads = new ArrayList<>();
    private volatile boolean stopped;
    /** The routing bucket and the pinned version of the last request served ({@code S_BUCKET}, {@code S_PINNED}). */
    volatile int lastBucket = -2;
    volatile long lastPinned = -2;
    /** What answers say scored them ({@code S_SERVED}): a version number, or -1 (not a number). */
    volatile long servedVersion = -1;
    private volatile boolean neverSleep;
    final AtomicLong served = new AtomicLong();
    final AtomicLong rings = new AtomicLong();
    final AtomicLong sleeps = new AtomicLong();

    FakeGateway(ByteBuffer memory, Behaviour behaviour, boolean paused) {
        this.memory = memory.duplicate().order(ByteOrder.nativeOrder());
        this.layout = RingLayout.read(this.memory);
        this.behaviour = behaviour;
        this.bells = new Semaphore[layout.workers()];
        for (int w = 0; w < bells.length; w++) {
            bells[w] = new Semaphore(0);
        }
        this.gate = new Semaphore(paused ? 0 : Integer.MAX_VALUE);
    }

    /** A formatted ring in a direct buffer, 64-byte aligned as an mmap would be. */
    static ByteBuffer ring(int slots, int workers, int maxRows, int maxFeatures, int maxWidth) {
        int bytes = RingLayout.requiredBytes(slots, maxRows, maxFeatures, maxWidth);
        ByteBuffer raw = ByteBuffer.allocateDirect(bytes + 64).alignedSlice(64).order(ByteOrder.nativeOrder());
        RingLayout.format(raw, slots, workers, maxRows, maxFeatures, maxWidth);
        return raw;
    }

    /** Spins instead of sleeping: for rings whose doorbell the fake cannot hear (files, not this object). */
    FakeGateway neverSleeping() {
        neverSleep = true;
        return this;
    }

    FakeGateway start() {
        for (int w = 0; w < layout.workers(); w++) {
            int worker = w;
            Thread t = new Thread(() -> loop(worker), "fake-gateway-" + w);
            t.setDaemon(true);
            t.start();
            threads.add(t);
        }
        return this;
    }

    /** Lets paused workers serve {@code requests} more requests. */
    void allow(int requests) {
        gate.release(requests);
    }

    @Override
    public void ring(int worker) {
        rings.incrementAndGet();
        bells[worker].release();
    }

    private void loop(int worker) {
        List<Integer> mine = new ArrayList<>();
        for (int i = worker; i < layout.slots(); i += layout.workers()) {
            mine.add(i);
        }
        long[] answered = new long[mine.size()];
        long epoch = 0;
        long idleSince = System.nanoTime();
        while (!stopped) {
            boolean any = false;
            for (int j = 0; j < mine.size(); j++) {
                int slot = mine.get(j);
                long s = (long) LONGS.getAcquire(memory, layout.slot(slot) + RingLayout.S_REQ_SEQ);
                if (s != answered[j]) {
                    any = true;
                    answered[j] = s;
                    try {
                        gate.acquire();
                    } catch (InterruptedException e) {
                        return;
                    }
                    serve(slot, s);
                }
            }
            if (any) {
                idleSince = System.nanoTime();
                continue;
            }
            if (neverSleep || System.nanoTime() - idleSince < TimeUnit.MICROSECONDS.toNanos(50)) {
                Thread.onSpinWait();
                continue;
            }
            epoch++;
            LONGS.setRelease(memory, layout.sleepWord(worker), 2 * epoch + 1);
            VarHandle.fullFence();
            boolean pending = false;
            for (int j = 0; j < mine.size(); j++) {
                pending |= (long) LONGS.getAcquire(memory, layout.slot(mine.get(j)) + RingLayout.S_REQ_SEQ)
                        != answered[j];
            }
            if (!pending) {
                sleeps.incrementAndGet();
                try {
                    bells[worker].tryAcquire(100, TimeUnit.MILLISECONDS);
                    bells[worker].drainPermits();
                } catch (InterruptedException e) {
                    return;
                }
            }
            LONGS.setRelease(memory, layout.sleepWord(worker), 2 * epoch + 2);
            idleSince = System.nanoTime();
        }
    }

    private void serve(int slot, long s) {
        int base = layout.slot(slot);
        int model = memory.getInt(base + RingLayout.S_MODEL);
        int rows = memory.getInt(base + RingLayout.S_ROWS);
        int features = memory.getInt(base + RingLayout.S_FEATURES);
        long deadline = memory.getLong(base + RingLayout.S_DEADLINE);
        lastBucket = memory.getInt(base + RingLayout.S_BUCKET);
        lastPinned = memory.getLong(base + RingLayout.S_PINNED);
        Object[] failure = System.nanoTime() > deadline
                ? new Object[] {GatewayErrors.DEADLINE_EXCEEDED, "deadline exceeded: never scored"}
                : behaviour.serve(model, rows, features, memory, layout.features(slot), memory, layout.scores(slot));
        if (failure == null) {
            memory.putInt(base + RingLayout.S_OUTCOME, RingLayout.SCORED);
        } else {
            byte[] message = ((String) failure[1]).getBytes(StandardCharsets.UTF_8);
            memory.put(base + RingLayout.S_MESSAGE, message);
            memory.putInt(base + RingLayout.S_OUTCOME, RingLayout.FAILED);
            memory.putInt(base + RingLayout.S_CODE, (Integer) failure[0]);
            memory.putInt(base + RingLayout.S_MESSAGE_LENGTH, message.length);
        }
        memory.putLong(base + RingLayout.S_ANSWERED, System.nanoTime());
        memory.putLong(base + RingLayout.S_SERVED, servedVersion);
        LONGS.setRelease(memory, base + RingLayout.S_RESP_SEQ, s);
        served.incrementAndGet(); // after the answer is published: a test that saw the count may rely on the answer
    }

    @Override
    public void close() {
        stopped = true;
        for (Thread t : threads) {
            t.interrupt();
        }
        for (Thread t : threads) {
            try {
                t.join(5_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
