/**
 * Scoregate's Java API: what an ad server compiles against. A thin facade over the Python gateway; no scoring logic
 * lives here (STYLE.md, lesson 15).
 *
 * <ul>
 *   <li>{@link dev.scoregate.bridge.ModelGateway}: the seam every transport implements;
 *       {@link dev.scoregate.bridge.ModelGateways} holds the process-wide one.</li>
 *   <li>{@link dev.scoregate.bridge.ScoreRequest} / {@link dev.scoregate.bridge.ScoreResult}: one call, over direct
 *       native-order buffers the gateway reads and writes in place.</li>
 *   <li>{@link dev.scoregate.bridge.FeatureArena}: preallocated slots for those buffers, mapped once by Python.</li>
 *   <li>{@link dev.scoregate.bridge.ScoregateException}: the error tree, drawn on that class.</li>
 * </ul>
 *
 * <p>Typical use:
 * <pre>{@code
 * FeatureArena arena = FeatureArena.allocate(64, 256, 64);    // once, at startup
 * ...
 * try (FeatureArena.Slot slot = arena.acquire(Duration.ofMillis(2))) {
 *     for (int i = 0; i < candidates; i++) {
 *         slot.putRow(i, featuresOf(candidate[i]));
 *     }
 *     ScoreRequest request = slot.request(candidates).model("ctr").timeout(Duration.ofMillis(8)).build();
 *     ScoreResult result = ModelGateways.get().score(request);
 *     bid(result.score(0));
 * } catch (ScoregateException e) {
 *     bidWithoutModel(e);
 * }
 * }</pre>
 */
package dev.scoregate.bridge;
