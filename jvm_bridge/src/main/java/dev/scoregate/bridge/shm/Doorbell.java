package dev.scoregate.bridge.shm;

import java.io.IOException;

/**
 * Wakes a gateway worker that went to sleep waiting for requests ({@link SlotRing} rings it only when the worker's
 * sleep word says it sleeps). In production a FIFO per worker ({@link FifoDoorbell}); tests ring Java stand-ins.
 */
public interface Doorbell extends AutoCloseable {

    /**
     * Wakes worker {@code worker}. Called from request threads, concurrently; must not block for long.
     *
     * @throws IOException if the worker can no longer be reached (its process is gone): the ring fails
     */
    void ring(int worker) throws IOException;

    /** Releases what the doorbell holds; idempotent. */
    @Override
    default void close() {
    }
}
