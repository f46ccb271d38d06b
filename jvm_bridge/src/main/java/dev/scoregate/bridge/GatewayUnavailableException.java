package dev.scoregate.bridge;

/**
 * The gateway, or the path to it, is not serving: nothing is registered in {@link ModelGateways}, the Python host
 * has stopped, or the Py4J connection dropped. Retry elsewhere or later; the request itself may be fine.
 */
public class GatewayUnavailableException extends ScoregateException {
    private static final long serialVersionUID = 1L;

    public GatewayUnavailableException(String message) {
        this(null, message, null);
    }

    /**
     * @param modelName the model the request named, if the failure was seen while serving one; else {@code null}
     */
    public GatewayUnavailableException(String modelName, String message, Throwable cause) {
        this(modelName, cause, modelName == null ? message : describeModel(modelName) + ": " + message);
    }

    /** Takes the finished message; the public constructors format it. */
    private GatewayUnavailableException(String modelName, Throwable cause, String message) {
        super(modelName, message, cause);
    }

    /**
     * For transports: an error the Python gateway reported, with its message kept verbatim (Python's message
     * already says what is down, in the same words as this class's).
     */
    public static GatewayUnavailableException fromGateway(String modelName, String message) {
        return new GatewayUnavailableException(modelName, null, message);
    }
}
