/**
 * The out-of-process transport, Java half: an ad server's JVM scores through a Python gateway in another process.
 * Py4J carries control only (sessions, the model list, health); tensors travel through a shared-memory ring the
 * gateway creates under {@code /dev/shm}, with no socket call per request.
 *
 * <pre>
 *  request threads (this JVM)                      gateway workers (Python, jvm_bridge/shm_session.py)
 *  --------------------------                      ---------------------------------------------------
 *  claim a slot, copy features in                  scan own slots: requestSeq != last served
 *  write model, rows, deadline; requestSeq = s  -&gt;  skip if past deadline, else Engine.score(name, x, out)
 *  fullFence; ring the doorbell if asleep             on numpy views of the slot
 *  spin, then park with back-off               &lt;-  write outcome / code / message; responseSeq = s
 *  copy scores out, release the slot                 idle: spin, then sleep on the doorbell FIFO
 * </pre>
 *
 * <ul>
 *   <li>{@link dev.scoregate.bridge.shm.RingLayout}: the memory layout, the contract with Python.</li>
 *   <li>{@code SlotRing}: claim, publish, await, abandon, and the memory-ordering argument.</li>
 *   <li>{@link dev.scoregate.bridge.shm.ShmGateway}: sessions, the watcher that notices a dead gateway and
 *       reconnects; {@link dev.scoregate.bridge.ModelGateways#connect} returns one.</li>
 *   <li>{@link dev.scoregate.bridge.shm.ControlChannel} / {@link dev.scoregate.bridge.shm.ControlConnector}: the
 *       control seam, implemented with Py4J by the {@code scoregate-py4j-client} module, so this jar stays free of
 *       dependencies.</li>
 * </ul>
 */
package dev.scoregate.bridge.shm;
