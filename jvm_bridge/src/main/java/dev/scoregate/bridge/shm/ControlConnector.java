package dev.scoregate.bridge.shm;

import java.time.Duration;

/**
 * Opens {@link ControlChannel}s: the service a transport module provides ({@code META-INF/services}) so that
 * {@link dev.scoregate.bridge.ModelGateways#connect} works without this API jar depending on Py4J. The Py4J client
 * module ({@code dev.scoregate:scoregate-py4j-client}) is the one implementation.
 */
public interface ControlConnector {

    /**
     * Connects to the gateway's control server. Need not contact it yet: the first call may do that, and fails
     * with {@link dev.scoregate.bridge.GatewayUnavailableException} if it cannot.
     *
     * @param connectTimeout how long to wait for a connection to be accepted
     * @param readTimeout    how long any one call may wait for its reply (longer than the longest watch)
     */
    ControlChannel connect(String host, int port, Duration connectTimeout, Duration readTimeout);
}
