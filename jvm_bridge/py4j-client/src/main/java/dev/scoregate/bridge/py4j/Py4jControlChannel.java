package dev.scoregate.bridge.py4j;

import dev.scoregate.bridge.GatewayUnavailableException;
import dev.scoregate.bridge.ScoregateException;
import dev.scoregate.bridge.shm.ControlChannel;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;
import py4j.ClientServer;
import py4j.Py4JException;
import py4j.Py4JNetworkException;

/**
 * A {@link ControlChannel} over Py4J. Direction: the Python gateway listens (its Py4J Python server); this JVM only
 * connects. The Java {@link ClientServer} is built with {@code autoStartJavaServer(false)}, so the ad server opens
 * no port, and the gateway's entry point is reached through a proxy of {@link GatewayControl}. Py4J opens one socket
 * per calling thread and reuses it; {@link #close()} closes them all, failing calls in progress.
 *
 * <p>Errors: a Py4J network failure (refused, reset, read time-out) becomes {@link GatewayUnavailableException}; an
 * exception raised in Python (a gateway bug) becomes {@link ScoregateException} with Python's traceback text.
 */
final class Py4jControlChannel implements ControlChannel {
    /** Py4J logs every refused connection at INFO through java.util.logging; keep the logger (and its level) alive. */
    private static final Logger PY4J_LOG = Logger.getLogger("py4j");

    static {
        PY4J_LOG.setLevel(Level.WARNING);
    }

    private final String address;
    private final ClientServer clientServer;
    private final GatewayControl control;

    Py4jControlChannel(String host, int port, Duration connectTimeout, Duration readTimeout) {
        this.address = host + ":" + port;
        InetAddress python;
        try {
            python = InetAddress.getByName(host);
        } catch (UnknownHostException e) {
            throw new GatewayUnavailableException(null, "unknown gateway host " + host, e);
        }
        this.clientServer = new ClientServer.ClientServerBuilder()
                .pythonAddress(python)
                .pythonPort(port)
                .autoStartJavaServer(false)
                .enableMemoryManagement(false)
                .connectTimeout(millis(connectTimeout))
                .readTimeout(millis(readTimeout))
                .build();
        this.control = (GatewayControl) clientServer.getPythonServerEntryPoint(new Class<?>[] {GatewayControl.class});
    }

    private static int millis(Duration d) {
        return (int) Math.min(Integer.MAX_VALUE, Math.max(1, d.toMillis()));
    }

    @Override
    public String hello(String client) {
        return call("hello", () -> control.hello(client));
    }

    @Override
    public String clock() {
        return call("clock", control::clock);
    }

    @Override
    public String models() {
        return call("models", control::models);
    }

    @Override
    public String health() {
        return call("health", control::health);
    }

    @Override
    public String openSession(String request) {
        return call("openSession", () -> control.openSession(request));
    }

    @Override
    public String sessionModels(String session) {
        return call("sessionModels", () -> control.sessionModels(session));
    }

    @Override
    public String attachSession(String session) {
        return call("attachSession", () -> control.attachSession(session));
    }

    @Override
    public String watch(String session, int timeoutMillis) {
        return call("watch", () -> control.watch(session, timeoutMillis));
    }

    @Override
    public String closeSession(String session) {
        return call("closeSession", () -> control.closeSession(session));
    }

    private String call(String what, Supplier<String> call) {
        try {
            return call.get();
        } catch (Py4JNetworkException e) {
            throw new GatewayUnavailableException(null, "the gateway at " + address + " is unreachable (" + what
                    + "): " + e.getMessage(), e);
        } catch (Py4JException e) {
            if (e.getCause() instanceof java.io.IOException) {
                throw new GatewayUnavailableException(null, "the connection to the gateway at " + address
                        + " failed (" + what + "): " + e.getMessage(), e);
            }
            throw new ScoregateException(null, "the gateway at " + address + " failed the control call " + what
                    + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        try {
            clientServer.shutdown();
        } catch (RuntimeException ignored) {
            // closing sockets to a gateway that is already gone
        }
    }

    @Override
    public String toString() {
        return "Py4jControlChannel[" + address + "]";
    }
}
