package dev.scoregate.bridge.shm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.GatewayUnavailableException;
import dev.scoregate.bridge.RemoteGateway;
import dev.scoregate.bridge.ScoreResult;
import dev.scoregate.bridge.UnknownModelException;
import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The gateway client's session life (connect, notice a dead gateway, fail callers, reconnect) with a fake control
 * channel whose sessions are real ring files served by {@link FakeGateway}. The real thing, with a Python gateway
 * killed under load, is tests/integration/test_py4j_shm.py.
 */
@Timeout(60)
class ShmGatewayTest {
    @TempDir
    Path dir;

    /** One "gateway process": its sessions' fakes, and a latch that kills it (breaking every watch). */
    private final class FakeProcess implements ControlConnector {
        final AtomicInteger sessions = new AtomicInteger();
        volatile CountDownLatch alive = new CountDownLatch(1);
        volatile boolean up = true;
        volatile boolean paused;
        volatile FakeGateway current;
        /** A model deployed after the session opened: listed by sessionModels() only. */
        volatile boolean deployedLater;
        final AtomicInteger tableRequests = new AtomicInteger();

        void restart() {
            alive = new CountDownLatch(1);
            paused = false;
            up = true;
        }

        @Override
        public ControlChannel connect(String host, int port, Duration connectTimeout, Duration readTimeout) {
            if (!up) {
                throw new GatewayUnavailableException("connection refused");
            }
            CountDownLatch life = alive;
            return new ControlChannel() {
                @Override
                public String hello(String client) {
                    return "protocol\t1\n";
                }

                @Override
                public String clock() {
                    return Long.toString(System.nanoTime());
                }

                @Override
                public String models() {
                    return "model\t0\tsum\t1\t4\t1\tsig\n";
                }

                @Override
                public String health() {
                    return "status\tserving\n";
                }

                @Override
                public String openSession(String request) {
                    int id = sessions.incrementAndGet();
                    int bytes = RingLayout.requiredBytes(4, 8, 4, 1);
                    try {
                        Path ring = dir.resolve("ring-" + id);
                        Path bell = dir.resolve("bell-" + id);
                        Files.createFile(bell);
                        MappedByteBuffer memory;
                        try (FileChannel file = FileChannel.open(ring, StandardOpenOption.CREATE_NEW,
                                StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                            memory = file.map(FileChannel.MapMode.READ_WRITE, 0, bytes);
                        }
                        RingLayout.format(memory, 4, 1, 8, 4, 1);
                        current = new FakeGateway(memory, FakeGateway.ROW_SUMS, paused).neverSleeping().start();
                        return "session\t" + id + "\npath\t" + ring + "\nsize\t" + bytes + "\nbell\t" + bell
                                + "\n" + models();
                    } catch (IOException e) {
                        throw new IllegalStateException(e);
                    }
                }

                @Override
                public String sessionModels(String session) {
                    tableRequests.incrementAndGet();
                    return models() + (deployedLater ? "model\t1\tlater\t3\t4\t1\tsig\n" : "");
                }

                @Override
                public String attachSession(String session) {
                    return "ok\n";
                }

                @Override
                public String watch(String session, int timeoutMillis) {
                    try {
                        if (life.await(timeoutMillis, TimeUnit.MILLISECONDS)) {
                            throw new GatewayUnavailableException("connection reset");
                        }
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    return "serving";
                }

                @Override
                public String closeSession(String session) {
                    return "ok\n";
                }

                @Override
                public void close() {
                }
            };
        }
    }

    @Test
    void aDeadGatewayFailsCallersAtOnceAndTheClientReconnects() throws Exception {
        FakeProcess process = new FakeProcess();
        RemoteGateway.Options options = RemoteGateway.Options.defaults().withSlots(4).withMaxRows(8)
                .withWatchInterval(Duration.ofMillis(200)).withReconnectBackoff(Duration.ofMillis(50));
        FeatureArena arena = FeatureArena.allocate(2, 8, 4);
        try (ShmGateway gateway = ShmGateway.connect(process, "fake", 1, options);
             FeatureArena.Slot slot = arena.acquire()) {
            slot.putRow(0, new float[] {1, 2, 3, 4});
            assertEquals(10f, gateway.score(slot.request(1).model("sum").timeout(Duration.ofSeconds(5)).build())
                    .score(0));
            assertEquals(List.of("sum"), gateway.models());
            assertEquals(1, gateway.sessionsOpened());

            // A call in flight when the gateway dies fails long before its 30 s deadline.
            process.current.close(); // the fake stops answering; the process is still "up"
            CompletableFuture<Long> inFlight = CompletableFuture.supplyAsync(() -> {
                long t0 = System.nanoTime();
                assertThrows(GatewayUnavailableException.class, () -> gateway.score(
                        slot.request(1).model("sum").timeout(Duration.ofSeconds(30)).build()));
                return System.nanoTime() - t0;
            });
            process.paused = true; // the next session's fake must not answer before we are ready
            process.up = false;
            process.alive.countDown();
            assertTrue(inFlight.get(10, TimeUnit.SECONDS) < TimeUnit.SECONDS.toNanos(5));
            GatewayUnavailableException down = assertThrows(GatewayUnavailableException.class, () -> gateway.score(
                    slot.request(1).model("sum").timeout(Duration.ofSeconds(5)).build()));
            assertTrue(down.getMessage().contains("reconnecting"), down.getMessage());
            assertFalse(gateway.isConnected());
            assertEquals(List.of(), gateway.models());

            process.restart();
            gateway.awaitConnected(Duration.ofSeconds(10));
            ScoreResult again = gateway.score(slot.request(1).model("sum").timeout(Duration.ofSeconds(5)).build());
            assertEquals(10f, again.score(0));
            assertEquals(2, gateway.sessionsOpened());
        } finally {
            if (process.current != null) {
                process.current.close();
            }
        }
    }

    @Test
    void aModelDeployedAfterConnectIsFoundOnItsFirstCallAndUnknownNamesAskAtMostOnceASecond() throws Exception {
        FakeProcess process = new FakeProcess();
        ShmGateway gateway = ShmGateway.connect(process, "fake", 1,
                RemoteGateway.Options.defaults().withSlots(4).withMaxRows(8));
        FeatureArena arena = FeatureArena.allocate(1, 8, 4);
        try (FeatureArena.Slot slot = arena.acquire()) {
            slot.putRow(0, new float[] {1, 2, 3, 4});
            process.deployedLater = true;
            ScoreResult later = gateway.score(slot.request(1).model("later").timeout(Duration.ofSeconds(5)).build());
            assertEquals("later@3", later.servedBy().toString());
            assertEquals(10f, later.score(0));
            assertEquals(1, process.tableRequests.get());
            for (int i = 0; i < 3; i++) {
                assertThrows(UnknownModelException.class, () -> gateway.score(
                        slot.request(1).model("nope").timeout(Duration.ofSeconds(5)).build()));
            }
            assertEquals(1, process.tableRequests.get(), "the table was asked for within the second: not again");
        } finally {
            gateway.close();
            process.current.close();
        }
    }

    @Test
    void connectGivesUpAfterItsTimeoutAndCloseFailsLaterCalls() throws Exception {
        FakeProcess process = new FakeProcess();
        process.up = false;
        RemoteGateway.Options options = RemoteGateway.Options.defaults().withConnectTimeout(Duration.ofMillis(200));
        GatewayUnavailableException e = assertThrows(GatewayUnavailableException.class,
                () -> ShmGateway.connect(process, "fake", 1, options));
        assertTrue(e.getMessage().contains("connection refused"), e.getMessage());

        process.up = true;
        ShmGateway gateway = ShmGateway.connect(process, "fake", 1, options.withSlots(4).withMaxRows(8));
        gateway.close();
        process.current.close();
        FeatureArena arena = FeatureArena.allocate(1, 8, 4);
        try (FeatureArena.Slot slot = arena.acquire()) {
            GatewayUnavailableException closed = assertThrows(GatewayUnavailableException.class, () -> gateway.score(
                    slot.request(1).model("sum").timeout(Duration.ofSeconds(5)).build()));
            assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
            assertThrows(GatewayUnavailableException.class, () -> gateway.awaitConnected(Duration.ofMillis(10)));
        }
    }
}
