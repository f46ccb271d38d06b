/**
 * The out-of-process transport's control connection over Py4J: {@link dev.scoregate.bridge.py4j.Py4jConnector},
 * found through {@code META-INF/services} by {@link dev.scoregate.bridge.ModelGateways#connect}. The Python gateway
 * listens ({@code python -m gateway serve-py4j}); this JVM is a pure client and opens no port. Tensors never travel
 * over Py4J: they go through the shared-memory ring of {@link dev.scoregate.bridge.shm}.
 *
 * <p>{@code tools/} holds {@link dev.scoregate.bridge.py4j.tools.ShmClientMain}, the client the Python integration
 * tests and the {@code py4j} benchmark suite run; it is a measuring tool, not product code.
 */
package dev.scoregate.bridge.py4j;
