package dev.scoregate.bridge.py4j;

/**
 * The Python gateway's Py4J entry point as Java calls it: {@code jvm_bridge.py4j_server.GatewayControl}, method for
 * method (Py4J dispatches by name). Strings and ints only, which Py4J passes by value, so the Python side never needs
 * a connection back into this JVM. Replies are tab-separated lines; see {@link dev.scoregate.bridge.shm.ControlChannel}.
 */
public interface GatewayControl {
    String hello(String client);

    String clock();

    String models();

    String health();

    String openSession(String request);

    String sessionModels(String session);

    String attachSession(String session);

    String watch(String session, int timeoutMillis);

    String closeSession(String session);
}
