package dev.scoregate.bridge.shm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.scoregate.bridge.DeadlineExceededException;
import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.GatewayUnavailableException;
import dev.scoregate.bridge.InvalidInputException;
import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import dev.scoregate.bridge.ScoregateException;
import dev.scoregate.bridge.UnknownModelException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The client half of the slot protocol ({@link SlotRing}, {@link ShmSession#score}) against {@link FakeGateway}, a
 * Java thread per worker that follows the Python workers' protocol, over a ring formatted as Python formats it.
 */
@Timeout(60)
class SlotRingTest {
    private static final int FEATURES = 4;
    private static final ModelTable TABLE = ModelTable.parse(List.of(
            "0\tsum\t1\t4\t1\tfeatures: float32[batch, 4] -> score: float32[batch]",
            "1\tfails\t2\t4\t1\tfeatures: float32[batch, 4] -> score: float32[batch]",
            "2\tmulti\t1\t0\t0\ta: float32[batch, 4]; b: float32[batch, 4] -> sum: float32[batch, 4]"));

    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (AutoCloseable c : open) {
            c.close();
        }
    }

    private FakeGateway gateway(ByteBuffer memory, FakeGateway.Behaviour behaviour, boolean paused) {
        FakeGateway g = new FakeGateway(memory, behaviour, paused).start();
        open.add(g);
        return g;
    }

    private static ShmSession session(ByteBuffer memory, Doorbell doorbell, long heartbeatTimeoutNanos) {
        SlotRing ring = new SlotRing(memory, doorbell, 20_000, 50_000, 0, heartbeatTimeoutNanos);
        return new ShmSession("test", new NoControl(), ring, TABLE, doorbell);
    }

    private static FeatureArena.Slot filled(FeatureArena arena, int rows, float base) throws InterruptedException {
        FeatureArena.Slot slot = arena.acquire(Duration.ofSeconds(5));
        for (int r = 0; r < rows; r++) {
            slot.putRow(r, new float[] {base + r, 1, 2, 3});
        }
        return slot;
    }

    @Test
    void aRequestRoundTripsAndItsThreadKeepsItsSlot() throws Exception {
        ByteBuffer memory = FakeGateway.ring(4, 2, 8, FEATURES, 1);
        FakeGateway fake = gateway(memory, FakeGateway.ROW_SUMS, false);
        ShmSession session = session(memory, fake, 0);
        FeatureArena arena = FeatureArena.allocate(1, 8, FEATURES);
        try (FeatureArena.Slot slot = filled(arena, 3, 10)) {
            ScoreResult result = session.score(slot.request(3).model("sum").timeout(Duration.ofSeconds(5)).build());
            assertEquals("sum@1", result.servedBy().toString());
            assertArrayEquals(new float[] {16, 17, 18}, new float[] {result.score(0), result.score(1), result.score(2)});
            int first = session.ring.claim();
            session.ring.release(first);
            assertEquals(first, session.ring.claim(), "a thread gets its last slot back");
            session.ring.release(first);
            // After a hot swap the gateway names the version that scored; -1 (not a number) keeps the table's.
            fake.servedVersion = 4;
            ScoreRequest request = slot.request(3).model("sum").timeout(Duration.ofSeconds(5)).build();
            assertEquals("sum@4", session.score(request).servedBy().toString());
            assertSame(session.score(request).servedBy(), session.score(request).servedBy(), "kept, not rebuilt");
            fake.servedVersion = 1;
            assertSame(TABLE.find(ModelId.parse("sum")).id(), session.score(request).servedBy());
            fake.servedVersion = -1;
            assertEquals("sum@1", session.score(request).servedBy().toString());
            assertEquals(-1, fake.lastBucket, "no routing key");
            session.score(slot.request(3).model("sum").routingKey("user-42").timeout(Duration.ofSeconds(5)).build());
            assertEquals(6429, fake.lastBucket, "the key travels as its bucket");
            session.score(slot.request(3).model("sum@1").routingKey("user-42").timeout(Duration.ofSeconds(5)).build());
            assertEquals(-1, fake.lastBucket, "a pinned version is not routed");
            assertEquals(1, fake.lastPinned, "the gateway scores the pinned version, or answers it does not serve");
            session.score(slot.request(3).model("sum@7").timeout(Duration.ofSeconds(5)).build());
            assertEquals(7, fake.lastPinned, "a version not listed at connect (a hot swap since) goes to the gateway");
            session.score(request);
            assertEquals(-1, fake.lastPinned);
            for (String odd : List.of("sum@x1", "sum@007", "nope@1")) {
                ScoreRequest pin = slot.request(3).model(odd).timeout(Duration.ofSeconds(5)).build();
                assertThrows(UnknownModelException.class, () -> session.score(pin), odd);
            }
        }
        assertArrayEquals(new int[] {4, 0, 0}, session.ring.census());
    }

    @Test
    void manyThreadsOverFewerSlotsAllGetTheirOwnScores() throws Exception {
        ByteBuffer memory = FakeGateway.ring(8, 2, 16, FEATURES, 1);
        FakeGateway fake = gateway(memory, FakeGateway.ROW_SUMS, false);
        ShmSession session = session(memory, fake, 0);
        int threads = 8;
        FeatureArena arena = FeatureArena.allocate(threads, 16, FEATURES);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<Integer>> results = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                results.add(pool.submit(() -> {
                    SplittableRandom random = new SplittableRandom(thread);
                    int checked = 0;
                    try (FeatureArena.Slot slot = arena.acquire()) {
                        for (int call = 0; call < 500; call++) {
                            int rows = 1 + random.nextInt(16);
                            float base = random.nextInt(1000);
                            for (int r = 0; r < rows; r++) {
                                slot.putRow(r, new float[] {base + r, 1, 2, 3});
                            }
                            ScoreResult result = session.score(slot.request(rows).model("sum")
                                    .timeout(Duration.ofSeconds(10)).build());
                            for (int r = 0; r < rows; r++) {
                                assertEquals(base + r + 6, result.score(r), 0f, "thread " + thread + " call " + call);
                                checked++;
                            }
                        }
                    }
                    return checked;
                }));
            }
            for (Future<Integer> f : results) {
                assertTrue(f.get() > 500);
            }
        } finally {
            pool.shutdownNow();
        }
        assertEquals(4000, fake.served.get());
        assertArrayEquals(new int[] {8, 0, 0}, session.ring.census());
    }

    @Test
    void aSleepingWorkerIsWokenByTheDoorbellNotByItsBackstop() throws Exception {
        ByteBuffer memory = FakeGateway.ring(2, 1, 4, FEATURES, 1);
        FakeGateway fake = gateway(memory, FakeGateway.ROW_SUMS, false);
        ShmSession session = session(memory, fake, 0);
        FeatureArena arena = FeatureArena.allocate(1, 4, FEATURES);
        try (FeatureArena.Slot slot = filled(arena, 1, 0)) {
            for (int i = 0; i < 5; i++) {
                long sleepsBefore = fake.sleeps.get();
                while (fake.sleeps.get() == sleepsBefore) {
                    Thread.onSpinWait(); // until the worker is asleep on its doorbell
                }
                long t0 = System.nanoTime();
                session.score(slot.request(1).model("sum").timeout(Duration.ofSeconds(5)).build());
                // The backstop wakes the worker after 100 ms; a ring wakes it at once.
                assertTrue(System.nanoTime() - t0 < TimeUnit.MILLISECONDS.toNanos(90), "woken by the backstop");
            }
        }
        assertTrue(fake.rings.get() >= 5, "rings: " + fake.rings.get());
    }

    @Test
    void gatewayErrorsBecomeTheTypedExceptionsWithTheGatewaysMessage() throws Exception {
        ByteBuffer memory = FakeGateway.ring(2, 1, 4, FEATURES, 1);
        FakeGateway fake = gateway(memory, (model, rows, features, x, xOff, out, outOff) -> {
            int code = (int) x.getFloat(xOff);
            return new Object[] {code, "model 'fails': problem " + code};
        }, false);
        ShmSession session = session(memory, fake, 0);
        FeatureArena arena = FeatureArena.allocate(1, 4, FEATURES);
        Class<?>[] expected = {ScoregateException.class, InvalidInputException.class, UnknownModelException.class,
            DeadlineExceededException.class, GatewayUnavailableException.class};
        try (FeatureArena.Slot slot = arena.acquire()) {
            for (int code = 0; code < expected.length; code++) {
                slot.putRow(0, new float[] {code, 0, 0, 0});
                ScoregateException e = assertThrows(ScoregateException.class, () -> session.score(
                        slot.request(1).model("fails").timeout(Duration.ofSeconds(5)).build()));
                assertEquals(expected[code], e.getClass());
                assertEquals("model 'fails': problem " + code, e.getMessage());
                assertEquals("fails", e.modelName().orElseThrow());
            }
            UnknownModelException unknown = assertThrows(UnknownModelException.class, () -> session.score(
                    slot.request(1).model("nope").timeout(Duration.ofSeconds(5)).build()));
            assertEquals(List.of("sum@1", "fails@2", "multi@1"), unknown.loaded());
            assertThrows(InvalidInputException.class, () -> session.score(
                    slot.request(1).model("multi").timeout(Duration.ofSeconds(5)).build()));
        }
        assertEquals(5, fake.served.get(), "Java-side checks never reach the gateway");
    }

    @Test
    void aRequestTooLargeForASlotIsRefusedBeforeItIsSent() {
        ByteBuffer memory = FakeGateway.ring(2, 1, 4, FEATURES, 1);
        ShmSession session = session(memory, gateway(memory, FakeGateway.ROW_SUMS, false), 0);
        FeatureArena arena = FeatureArena.allocate(1, 8, FEATURES);
        try (FeatureArena.Slot slot = arena.acquire()) {
            InvalidInputException e = assertThrows(InvalidInputException.class, () -> session.score(
                    slot.request(8).model("sum").timeout(Duration.ofSeconds(5)).build()));
            assertTrue(e.getMessage().contains("exceed a shared-memory slot (4 rows"), e.getMessage());
        }
    }

    @Test
    void atTheDeadlineTheSlotIsQuarantinedUntilTheGatewayAnswers() throws Exception {
        ByteBuffer memory = FakeGateway.ring(1, 1, 4, FEATURES, 1);
        FakeGateway fake = gateway(memory, FakeGateway.ROW_SUMS, true);
        ShmSession session = session(memory, fake, 0);
        FeatureArena arena = FeatureArena.allocate(1, 4, FEATURES);
        try (FeatureArena.Slot slot = filled(arena, 2, 0)) {
            long t0 = System.nanoTime();
            DeadlineExceededException e = assertThrows(DeadlineExceededException.class, () -> session.score(
                    slot.request(2).model("sum").timeout(Duration.ofMillis(20)).build()));
            long took = System.nanoTime() - t0;
            assertTrue(took >= TimeUnit.MILLISECONDS.toNanos(20) && took < TimeUnit.SECONDS.toNanos(1), "" + took);
            assertTrue(e.getMessage().startsWith("model 'sum': deadline exceeded: the gateway did not answer"));
            assertArrayEquals(new int[] {0, 0, 1}, session.ring.census());
            // The gateway may still write into the slot: it is not handed out until it has answered.
            GatewayUnavailableException overloaded = assertThrows(GatewayUnavailableException.class,
                    () -> session.score(slot.request(2).model("sum").timeout(Duration.ofSeconds(5)).build()));
            assertTrue(overloaded.getMessage().contains("overloaded"), overloaded.getMessage());
            fake.allow(1);
            while (fake.served.get() == 0) {
                Thread.onSpinWait();
            }
            fake.allow(1);
            ScoreResult result = session.score(slot.request(2).model("sum").timeout(Duration.ofSeconds(5)).build());
            assertEquals(7f, result.score(1));
        }
    }

    @Test
    void aFailedRingWakesItsWaitersAtOnceAndRefusesNewCalls() throws Exception {
        ByteBuffer memory = FakeGateway.ring(2, 1, 4, FEATURES, 1);
        FakeGateway fake = gateway(memory, FakeGateway.ROW_SUMS, true);
        ShmSession session = session(memory, fake, 0);
        FeatureArena arena = FeatureArena.allocate(2, 4, FEATURES);
        FeatureArena.Slot slot = filled(arena, 1, 0);
        CompletableFuture<Long> failedAfter = CompletableFuture.supplyAsync(() -> {
            long t0 = System.nanoTime();
            try {
                session.score(slot.request(1).model("sum").timeout(Duration.ofSeconds(30)).build());
                return -1L;
            } catch (GatewayUnavailableException e) {
                assertTrue(e.getMessage().contains("the gateway process died"), e.getMessage());
                return System.nanoTime() - t0;
            }
        });
        while (session.ring.census()[SlotRing.BUSY] == 0) {
            Thread.onSpinWait(); // until the call is in flight
        }
        session.ring.fail("the gateway process died");
        long took = failedAfter.get(10, TimeUnit.SECONDS);
        assertTrue(took >= 0 && took < TimeUnit.SECONDS.toNanos(5), "failed after " + took + " ns");
        assertThrows(GatewayUnavailableException.class,
                () -> session.score(slot.request(1).model("sum").timeout(Duration.ofSeconds(5)).build()));
        slot.release();
    }

    @Test
    void aClosedOrSilentGatewayFailsTheRing() throws Exception {
        ByteBuffer closed = FakeGateway.ring(1, 1, 4, FEATURES, 1);
        closed.putLong(RingLayout.H_STATE, RingLayout.CLOSED);
        ShmSession first = session(closed, worker -> { }, 0);
        FeatureArena arena = FeatureArena.allocate(1, 4, FEATURES);
        try (FeatureArena.Slot slot = filled(arena, 1, 0)) {
            GatewayUnavailableException e = assertThrows(GatewayUnavailableException.class,
                    () -> first.score(slot.request(1).model("sum").timeout(Duration.ofSeconds(5)).build()));
            assertTrue(e.getMessage().contains("closed this session"), e.getMessage());

            ByteBuffer silent = FakeGateway.ring(1, 1, 4, FEATURES, 1);
            silent.putLong(RingLayout.H_HEARTBEAT, System.nanoTime() - TimeUnit.SECONDS.toNanos(3));
            ShmSession second = session(silent, worker -> { }, TimeUnit.SECONDS.toNanos(2));
            e = assertThrows(GatewayUnavailableException.class,
                    () -> second.score(slot.request(1).model("sum").timeout(Duration.ofSeconds(5)).build()));
            assertTrue(e.getMessage().contains("stopped heartbeating"), e.getMessage());
        }
    }

    @Test
    void anInterruptedCallerAbandonsItsSlotAndKeepsItsInterrupt() throws Exception {
        ByteBuffer memory = FakeGateway.ring(1, 1, 4, FEATURES, 1);
        FakeGateway fake = gateway(memory, FakeGateway.ROW_SUMS, true);
        ShmSession session = session(memory, fake, 0);
        FeatureArena arena = FeatureArena.allocate(1, 4, FEATURES);
        try (FeatureArena.Slot slot = filled(arena, 1, 0)) {
            Thread.currentThread().interrupt();
            ScoregateException e = assertThrows(ScoregateException.class,
                    () -> session.score(slot.request(1).model("sum").timeout(Duration.ofSeconds(5)).build()));
            assertTrue(Thread.interrupted(), "the interrupt status is kept");
            assertTrue(e.getMessage().contains("interrupted"), e.getMessage());
            assertArrayEquals(new int[] {0, 0, 1}, session.ring.census());
        }
    }

    @Test
    void theLayoutReaderRejectsWhatPythonWouldNeverWrite() {
        ByteBuffer memory = FakeGateway.ring(2, 1, 4, FEATURES, 1);
        RingLayout layout = RingLayout.read(memory);
        assertEquals(2, layout.slots());
        assertEquals(0, layout.slot(0) % 64);
        assertNotEquals(layout.features(0), layout.scores(0));
        memory.putInt(RingLayout.H_VERSION, RingLayout.VERSION - 1); // the layout before results named versions
        assertThrows(IllegalStateException.class, () -> RingLayout.read(memory));
        memory.putInt(RingLayout.H_VERSION, RingLayout.VERSION);
        memory.putInt(RingLayout.H_MAX_ROWS, 1 << 20);
        assertThrows(IllegalStateException.class, () -> RingLayout.read(memory));
        memory.putLong(RingLayout.H_MAGIC, 42);
        assertThrows(IllegalStateException.class, () -> RingLayout.read(memory));
    }

    @Test
    void controlRepliesParse() {
        ControlText text = ControlText.parse("session\t7\nbell\t/a\nbell\t/b\nmodel\t0\tm\t1\t4\t1\tsig: x\n\n");
        assertEquals("7", text.require("session"));
        assertEquals(List.of("/a", "/b"), text.all("bell"));
        ModelTable table = ModelTable.parse(text.all("model"));
        assertEquals(0, table.find(dev.scoregate.bridge.ModelId.parse("m")).index());
        assertEquals(0, table.find(dev.scoregate.bridge.ModelId.parse("m@1")).index());
        assertEquals(null, table.find(dev.scoregate.bridge.ModelId.parse("m@2")));
        assertThrows(IllegalStateException.class, () -> text.require("path"));
    }

    /** Control calls are not part of these tests. */
    private static final class NoControl implements ControlChannel {
        @Override
        public String hello(String client) {
            throw new UnsupportedOperationException();
        }

        @Override
        public String clock() {
            throw new UnsupportedOperationException();
        }

        @Override
        public String models() {
            throw new UnsupportedOperationException();
        }

        @Override
        public String health() {
            throw new UnsupportedOperationException();
        }

        @Override
        public String openSession(String request) {
            throw new UnsupportedOperationException();
        }

        @Override
        public String sessionModels(String session) {
            throw new UnsupportedOperationException();
        }

        @Override
        public String attachSession(String session) {
            throw new UnsupportedOperationException();
        }

        @Override
        public String watch(String session, int timeoutMillis) {
            throw new UnsupportedOperationException();
        }

        @Override
        public String closeSession(String session) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void close() {
        }
    }
}
