package dev.scoregate.bridge;

import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The process-wide {@link ModelGateway}. The in-process JPype host registers its Python-backed gateway here when it
 * starts and unregisters it when it stops; ad-server code that cannot be handed a gateway (a plugin, a static
 * hook) looks it up with {@link #get()}. Prefer passing the gateway explicitly where you can.
 *
 * <p>Thread-safe. At most one gateway is registered at a time: a second {@code register} of a different instance
 * fails instead of silently replacing the first, so two hosts in one JVM are noticed.
 */
public final class ModelGateways {
    private static final AtomicReference<ModelGateway> CURRENT = new AtomicReference<>();

    private ModelGateways() {
    }

    /**
     * Makes {@code gateway} the process-wide gateway. Registering the same instance again is a no-op.
     *
     * @throws IllegalStateException if a different gateway is registered; {@link #unregister} it first
     */
    public static void register(ModelGateway gateway) {
        Objects.requireNonNull(gateway, "gateway");
        ModelGateway previous = CURRENT.compareAndExchange(null, gateway);
        if (previous != null && previous != gateway) {
            throw new IllegalStateException("a ModelGateway is already registered (" + previous
                    + "); unregister it before registering " + gateway);
        }
    }

    /**
     * Removes {@code gateway} if it is the registered one.
     *
     * @return whether it was registered
     */
    public static boolean unregister(ModelGateway gateway) {
        return CURRENT.compareAndSet(Objects.requireNonNull(gateway, "gateway"), null);
    }

    /**
     * The registered gateway.
     *
     * @throws GatewayUnavailableException if none is registered (the Python host has not started, or has stopped)
     */
    public static ModelGateway get() {
        // One volatile read (AtomicReference.get): this sits on every request of an ad server that looks it up.
        ModelGateway gateway = CURRENT.get();
        if (gateway == null) {
            throw new GatewayUnavailableException("no ModelGateway is registered: the Scoregate host registers one "
                    + "with ModelGateways.register when it starts; it has not started or has stopped");
        }
        return gateway;
    }

    /**
     * Connects to an out-of-process gateway ({@code python -m gateway serve-py4j}) with default options; see
     * {@link #connect(String, int, RemoteGateway.Options)}.
     */
    public static RemoteGateway connect(String host, int port) {
        return connect(host, port, RemoteGateway.Options.defaults());
    }

    /**
     * Connects to an out-of-process gateway listening on {@code host:port}: opens a session (a shared-memory ring for
     * the tensors, Py4J for control) and returns the gateway; it reconnects by itself after a gateway restart. Needs
     * the Py4J client module ({@code dev.scoregate:scoregate-py4j-client}) on the class path; this jar has no
     * dependencies. Does not {@link #register} the gateway. Close it when done.
     *
     * @throws GatewayUnavailableException if no session opens within {@link RemoteGateway.Options#connectTimeout()}
     *                                     or the Py4J client module is missing
     */
    public static RemoteGateway connect(String host, int port, RemoteGateway.Options options) {
        return dev.scoregate.bridge.shm.ShmGateway.connect(host, port, options);
    }

    /** The registered gateway, if any. */
    public static Optional<ModelGateway> find() {
        return Optional.ofNullable(CURRENT.get());
    }
}
