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
        this(modelName, cause, describeModel(modelName) + ": deadline exceeded: " + detail);
    }

    /** Takes the finished message; the public constructors format it. */
    private DeadlineExceededException(String modelName, Throwable cause, String message) {
        super(modelName, message, cause);
    }

    /**
     * For transports: an error the Python gateway reported, with its message kept verbatim (Python's message
     * already says which model and where the time went, in the same words as this class's).
     */
    public static DeadlineExceededException fromGateway(String modelName, String message) {
        return new DeadlineExceededException(modelName, null, message);
    }

    /** For a transport that noticed the deadline itself: {@code "passed 1.250 ms before the call"}. */
    public static DeadlineExceededException overrun(String modelName, long overrunNanos, String when) {
        double millis = (double) overrunNanos / TimeUnit.MILLISECONDS.toNanos(1);
        return new DeadlineExceededException(modelName, String.format("passed %.3f ms %s", millis, when));
    }
}
