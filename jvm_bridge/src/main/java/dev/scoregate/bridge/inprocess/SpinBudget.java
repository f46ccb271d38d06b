package dev.scoregate.bridge.inprocess;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * Who may busy-wait instead of parking: at most as many threads as there are cores, counting the lanes that are
 * scoring. Waking a parked thread costs a futex wake-up and, on a virtual machine whose other vCPU went idle, an
 * inter-processor interrupt through the hypervisor: measured 30-50 us per hand-off on the project's 2-core VMs,
 * two hand-offs per call (request thread to lane, lane back). A thread that spins on a core nobody else needs
 * sees the hand-off in well under a microsecond; a thread that spins on a core somebody needs steals it (measured:
 * two idle lanes spinning on 2 cores doubled batch-1 latency). So spinning is granted only while
 * {@code scoring lanes + spinning threads < cores}: one caller and one lane on a quiet 2-core machine spin, 32
 * callers with both lanes busy all park, exactly as without spinning.
 *
 * <p>Lock-free: one counter, CAS to acquire. Java threads that are not ours (the ad server's own work) are not
 * counted; {@code cores} can be lowered to leave them room.
 */
final class SpinBudget {
    private final int cores;
    private final AtomicInteger active = new AtomicInteger();

    SpinBudget(int cores) {
        this.cores = cores;
    }

    static SpinBudget forThisMachine() {
        return new SpinBudget(Runtime.getRuntime().availableProcessors());
    }

    /** A permit to spin, if a core is free; give it back with {@link #release()}. */
    boolean tryAcquire() {
        int n;
        do {
            n = active.get();
            if (n >= cores) {
                return false;
            }
        } while (!active.compareAndSet(n, n + 1));
        return true;
    }

    void release() {
        active.decrementAndGet();
    }

    /**
     * Whether a spinner should stop: a lane started scoring after it acquired its permit and the cores are
     * oversubscribed. Spinners check it in their loops, so busy lanes preempt them.
     */
    boolean overcommitted() {
        return active.get() > cores;
    }

    /** A lane started scoring: it holds a core whatever the budget says (spinners notice and stop). */
    void busy() {
        active.incrementAndGet();
    }

    /**
     * One step of a spin loop: a PAUSE, and every {@value #YIELD_EVERY} steps (a few microseconds) a
     * {@link Thread#yield()}. The yield matters when the scheduler put the thread we wait for on our core (another
     * thread held the other one when it woke): without it, that thread runs only when our time slice ends, and the
     * spin turns a hand-off of microseconds into one of a millisecond (measured: p99 1.3 ms at batch 256 and one
     * caller, against a p50 of 260 us).
     */
    static void pause(int step) {
        if (step % YIELD_EVERY == 0) {
            Thread.yield();
        } else {
            Thread.onSpinWait();
        }
    }

    static final int YIELD_EVERY = 64;

    /** Threads spinning plus lanes scoring, right now (tests, diagnostics). */
    int active() {
        return active.get();
    }

    @Override
    public String toString() {
        return "SpinBudget[" + active.get() + "/" + cores + "]";
    }
}
