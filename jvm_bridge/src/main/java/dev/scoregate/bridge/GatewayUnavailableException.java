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
        super(modelName, modelName == null ? message : describeModel(modelName) + ": " + message, cause);
    }
}
