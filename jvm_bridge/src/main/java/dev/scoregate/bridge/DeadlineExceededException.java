package dev.scoregate.bridge;

import java.util.concurrent.TimeUnit;

/** The request's deadline passed before it was served. The auction moved on; do not retry. */
public class DeadlineExceededException extends ScoregateException {
    private static final long serialVersionUID = 1L;

    /**
     * @param modelName the model the request named
     * @param detail    where the time went, e.g. {@code "queued 4.1 ms behind 12 calls"}; the message is
     *                  {@code model 'ctr': deadline exceeded: <detail>}
     */
    public DeadlineExceededException(String modelName, String detail) {
        this(modelName, detail, null);
    }

    public DeadlineExceededException(String modelName, String detail, Throwable cause) {
        super(modelName, describeModel(modelName) + ": deadline exceeded: " + detail, cause);
    }

    /** For a transport that noticed the deadline itself: {@code "passed 1.250 ms before the call"}. */
    public static DeadlineExceededException overrun(String modelName, long overrunNanos, String when) {
        double millis = (double) overrunNanos / TimeUnit.MILLISECONDS.toNanos(1);
        return new DeadlineExceededException(modelName, String.format("passed %.3f ms %s", millis, when));
    }
}
