package dev.scoregate.bridge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.hazelcast.cluster.Address;
import com.hazelcast.config.Config;
import com.hazelcast.config.JoinConfig;
import com.hazelcast.config.NetworkConfig;
import com.hazelcast.core.Hazelcast;
import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.map.IMap;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Starts a real Hazelcast member on loopback, round-trips a byte[] through an IMap, and shuts it down. Proves the
 * member jar that {@code mvn install} fetched into ~/.m2 runs on this JDK: the Python integration tests start their
 * members from that jar. Nothing leaves 127.0.0.1: no multicast, no auto-detection, no phone-home.
 */
@Timeout(60)
class HazelcastMemberSmokeTest {
    private HazelcastInstance member;

    /** A port that was free a moment ago; auto-increment covers losing a race for it. */
    private static int freeLoopbackPort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    private static Config loopbackConfig(int port) {
        Config config = new Config();
        config.setClusterName("scoregate-smoke-" + UUID.randomUUID());
        config.setProperty("hazelcast.phone.home.enabled", "false");
        config.setProperty("hazelcast.logging.type", "none");
        config.setProperty("hazelcast.shutdownhook.enabled", "false");
        // Bind to the chosen interface only; the default binds the port on every interface.
        config.setProperty("hazelcast.socket.bind.any", "false");
        // A lone member need not wait for others to show up (defaults: 5 s, up to 20 s).
        config.setProperty("hazelcast.wait.seconds.before.join", "0");
        config.setProperty("hazelcast.max.wait.seconds.before.join", "0");

        NetworkConfig network = config.getNetworkConfig();
        network.setPort(port).setPortAutoIncrement(true).setPortCount(20);
        network.getInterfaces().setEnabled(true).addInterface("127.0.0.1");
        JoinConfig join = network.getJoin();
        join.getMulticastConfig().setEnabled(false);
        join.getAutoDetectionConfig().setEnabled(false);
        join.getTcpIpConfig().setEnabled(true).addMember("127.0.0.1:" + port);
        return config;
    }

    @AfterEach
    void shutDown() {
        if (member != null) {
            member.shutdown();
        }
    }

    @Test
    void roundTripsBytesThroughAnIMapOnLoopback() throws IOException {
        int port = freeLoopbackPort();
        Config config = loopbackConfig(port);
        member = Hazelcast.newHazelcastInstance(config);

        Address address = member.getCluster().getLocalMember().getAddress();
        assertEquals("127.0.0.1", address.getHost());
        assertTrue(address.getPort() >= port && address.getPort() < port + 20, "port " + address.getPort());
        assertEquals(1, member.getCluster().getMembers().size());

        byte[] value = new byte[256];
        for (int i = 0; i < value.length; i++) {
            value[i] = (byte) i;
        }
        IMap<String, byte[]> map = member.getMap("scoregate-smoke");
        map.put("features:ad-1", value);
        assertArrayEquals(value, map.get("features:ad-1"));
        assertEquals(1, map.size());
    }
}
