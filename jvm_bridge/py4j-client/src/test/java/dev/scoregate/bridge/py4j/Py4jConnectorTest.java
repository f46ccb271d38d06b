package dev.scoregate.bridge.py4j;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.scoregate.bridge.GatewayUnavailableException;
import dev.scoregate.bridge.ModelGateways;
import dev.scoregate.bridge.RemoteGateway;
import dev.scoregate.bridge.shm.ControlConnector;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ServiceLoader;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The module's wiring; the protocol itself is tested with a real gateway in tests/integration/test_py4j_shm.py. */
@Timeout(60)
class Py4jConnectorTest {

    @Test
    void theApiJarFindsThisModuleThroughServiceLoader() {
        ControlConnector connector = ServiceLoader.load(ControlConnector.class).findFirst().orElseThrow();
        assertInstanceOf(Py4jConnector.class, connector);
    }

    @Test
    void connectingToNoGatewayFailsAsUnavailableWithinTheConnectTimeout() throws IOException {
        int port;
        try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = probe.getLocalPort(); // free once closed: nothing listens there
        }
        RemoteGateway.Options options = RemoteGateway.Options.defaults().withConnectTimeout(Duration.ofMillis(300));
        long t0 = System.nanoTime();
        int closedPort = port;
        GatewayUnavailableException e = assertThrows(GatewayUnavailableException.class,
                () -> ModelGateways.connect("127.0.0.1", closedPort, options));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5));
        assertTrue(e.getMessage().startsWith("could not connect to the Scoregate gateway at 127.0.0.1:" + port),
                e.getMessage());
    }
}
