package dev.scoregate.bridge.features;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.hazelcast.config.Config;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.config.NetworkConfig;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.map.IMap;
import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.InvalidInputException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link FeatureReader} against a real member started in this JVM (loopback, no multicast, no phone-home), read
 * through a real client configured by {@link FeatureClients}.
 */
@Timeout(120)
class FeatureReaderTest {
    static final long NOW = 1_700_000_000_000L;
    static final FeatureGroupSpec USER = new FeatureGroupSpec("user_profile", "user", 1, fill(6, -1f), 3_600_000);
    static final FeatureGroupSpec AD = new FeatureGroupSpec("ad_profile", "ad", 1, fill(5, -2f), 86_400_000);
    static final FeatureGroupSpec CTX = new FeatureGroupSpec("context_profile", "context", 1, fill(3, -3f), 300_000);
    static final int ADS = 300;

    static HazelcastInstance member;
    static HazelcastInstance client;
    static float[][] adValues = new float[ADS][];
    static float[] userValue;

    static float[] fill(int n, float v) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, v);
        return a;
    }

    static int freeLoopbackPort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    @BeforeAll
    static void startCluster() throws IOException {
        int port = freeLoopbackPort();
        Config config = new Config();
        String cluster = "scoregate-features-" + UUID.randomUUID();
        config.setClusterName(cluster);
        config.setProperty("hazelcast.phone.home.enabled", "false");
        config.setProperty("hazelcast.logging.type", "none");
        config.setProperty("hazelcast.shutdownhook.enabled", "false");
        config.setProperty("hazelcast.socket.bind.any", "false");
        config.setProperty("hazelcast.wait.seconds.before.join", "0");
        config.setProperty("hazelcast.max.wait.seconds.before.join", "0");
        NetworkConfig network = config.getNetworkConfig();
        network.setPort(port).setPortAutoIncrement(true).setPortCount(20);
        network.getInterfaces().setEnabled(true).addInterface("127.0.0.1");
        JoinConfig join = network.getJoin();
        join.getMulticastConfig().setEnabled(false);
        join.getAutoDetectionConfig().setEnabled(false);
        join.getTcpIpConfig().setEnabled(true).addMember("127.0.0.1:" + port);
        member = Hazelcast.newHazelcastInstance(config);
        int bound = member.getCluster().getLocalMember().getAddress().getPort();
        client = FeatureClients.connect(cluster, List.of("127.0.0.1:" + bound), List.of(AD.mapName()));

        Random rng = new Random(7);
        IMap<Long, byte[]> ads = member.getMap(AD.mapName());
        Map<Long, byte[]> batch = new HashMap<>();
        for (int i = 0; i < ADS; i++) {
            adValues[i] = new float[AD.width()];
            for (int k = 0; k < AD.width(); k++) {
                adValues[i][k] = rng.nextFloat();
            }
            // ads >= 290 are never written: they stay missing
            if (i < ADS - 10) {
                batch.put((long) i, FeatureCodec.encode(AD, adValues[i], NOW - 1000));
            }
        }
        ads.putAll(batch);
        userValue = new float[] {1, 2, 3, 4, 5, 6};
        member.<Long, byte[]>getMap(USER.mapName()).put(42L, FeatureCodec.encode(USER, userValue, NOW - 7_200_000));
    }

    @AfterAll
    static void stopCluster() {
        if (client != null) {
            client.shutdown();
        }
        if (member != null) {
            member.shutdown();
        }
    }

    /** Columns in an order of the model's: ad 4, user 0, ctx 2, ad 0, user 5. */
    static FeaturePlan plan() {
        return FeaturePlan.of(List.of(USER, AD, CTX), new int[] {1, 0, 2, 1, 0}, new int[] {4, 0, 2, 0, 5});
    }

    static float[] row(ByteBuffer buf, int r, int f) {
        float[] out = new float[f];
        ByteBuffer b = buf.duplicate().order(ByteOrder.nativeOrder());
        for (int c = 0; c < f; c++) {
            out[c] = b.getFloat((r * f + c) * Float.BYTES);
        }
        return out;
    }

    @Test
    void assemblesRowsInPlanOrderIntoAnArenaSlot() {
        FeatureArena arena = FeatureArena.allocate(2, 64, 5);
        try (FeatureReader reader = new FeatureReader(client, plan(), null, () -> NOW, 1000);
             FeatureArena.Slot slot = arena.acquire()) {
            long[] ads = {3, 17, 3, 250};
            Hydration h = reader.hydrate(Map.of("user", 42L), ads, 4, Map.of("context_profile",
                    new float[] {7f, 8f, 9f}), slot, Duration.ofSeconds(5));
            for (int r = 0; r < 4; r++) {
                float[] ad = adValues[(int) ads[r]];
                assertArrayEquals(new float[] {ad[4], 1f, 9f, ad[0], 6f}, row(slot.featureBuffer(), r, 5), "row " + r);
            }
            assertEquals(0, h.missing("ad_profile"));
            assertEquals(0, h.missing("user_profile"));
            assertEquals(1, h.stale("user_profile"), "2 h old against a 1 h SLO");
            assertEquals(0, h.stale("ad_profile"));
            assertFalse(h.timedOut());
            assertTrue(h.degraded());
        }
    }

    @Test
    void missingEntitiesAndForeignLayoutsGetDefaultsAndAreCounted() {
        IMap<Long, byte[]> ads = client.getMap(AD.mapName());
        FeatureGroupSpec v2 = new FeatureGroupSpec("ad_profile", "ad", 2, fill(5, 0f), 1000);
        ads.put(1_000_000L, FeatureCodec.encode(v2, fill(5, 9f), NOW)); // another version under a v1 key
        ByteBuffer out = ByteBuffer.allocateDirect(3 * 5 * 4);
        try (FeatureReader reader = new FeatureReader(client, plan(), null, () -> NOW, 1000)) {
            Hydration h = reader.hydrate(Map.of("user", 999L, "context", 5L), new long[] {295, 1_000_000L, 2}, 3,
                    null, out, TimeUnit.SECONDS.toNanos(5));
            assertEquals(2, h.missing("ad_profile"));
            assertEquals(1, h.missing("user_profile"));
            assertEquals(1, h.missing("context_profile"), "no context entity stored");
            assertArrayEquals(new float[] {-2f, -1f, -3f, -2f, -1f}, row(out, 0, 5));
            assertArrayEquals(new float[] {-2f, -1f, -3f, -2f, -1f}, row(out, 1, 5));
            assertArrayEquals(new float[] {adValues[2][4], -1f, -3f, adValues[2][0], -1f}, row(out, 2, 5));
        } finally {
            ads.delete(1_000_000L);
        }
    }

    @Test
    void keysAreLongsAndAnIntegerKeyIsNotFound() {
        // What the Python client writes for an int by default (IntType.INT) is an Integer: a different key.
        IMap<Object, byte[]> raw = client.getMap(USER.mapName());
        raw.put(77, FeatureCodec.encode(USER, fill(6, 5f), NOW));
        raw.put(78L, FeatureCodec.encode(USER, fill(6, 6f), NOW));
        ByteBuffer out = ByteBuffer.allocateDirect(5 * 4);
        try (FeatureReader reader = new FeatureReader(client, plan(), null, () -> NOW, 1000)) {
            Map<String, float[]> ctx = Map.of("context_profile", fill(3, 0f));
            assertEquals(1, reader.hydrate(Map.of("user", 77L), new long[] {0}, 1, ctx, out, 5_000_000_000L)
                    .missing("user_profile"));
            assertEquals(0, reader.hydrate(Map.of("user", 78L), new long[] {0}, 1, ctx, out, 5_000_000_000L)
                    .missing("user_profile"));
            assertEquals(6f, row(out, 0, 5)[1]);
        } finally {
            raw.delete(77);
            raw.delete(78L);
        }
    }

    @Test
    void warmNearCacheServesGetAllLocally() {
        long[] ads = new long[200];
        for (int i = 0; i < ads.length; i++) {
            ads[i] = i;
        }
        ByteBuffer out = ByteBuffer.allocateDirect(200 * 5 * 4);
        Map<String, float[]> ctx = Map.of("context_profile", fill(3, 0f));
        IMap<Long, byte[]> map = client.getMap(AD.mapName());
        try (FeatureReader reader = new FeatureReader(client, plan(), null, () -> NOW, 1000)) {
            reader.hydrate(Map.of("user", 42L), ads, 200, ctx, out, 5_000_000_000L);
            long hits = map.getLocalMapStats().getNearCacheStats().getHits();
            Hydration h = reader.hydrate(Map.of("user", 42L), ads, 200, ctx, out, 5_000_000_000L);
            assertEquals(0, h.missing("ad_profile"));
            assertTrue(map.getLocalMapStats().getNearCacheStats().getHits() - hits >= 200,
                    "the second read of the same ads is served by the near cache");
            assertEquals(adValues[199][4], row(out, 199, 5)[0]);
        }
    }

    @Test
    void aReadPastTheDeadlineIsServedAsDefaultsInTime() throws InterruptedException {
        CountDownLatch never = new CountDownLatch(1);
        ExecutorService stuck = Executors.newSingleThreadExecutor();
        stuck.execute(() -> {
            try {
                never.await(); // occupies the only thread: the getAll queued behind it cannot run
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        ByteBuffer out = ByteBuffer.allocateDirect(2 * 5 * 4);
        try (FeatureReader reader = new FeatureReader(client, plan(), stuck, () -> NOW, 1000)) {
            long start = System.nanoTime();
            Hydration h = reader.hydrate(Map.of("user", 42L), new long[] {1, 2}, 2,
                    Map.of("context_profile", fill(3, 0f)), out, TimeUnit.MILLISECONDS.toNanos(20));
            long tookMs = (System.nanoTime() - start) / 1_000_000;
            assertTrue(h.timedOut());
            assertEquals(2, h.missing("ad_profile"));
            assertEquals(-2f, row(out, 1, 5)[0]);
            assertTrue(tookMs < 1000, "returned after " + tookMs + " ms");
        } finally {
            never.countDown();
            stuck.shutdownNow();
            assertTrue(stuck.awaitTermination(10, TimeUnit.SECONDS));
        }
    }

    @Test
    void badRequestsAreRejectedBeforeAnyRead() {
        try (FeatureReader reader = new FeatureReader(client, plan(), null, () -> NOW, 100)) {
            ByteBuffer big = ByteBuffer.allocateDirect(1000 * 5 * 4);
            Map<String, float[]> ctx = Map.of("context_profile", fill(3, 0f));
            assertThrows(InvalidInputException.class,
                    () -> reader.hydrate(Map.of("user", 1L), new long[1000], 1000, ctx, big, 1_000_000L));
            assertThrows(InvalidInputException.class,
                    () -> reader.hydrate(Map.of("user", 1L), new long[10], 10, ctx, ByteBuffer.allocateDirect(8),
                            1_000_000L));
            assertThrows(InvalidInputException.class,
                    () -> reader.hydrate(Map.of("user", 1L), new long[1], 1, Map.of("context_profile", new float[2]),
                            big, 1_000_000L));
            assertThrows(InvalidInputException.class,
                    () -> reader.hydrate(Map.of(), new long[1], 1, ctx, big, 1_000_000L));
        }
        assertThrows(IllegalArgumentException.class, () -> FeaturePlan.of(List.of(USER), new int[] {0},
                new int[] {6}));
        assertThrows(IllegalArgumentException.class, () -> FeatureCodec.encode(USER, new float[5], NOW));
    }
}
