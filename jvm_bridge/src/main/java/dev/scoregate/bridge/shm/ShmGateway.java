package dev.scoregate.bridge.shm;

import dev.scoregate.bridge.GatewayUnavailableException;
import dev.scoregate.bridge.RemoteGateway;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import dev.scoregate.bridge.ScoregateException;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.ServiceLoader;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The out-of-process {@link RemoteGateway}: one session at a time ({@link ShmSession}), watched and replaced.
 *
 * <h2>The watcher thread</h2>
 * One daemon thread, {@code scoregate-shm-watch}, owns the session's life:
 * <ol>
 *   <li>While connected it repeats a long-poll {@code watch} control call ({@link Options#watchInterval()}). When
 *       the gateway process dies, the call's socket breaks and the call fails at once; when the gateway closes the
 *       session, the call returns {@code closed}. Either way, and when the ring failed on its own (doorbell gone,
 *       heartbeat too old), the session is dropped: its ring fails, which wakes every caller waiting on it with
 *       {@link GatewayUnavailableException}, and new calls fail the same way until a new session is open. A caller
 *       that finds the ring failed (the gateway's state word says closed, its doorbell is gone, its heartbeat is
 *       old) drops the session itself, without waiting for the watch to return.</li>
 *   <li>While disconnected it opens a new control channel and session, backing off from 20 ms doubling to
 *       {@link Options#reconnectBackoff()}. A new session brings a new ring and the model list as the new gateway
 *       serves it.</li>
 * </ol>
 * Request threads never wait for the watcher: they read the current session (one volatile read) and score.
 *
 * <p>{@link #scoreAsync} runs {@link #score} on a pool of at most {@link Options#slots()} daemon threads (no more
 * calls can be in flight anyway); beyond that the future fails at once as overloaded.
 */
public final class ShmGateway implements RemoteGateway {
    private static final long FIRST_BACKOFF_NANOS = TimeUnit.MILLISECONDS.toNanos(20);
    private static final Duration CONTROL_SLACK = Duration.ofSeconds(5);

    private final ControlConnector connector;
    private final String host;
    private final int port;
    private final Options options;
    private final Object connection = new Object();
    private final CountDownLatch closing = new CountDownLatch(1);
    private final AtomicLong opened = new AtomicLong();
    private final ThreadPoolExecutor async;
    private final Thread watcher;
    private volatile ShmSession session;
    private volatile boolean closed;
    private volatile String lastError = "not connected yet";

    private ShmGateway(ControlConnector connector, String host, int port, Options options) {
        this.connector = connector;
        this.host = host;
        this.port = port;
        this.options = options;
        AtomicInteger threads = new AtomicInteger();
        this.async = new ThreadPoolExecutor(0, options.slots(), 30, TimeUnit.SECONDS, new SynchronousQueue<>(), r -> {
            Thread t = new Thread(r, "scoregate-shm-async-" + threads.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        this.watcher = new Thread(this::watch, "scoregate-shm-watch");
        this.watcher.setDaemon(true);
    }

    /**
     * Connects with the {@link ControlConnector} found on the class path (the Py4J client module provides one).
     *
     * @throws GatewayUnavailableException if no connector is on the class path, or no session opens within
     *                                     {@link Options#connectTimeout()}
     */
    public static RemoteGateway connect(String host, int port, Options options) {
        ControlConnector connector = ServiceLoader.load(ControlConnector.class).findFirst().orElseThrow(
                () -> new GatewayUnavailableException("no out-of-process transport on the class path: add "
                        + "dev.scoregate:scoregate-py4j-client (it provides " + ControlConnector.class.getName() + ")"));
        return connect(connector, host, port, options);
    }

    /** As {@link #connect(String, int, Options)}, with the given connector (tests, other control transports). */
    public static ShmGateway connect(ControlConnector connector, String host, int port, Options options) {
        ShmGateway gateway = new ShmGateway(Objects.requireNonNull(connector, "connector"),
                Objects.requireNonNull(host, "host"), port, Objects.requireNonNull(options, "options"));
        long until = System.nanoTime() + options.connectTimeout().toNanos();
        long backoff = FIRST_BACKOFF_NANOS;
        while (!gateway.tryOpen()) {
            long left = until - System.nanoTime();
            if (left <= 0) {
                gateway.close();
                throw new GatewayUnavailableException("could not connect to the Scoregate gateway at " + host + ":"
                        + port + " within " + options.connectTimeout() + ": " + gateway.lastError);
            }
            gateway.pause(Math.min(backoff, left));
            backoff = Math.min(backoff * 2, options.reconnectBackoff().toNanos());
        }
        gateway.watcher.start();
        return gateway;
    }

    @Override
    public ScoreResult score(ScoreRequest request) {
        Objects.requireNonNull(request, "request");
        ShmSession current = session;
        if (current == null) {
            throw unavailable(request.model().toString());
        }
        try {
            return current.score(request);
        } catch (GatewayUnavailableException e) {
            String dead = current.ring.failure();
            if (dead != null) {
                drop(current, dead); // no need to wait for the watcher to notice: reconnect now
            }
            throw e;
        }
    }

    @Override
    public CompletableFuture<ScoreResult> scoreAsync(ScoreRequest request) {
        CompletableFuture<ScoreResult> future = new CompletableFuture<>();
        try {
            async.execute(() -> {
                try {
                    future.complete(score(request));
                } catch (ScoregateException e) {
                    future.completeExceptionally(e);
                } catch (RuntimeException | Error e) {
                    future.completeExceptionally(new ScoregateException(null, "scoring failed: " + e, e));
                }
            });
        } catch (RejectedExecutionException e) {
            future.completeExceptionally(new GatewayUnavailableException(request.model().toString(), closed
                    ? "the gateway client is closed"
                    : "overloaded: " + options.slots() + " asynchronous calls are in flight (Options.slots)", e));
        }
        return future;
    }

    @Override
    public List<String> models() {
        ShmSession current = session;
        return current == null ? List.of() : current.table.names();
    }

    @Override
    public List<Model> describeModels() {
        ShmSession current = requireSession();
        return ModelTable.parse(ControlText.parse(current.channel.models()).all("model")).describe();
    }

    @Override
    public String health() {
        return requireSession().channel.health();
    }

    @Override
    public boolean isConnected() {
        ShmSession current = session;
        return current != null && current.ring.check() == null;
    }

    @Override
    public void awaitConnected(Duration timeout) {
        long until = System.nanoTime() + timeout.toNanos();
        ShmSession current = session;
        if (current != null && current.ring.check() != null) {
            drop(current, current.ring.failure());
        }
        synchronized (connection) {
            while (session == null) {
                long left = until - System.nanoTime();
                if (closed || left <= 0) {
                    throw unavailable(null);
                }
                try {
                    TimeUnit.NANOSECONDS.timedWait(connection, left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new GatewayUnavailableException(null, "interrupted while waiting for the gateway", e);
                }
            }
        }
    }

    @Override
    public long sessionsOpened() {
        return opened.get();
    }

    @Override
    public void close() {
        closed = true;
        closing.countDown();
        ShmSession current = session;
        if (current != null) {
            drop(current, "the gateway client was closed");
            try {
                current.channel.closeSession(current.id);
            } catch (RuntimeException ignored) {
                // the gateway closes it when its lease runs out
            }
            current.closeQuietly();
        }
        async.shutdown();
        if (watcher.isAlive() && watcher != Thread.currentThread()) {
            watcher.interrupt();
            try {
                watcher.join(TimeUnit.SECONDS.toMillis(5));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        synchronized (connection) {
            connection.notifyAll();
        }
    }

    // ------------------------------------------------------------------ the watcher

    private void watch() {
        long backoff = FIRST_BACKOFF_NANOS;
        int watchMillis = (int) Math.min(Integer.MAX_VALUE, options.watchInterval().toMillis());
        while (!closed) {
            ShmSession current = session;
            if (current == null) {
                if (tryOpen()) {
                    backoff = FIRST_BACKOFF_NANOS;
                } else {
                    pause(backoff);
                    backoff = Math.min(backoff * 2, options.reconnectBackoff().toNanos());
                }
                continue;
            }
            String why;
            try {
                String state = current.channel.watch(current.id, watchMillis).trim();
                why = "serving".equals(state) ? current.ring.check() : "the gateway closed the session (" + state + ")";
            } catch (RuntimeException e) {
                why = "lost the control connection to the gateway (" + e.getMessage() + ")";
            }
            if (session != current) {
                why = current.ring.failure(); // a caller found the ring dead and dropped the session meanwhile
            }
            if (why != null && !closed) {
                drop(current, why);
                current.closeQuietly();
            }
        }
    }

    /** Opens a session; false (with {@link #lastError} set) if the gateway cannot be reached or refuses. */
    private boolean tryOpen() {
        ControlChannel channel = null;
        try {
            channel = connector.connect(host, port, options.connectTimeout(),
                    options.watchInterval().plus(CONTROL_SLACK));
            ShmSession fresh = ShmSession.open(channel, options);
            synchronized (connection) {
                if (closed) {
                    fresh.closeQuietly();
                    return true;
                }
                session = fresh;
                opened.incrementAndGet();
                connection.notifyAll();
            }
            return true;
        } catch (RuntimeException e) {
            lastError = String.valueOf(e.getMessage());
            if (channel != null) {
                channel.close();
            }
            return false;
        }
    }

    /** Makes {@code dead} unusable: it is no longer current, and its waiters fail now. */
    private void drop(ShmSession dead, String why) {
        lastError = why;
        synchronized (connection) {
            if (session == dead) {
                session = null;
            }
        }
        dead.ring.fail(why);
    }

    private void pause(long nanos) {
        try {
            closing.await(nanos, TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            closed = true;
        }
    }

    private ShmSession requireSession() {
        ShmSession current = session;
        if (current == null) {
            throw unavailable(null);
        }
        return current;
    }

    private GatewayUnavailableException unavailable(String model) {
        String state = closed ? "the gateway client is closed" : "not connected to the gateway at " + host + ":"
                + port + " (reconnecting; last error: " + lastError + ")";
        return new GatewayUnavailableException(model, state, null);
    }

    @Override
    public String toString() {
        return "ShmGateway[" + host + ":" + port + ", " + (session == null ? "disconnected" : session) + "]";
    }
}
