/**
 * Reading the feature cache from the JVM: the same Hazelcast maps, the same value layout and the same keys as the
 * Python gateway ({@code cache/codec.py}, {@code cache/registry.py}), assembled straight into a score buffer.
 *
 * <ul>
 *   <li>{@link dev.scoregate.bridge.features.FeatureCodec}: the stored value (16-byte header + float32 vector) and
 *       the key type (a Java {@code Long}; Python clients write keys with {@code default_int_type=LONG}).</li>
 *   <li>{@link dev.scoregate.bridge.features.FeatureGroupSpec} and
 *       {@link dev.scoregate.bridge.features.FeaturePlan}: which group and index feeds each output column.</li>
 *   <li>{@link dev.scoregate.bridge.features.FeatureReader}: one request's {@code N x F} float32 rows, with
 *       defaults for missing entities, stale flags and a per-request deadline.</li>
 *   <li>{@link dev.scoregate.bridge.features.FeatureClients}: a client configuration with a near cache on the
 *       hot (ad) maps.</li>
 * </ul>
 *
 * <p>The Hazelcast client is an optional dependency of the bridge: only users of this package need
 * {@code com.hazelcast:hazelcast} on their classpath.
 */
package dev.scoregate.bridge.features;
