package dev.scoregate.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class FeatureArenaTest {
    private static final int SLOTS = 3;
    private static final int MAX_ROWS = 5;
    private static final int FEATURES = 7;

    private final FeatureArena arena = FeatureArena.allocate(SLOTS, MAX_ROWS, FEATURES);

    private static float[] row(float first) {
        float[] values = new float[FEATURES];
        for (int i = 0; i < FEATURES; i++) {
            values[i] = first + i;
        }
        return values;
    }

    @Test
    void laysSlotsOutAtAlignedStrides() {
        int featureBytes = MAX_ROWS * FEATURES * Float.BYTES; // 140
        int stride = arena.slotStrideBytes();
        assertEquals(0, stride % FeatureArena.SLOT_ALIGNMENT);
        assertTrue(stride >= featureBytes + MAX_ROWS * Float.BYTES && stride < featureBytes + MAX_ROWS * Float.BYTES
                + FeatureArena.SLOT_ALIGNMENT, "stride " + stride);
        assertEquals(SLOTS * stride, arena.buffer().capacity());
        assertEquals(SLOTS * stride, FeatureArena.requiredBytes(SLOTS, MAX_ROWS, FEATURES));
        assertEquals(0, arena.buffer().alignmentOffset(0, FeatureArena.SLOT_ALIGNMENT), "base is cache-line aligned");

        boolean[] seen = new boolean[SLOTS];
        FeatureArena.Slot[] slots = new FeatureArena.Slot[SLOTS];
        for (int i = 0; i < SLOTS; i++) {
            slots[i] = arena.acquire();
            FeatureArena.Slot slot = slots[i];
            assertFalse(seen[slot.index()]);
            seen[slot.index()] = true;
            assertEquals(slot.index() * stride, slot.offset());
            assertEquals(slot.offset() + featureBytes, slot.scoresOffset());
        }
        for (FeatureArena.Slot slot : slots) {
            slot.release();
        }
        assertEquals(SLOTS, arena.available());
    }

    @Test
    void arenaBufferIsDirectNativeAndFreshPerCall() {
        ByteBuffer buffer = arena.buffer();
        assertTrue(buffer.isDirect());
        assertEquals(ByteOrder.nativeOrder(), buffer.order());
        assertEquals(0, buffer.position());
        buffer.position(8);
        assertEquals(0, arena.buffer().position());
    }

    @Test
    void putRowWritesWhereThePythonSideReadsIt() {
        try (FeatureArena.Slot slot = arena.acquire()) {
            slot.putRow(2, row(10f));
            ByteBuffer whole = arena.buffer(); // what the transport maps once
            int rowStart = slot.offset() + 2 * FEATURES * Float.BYTES;
            for (int i = 0; i < FEATURES; i++) {
                assertEquals(10f + i, whole.getFloat(rowStart + i * Float.BYTES));
            }
            assertEquals(10f, slot.featureBuffer().getFloat(2 * FEATURES * Float.BYTES));
            assertEquals(11f, slot.features().get(2 * FEATURES + 1));
        }
    }

    @Test
    void featureViewIsDirectNativeAndRewoundOnEveryLease() {
        FeatureArena single = FeatureArena.allocate(1, MAX_ROWS, FEATURES);
        try (FeatureArena.Slot slot = single.acquire()) {
            FloatBuffer view = slot.features();
            assertTrue(view.isDirect());
            assertEquals(ByteOrder.nativeOrder(), view.order());
            assertEquals(MAX_ROWS * FEATURES, view.capacity());
            view.put(row(1f)).put(row(100f)); // relative bulk puts: rows 0 and 1
            assertEquals(2 * FEATURES, view.position());
            assertEquals(100f, single.buffer().getFloat(slot.offset() + FEATURES * Float.BYTES));
        }
        try (FeatureArena.Slot again = single.acquire()) {
            assertEquals(0, again.features().position());
            assertEquals(MAX_ROWS * FEATURES, again.features().limit());
        }
    }

    @Test
    void scoreBufferIsTheSlotsScoreRegion() {
        try (FeatureArena.Slot slot = arena.acquire()) {
            ByteBuffer scores = slot.scoreBuffer();
            assertTrue(scores.isDirect());
            assertEquals(ByteOrder.nativeOrder(), scores.order());
            assertEquals(MAX_ROWS * Float.BYTES, scores.capacity());
            scores.putFloat(Float.BYTES, 0.25f);
            assertEquals(0.25f, arena.buffer().getFloat(slot.scoresOffset() + Float.BYTES));
        }
    }

    @Test
    void putRowRejectsWrongLengthAndRow() {
        try (FeatureArena.Slot slot = arena.acquire()) {
            InvalidInputException e = assertThrows(InvalidInputException.class, () -> slot.putRow(0, new float[3]));
            assertTrue(e.getMessage().contains("row 0 has 3 values but") && e.getMessage().contains("7 features"),
                    e.getMessage());
            assertThrows(IndexOutOfBoundsException.class, () -> slot.putRow(MAX_ROWS, row(0f)));
            assertThrows(IndexOutOfBoundsException.class, () -> slot.putRow(-1, row(0f)));
        }
    }

    @Test
    void requestFromSlotCarriesItsBuffersAndSlot() {
        try (FeatureArena.Slot slot = arena.acquire()) {
            ScoreRequest request = slot.request(3).model("ctr").timeout(Duration.ofMillis(5)).build();
            assertEquals(3, request.rows());
            assertEquals(FEATURES, request.featureCount());
            assertSame(slot, request.slot().orElseThrow());
            assertSame(slot.featureBuffer(), request.featureBuffer());
            assertSame(slot.scoreBuffer(), request.scoreBuffer());
        }
    }

    @Test
    void requestFromSlotRejectsMoreRowsThanTheSlotHolds() {
        try (FeatureArena.Slot slot = arena.acquire()) {
            ScoreRequest.Builder builder = slot.request(MAX_ROWS + 1).model("ctr").timeout(Duration.ofMillis(5));
            InvalidInputException e = assertThrows(InvalidInputException.class, builder::build);
            assertEquals("model 'ctr' input 'features': features buffer holds 140 bytes but "
                    + "6 rows x 7 features x 4 bytes needs 168", e.getMessage());
        }
    }

    @Test
    void acquireThrowsWhenExhausted() {
        FeatureArena two = FeatureArena.allocate(2, 1, 1);
        two.acquire();
        two.acquire();
        assertEquals(0, two.available());
        ArenaExhaustedException e = assertThrows(ArenaExhaustedException.class, two::acquire);
        assertTrue(e.getMessage().contains("all 2 slots are leased"), e.getMessage());
        assertTrue(e.getMessage().contains(two.toString()), e.getMessage());
        assertTrue(e instanceof ScoregateException);
    }

    @Test
    void acquireWithTimeoutGivesUpAfterTheTimeout() {
        FeatureArena one = FeatureArena.allocate(1, 1, 1);
        one.acquire();
        Duration timeout = Duration.ofMillis(30);
        long start = System.nanoTime();
        ArenaExhaustedException e = assertThrows(ArenaExhaustedException.class, () -> one.acquire(timeout));
        assertTrue(System.nanoTime() - start >= timeout.toNanos());
        assertTrue(e.getMessage().contains("for 30 ms"), e.getMessage());
    }

    @Test
    void acquireWithTimeoutGetsASlotReleasedByAnotherThread() throws Exception {
        FeatureArena one = FeatureArena.allocate(1, 1, 1);
        FeatureArena.Slot held = one.acquire();
        CompletableFuture<FeatureArena.Slot> waiter = CompletableFuture.supplyAsync(() -> {
            try {
                return one.acquire(Duration.ofSeconds(20));
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
        });
        held.release();
        FeatureArena.Slot got = waiter.get(20, TimeUnit.SECONDS);
        assertTrue(got.isLeased());
        assertEquals(0, got.index());
    }

    @Test
    void doubleReleaseIsAnError() {
        FeatureArena.Slot slot = arena.acquire();
        slot.release();
        IllegalStateException e = assertThrows(IllegalStateException.class, slot::release);
        assertTrue(e.getMessage().contains("already released"), e.getMessage());
        assertEquals(SLOTS, arena.available());
    }

    @Test
    void staleHandleCannotReleaseOrWriteTheNextLease() {
        FeatureArena one = FeatureArena.allocate(1, 2, FEATURES);
        FeatureArena.Slot first = one.acquire();
        first.release();
        FeatureArena.Slot second = one.acquire();
        assertEquals(first.index(), second.index());
        assertNotEquals(first, second);

        assertThrows(IllegalStateException.class, first::release);
        assertThrows(IllegalStateException.class, () -> first.putRow(0, row(1f)));
        assertThrows(IllegalStateException.class, first::features);
        assertThrows(IllegalStateException.class, () -> first.request(1));
        assertFalse(first.isLeased());
        assertTrue(second.isLeased());
        assertEquals(0, one.available(), "the stale release must not hand the slot out a second time");
        second.release();
        assertEquals(1, one.available());
    }

    @Test
    void registeredArenasKnowTheirRegistration() {
        assertEquals(FeatureArena.UNREGISTERED, arena.registrationId());
        FeatureArena registered = FeatureArena.allocateRegistered(2, MAX_ROWS, FEATURES, 3);
        assertEquals(3, registered.registrationId());
        assertEquals(0, registered.buffer().alignmentOffset(0, FeatureArena.SLOT_ALIGNMENT));
        assertTrue(registered.toString().endsWith("registered as 3]"), registered.toString());
        assertThrows(IllegalArgumentException.class, () -> FeatureArena.allocateRegistered(1, 1, 1, -1));
    }

    @Test
    void allocateRejectsBadShapes() {
        assertThrows(IllegalArgumentException.class, () -> FeatureArena.allocate(0, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> FeatureArena.allocate(1, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> FeatureArena.allocate(1, 1, -1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FeatureArena.allocate(1024, 4096, 1024));
        assertTrue(e.getMessage().contains("at most 2 GiB"), e.getMessage());
    }

    @Test
    void wrapLaysSlotsOutFromIndexZeroOfTheGivenMemory() {
        int bytes = FeatureArena.requiredBytes(2, MAX_ROWS, FEATURES);
        ByteBuffer memory = ByteBuffer.allocateDirect(bytes + 100); // BIG_ENDIAN, position moved: both ignored
        memory.position(40);
        FeatureArena wrapped = FeatureArena.wrap(memory, 2, MAX_ROWS, FEATURES);
        assertEquals(bytes, wrapped.buffer().capacity());
        try (FeatureArena.Slot slot = wrapped.acquire()) {
            slot.putRow(1, row(3f));
            int at = slot.offset() + FEATURES * Float.BYTES;
            assertEquals(3f, memory.order(ByteOrder.nativeOrder()).getFloat(at));
        }
    }

    @Test
    void wrapRejectsHeapReadOnlyAndSmallMemory() {
        int bytes = FeatureArena.requiredBytes(2, MAX_ROWS, FEATURES);
        assertThrows(IllegalArgumentException.class, () -> FeatureArena.wrap(ByteBuffer.allocate(bytes), 2, MAX_ROWS,
                FEATURES));
        assertThrows(IllegalArgumentException.class,
                () -> FeatureArena.wrap(ByteBuffer.allocateDirect(bytes).asReadOnlyBuffer(), 2, MAX_ROWS, FEATURES));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FeatureArena.wrap(ByteBuffer.allocateDirect(bytes - 1), 2, MAX_ROWS, FEATURES));
        assertTrue(e.getMessage().contains("need " + bytes), e.getMessage());
    }

    @Test
    void arenasHaveDistinctIds() {
        assertNotEquals(arena.id(), FeatureArena.allocate(1, 1, 1).id());
    }
}
