/**
 * The Java half of the in-process transport: Python hosts the JVM (JPype), and Java request threads never call into
 * Python.
 *
 * <pre>
 *  request threads (Java)                     worker threads (Python, one WorkerLane each)
 *  ----------------------                     --------------------------------------------
 *  gateway.score(request)                     while (n = lane.take(timeout)) &gt;= 0:      # GIL released
 *    check against ModelSpec                      read control[0..7] (numpy int64 view)
 *    queue, park until deadline    -----&gt;         ONNX Runtime on numpy views of the
 *                                                  direct buffers (staging or an arena)
 *    unparked with the result      &lt;-----         lane.complete()  /  lane.fail(code, msg)
 * </pre>
 *
 * <ul>
 *   <li>{@link dev.scoregate.bridge.inprocess.InProcessGateway}: the {@code ModelGateway}; admission, deadlines,
 *       registered arenas, close.</li>
 *   <li>{@link dev.scoregate.bridge.inprocess.WorkerLane}: one Python worker's take / complete / fail, and the
 *       control block layout, which is the contract with the Python side ({@code jvm_bridge/inprocess.py}).</li>
 *   <li>{@link dev.scoregate.bridge.inprocess.ModelSpec}: what Java checks a request against.</li>
 *   <li>{@link dev.scoregate.bridge.inprocess.EchoMain}: a smoke client for the Python integration test.</li>
 * </ul>
 *
 * <p>Per batch, Python makes exactly two calls into Java ({@code take}, then {@code complete} or {@code fail}), each
 * about a microsecond; a batch of one request on a registered arena slot is scored in place, anything else is
 * copied into the lane's staging buffer by Java on the worker's thread, where the GIL is not held.
 */
package dev.scoregate.bridge.inprocess;
