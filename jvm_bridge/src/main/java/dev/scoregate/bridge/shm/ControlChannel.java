package dev.scoregate.bridge.shm;

/**
 * The control connection to an out-of-process gateway: sessions, models, health. Never carries tensors. The Py4J
 * client module implements it ({@code dev.scoregate.bridge.py4j}); the calls and their replies (tab-separated
 * lines) are the Python {@code jvm_bridge.py4j_server.GatewayControl}'s.
 *
 * <p>Implementations are thread-safe and map every transport failure (a refused connection, a closed socket, a
 * read time-out) to {@link dev.scoregate.bridge.GatewayUnavailableException}.
 */
public interface ControlChannel extends AutoCloseable {

    /** {@code protocol}, {@code server}, {@code pid} and {@code models} lines. */
    String hello(String client);

    /** The gateway's clock ({@code time.monotonic_ns()}) as a decimal string. */
    String clock();

    /** One {@code model} line per served model: index, name, version, features, outputs per row, signature. */
    String models();

    /** {@code status}, {@code sessions}, {@code scored}, {@code failed}, {@code expired}... lines. */
    String health();

    /** Creates a ring for this client; see {@code GatewayControl.openSession} in Python. */
    String openSession(String request);

    /**
     * The session's model table, {@code model} lines as {@link #openSession} gave them, with the models deployed
     * since appended under new indices (indices already given never change). Asked when a request names a model the
     * client's table lacks.
     */
    String sessionModels(String session);

    /** The client has mapped the ring and opened the doorbells: the gateway may unlink their names. */
    String attachSession(String session);

    /** Long poll: {@code serving} after {@code timeoutMillis}, or at once {@code closed} / {@code unknown}. */
    String watch(String session, int timeoutMillis);

    String closeSession(String session);

    /** Closes the connection; calls in progress fail. Idempotent. */
    @Override
    void close();
}
