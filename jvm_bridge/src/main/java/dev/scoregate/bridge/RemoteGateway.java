package dev.scoregate.bridge;

import java.time.Duration;
import java.util.List;
import java.util.Objects;

/**
 * A {@link ModelGateway} in another process: what {@link ModelGateways#connect} returns. The ad server's JVM
 * connects to a running Python gateway ({@code python -m gateway serve-py4j}); Py4J carries control (sessions, the
 * model list, health), and every request's tensors travel through a shared-memory ring, with no Py4J call per
 * request.
 *
 * <h2>Contract, beyond {@link ModelGateway}'s</h2>
 * <ol>
 *   <li>Features are copied from the request's buffers into the ring and scores copied back, so any direct,
 *       native-order buffers (or {@link FeatureArena} slots) work, and they stay valid across gateway restarts.</li>
 *   <li>When the gateway process dies, calls in flight fail at once (within their deadline) with
 *       {@link GatewayUnavailableException}, and so do new calls until the gateway is back; the client reconnects
 *       by itself (a new ring, the model list fetched again). {@link #awaitConnected} waits for that.</li>
 *   <li>A call whose deadline passes fails with {@link DeadlineExceededException}; if the gateway had not yet taken
 *       it, it is never scored.</li>
 *   <li>Beyond {@link Options#slots()} calls in flight, calls fail at once as overloaded
 *       ({@link GatewayUnavailableException}).</li>
 *   <li>{@link #models()} is empty while disconnected.</li>
 * </ol>
 * Register it with {@link ModelGateways#register} if code elsewhere looks it up with {@link ModelGateways#get()}.
 */
public interface RemoteGateway extends ModelGateway, AutoCloseable {

    /**
     * One served model as the gateway describes it.
     *
     * @param id          {@code name@version}
     * @param features    float32 features per row; 0 if the shared-memory transport cannot serve the model
     * @param outputWidth float32 outputs per row, written row-major into the score buffer
     * @param signature   the ONNX signature, e.g. {@code features: float32[batch, 64] -> score: float32[batch]}
     */
    record Model(ModelId id, int features, int outputWidth, String signature) {
    }

    /**
     * How the client connects, waits and recovers.
     *
     * @param clientName       shown in the gateway's logs; default {@code jvm-<pid>}
     * @param slots            requests in flight at once (ring slots); default {@value #DEFAULT_SLOTS}
     * @param maxRows          largest request, in rows; with the largest model's features it sizes each slot;
     *                         default {@value #DEFAULT_MAX_ROWS}
     * @param connectTimeout   how long {@link ModelGateways#connect} tries before it gives up; also the TCP connect
     *                         time-out of every control connection; default 5 s
     * @param watchInterval    how long one watch (long poll) lasts; a dead gateway is noticed at once regardless,
     *                         a hung one within this plus 5 s; default 1 s
     * @param heartbeatTimeout a gateway whose heartbeat in shared memory is older than this is treated as down;
     *                         default 2 s (it beats every 100 ms)
     * @param reconnectBackoff the longest wait between reconnection attempts (it starts at 20 ms and doubles);
     *                         default 1 s
     * @param spinNanos        how long a request thread spins once its answer is due (after parking through the
     *                         model's usual service time) before it parks with back-off; default 50 µs
     * @param maxParkNanos     the longest park between checks for the answer (the back-off doubles up to it);
     *                         bounds the latency added to a parked caller; default 50 µs
     */
    record Options(String clientName, int slots, int maxRows, Duration connectTimeout, Duration watchInterval,
                   Duration heartbeatTimeout, Duration reconnectBackoff, long spinNanos, long maxParkNanos) {
        public static final int DEFAULT_SLOTS = 32;
        public static final int DEFAULT_MAX_ROWS = 1024;

        public Options {
            Objects.requireNonNull(clientName, "clientName");
            if (slots <= 0 || maxRows <= 0 || spinNanos < 0 || maxParkNanos <= 0) {
                throw new IllegalArgumentException("slots, maxRows and maxParkNanos must be > 0 and spinNanos >= 0, "
                        + "got " + slots + ", " + maxRows + ", " + maxParkNanos + ", " + spinNanos);
            }
            for (Duration d : new Duration[] {connectTimeout, watchInterval, heartbeatTimeout, reconnectBackoff}) {
                if (d == null || d.isNegative() || d.isZero()) {
                    throw new IllegalArgumentException("durations must be positive: " + connectTimeout + ", "
                            + watchInterval + ", " + heartbeatTimeout + ", " + reconnectBackoff);
                }
            }
        }

        public static Options defaults() {
            return new Options("jvm-" + ProcessHandle.current().pid(), DEFAULT_SLOTS, DEFAULT_MAX_ROWS,
                    Duration.ofSeconds(5), Duration.ofSeconds(1), Duration.ofSeconds(2), Duration.ofSeconds(1),
                    50_000, 50_000);
        }

        public Options withClientName(String clientName) {
            return new Options(clientName, slots, maxRows, connectTimeout, watchInterval, heartbeatTimeout,
                    reconnectBackoff, spinNanos, maxParkNanos);
        }

        public Options withSlots(int slots) {
            return new Options(clientName, slots, maxRows, connectTimeout, watchInterval, heartbeatTimeout,
                    reconnectBackoff, spinNanos, maxParkNanos);
        }

        public Options withMaxRows(int maxRows) {
            return new Options(clientName, slots, maxRows, connectTimeout, watchInterval, heartbeatTimeout,
                    reconnectBackoff, spinNanos, maxParkNanos);
        }

        public Options withConnectTimeout(Duration connectTimeout) {
            return new Options(clientName, slots, maxRows, connectTimeout, watchInterval, heartbeatTimeout,
                    reconnectBackoff, spinNanos, maxParkNanos);
        }

        public Options withWatchInterval(Duration watchInterval) {
            return new Options(clientName, slots, maxRows, connectTimeout, watchInterval, heartbeatTimeout,
                    reconnectBackoff, spinNanos, maxParkNanos);
        }

        public Options withHeartbeatTimeout(Duration heartbeatTimeout) {
            return new Options(clientName, slots, maxRows, connectTimeout, watchInterval, heartbeatTimeout,
                    reconnectBackoff, spinNanos, maxParkNanos);
        }

        public Options withReconnectBackoff(Duration reconnectBackoff) {
            return new Options(clientName, slots, maxRows, connectTimeout, watchInterval, heartbeatTimeout,
                    reconnectBackoff, spinNanos, maxParkNanos);
        }

        public Options withWaiting(long spinNanos, long maxParkNanos) {
            return new Options(clientName, slots, maxRows, connectTimeout, watchInterval, heartbeatTimeout,
                    reconnectBackoff, spinNanos, maxParkNanos);
        }
    }

    /** Whether a session with the gateway is open right now. */
    boolean isConnected();

    /**
     * Waits until a session is open (returns at once if one is).
     *
     * @throws GatewayUnavailableException if none opens within {@code timeout}, or the gateway client is closed
     */
    void awaitConnected(Duration timeout);

    /**
     * The served models with their signatures, asked of the gateway now (a control call).
     *
     * @throws GatewayUnavailableException if the gateway cannot be reached
     */
    List<Model> describeModels();

    /**
     * The gateway's health as {@code key<TAB>value} lines ({@code status}, {@code sessions}, {@code scored},
     * {@code failed}, {@code expired}, ...), asked of the gateway now.
     *
     * @throws GatewayUnavailableException if the gateway cannot be reached
     */
    String health();

    /** Sessions opened so far: 1 after connecting, +1 per reconnection. */
    long sessionsOpened();

    /**
     * Closes the session and stops reconnecting; calls in flight and later calls fail with
     * {@link GatewayUnavailableException}. Idempotent.
     */
    @Override
    void close();
}
