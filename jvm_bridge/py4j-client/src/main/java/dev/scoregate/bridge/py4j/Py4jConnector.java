package dev.scoregate.bridge.py4j;

import dev.scoregate.bridge.shm.ControlChannel;
import dev.scoregate.bridge.shm.ControlConnector;
import java.time.Duration;

/**
 * The {@link ControlConnector} this module provides ({@code META-INF/services}): control channels over Py4J. Found by
 * {@link dev.scoregate.bridge.ModelGateways#connect}; there is nothing to configure.
 */
public final class Py4jConnector implements ControlConnector {

    /** For {@link java.util.ServiceLoader}. */
    public Py4jConnector() {
    }

    @Override
    public ControlChannel connect(String host, int port, Duration connectTimeout, Duration readTimeout) {
        return new Py4jControlChannel(host, port, connectTimeout, readTimeout);
    }
}
