package dev.scoregate.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Many threads leasing from a small arena: no slot is ever held by two threads, and every slot comes back. */
@Timeout(60)
class FeatureArenaConcurrencyTest {
    private static final int THREADS = 8;
    private static final int SLOTS = 3; // fewer than threads, so acquire waits
    private static final int ITERATIONS = 5_000;
    private static final int FEATURES = 16;

    @Test
    void noSlotIsHandedOutTwice() throws Exception {
        FeatureArena arena = FeatureArena.allocate(SLOTS, 2, FEATURES);
        AtomicIntegerArray holder = new AtomicIntegerArray(SLOTS); // 0 = free, else thread number + 1
        AtomicIntegerArray leases = new AtomicIntegerArray(SLOTS);
        AtomicLong violations = new AtomicLong();
        CountDownLatch start = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        try {
            List<Future<?>> workers = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int me = t + 1;
                workers.add(pool.submit(() -> {
                    start.await();
                    float[] values = new float[FEATURES];
                    for (int i = 0; i < ITERATIONS; i++) {
                        try (FeatureArena.Slot slot = arena.acquire(Duration.ofSeconds(20))) {
                            int index = slot.index();
                            if (!holder.compareAndSet(index, 0, me)) {
                                violations.incrementAndGet();
                            }
                            leases.incrementAndGet(index);
                            // Exact in float32: me * 2^16 + i < 2^24.
                            Arrays.fill(values, me * 65_536f + i);
                            slot.putRow(0, values);
                            for (int f = 0; f < FEATURES; f++) {
                                if (slot.features().get(f) != values[0]) {
                                    violations.incrementAndGet(); // someone else wrote into our lease
                                }
                            }
                            if (!holder.compareAndSet(index, me, 0)) {
                                violations.incrementAndGet();
                            }
                        }
                    }
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> worker : workers) {
                worker.get(50, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(0, violations.get(), "slots handed to two threads at once");
        assertEquals(SLOTS, arena.available(), "every slot came back");
        int total = 0;
        for (int i = 0; i < SLOTS; i++) {
            assertTrue(leases.get(i) > 0, "slot " + i + " was never used");
            total += leases.get(i);
        }
        assertEquals(THREADS * ITERATIONS, total);
    }
}
