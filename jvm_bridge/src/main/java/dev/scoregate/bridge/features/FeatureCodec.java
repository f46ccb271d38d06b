package dev.scoregate.bridge.features;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * The stored value of one entity in one feature group, as {@code cache/codec.py} writes it (little-endian):
 * <pre>
 * offset  size  field
 * 0       4     magic "SGF1"
 * 4       2     group version (uint16)
 * 6       2     width: number of float32 values (uint16)
 * 8       8     event time, milliseconds since the epoch (int64)
 * 16      4*w   the values, float32, in the group's feature order
 * </pre>
 * Keys are entity ids serialized as Java {@code Long} (Hazelcast type id -7). The Python client writes an
 * {@code int} as an {@code Integer} by default, which a {@code Long} lookup never finds: every Scoregate Python
 * client is configured with {@code default_int_type=LONG} ({@code cache/client.py}), and this reader looks keys up
 * as {@code Long}. Stateless; thread-safe.
 */
public final class FeatureCodec {
    /** Bytes before the first value. */
    public static final int HEADER_BYTES = 16;

    /** "SGF1" read as a little-endian int. */
    public static final int MAGIC = 'S' | 'G' << 8 | 'F' << 16 | '1' << 24;

    private static final VarHandle INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle SHORT = MethodHandles.byteArrayViewVarHandle(short[].class,
            ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle FLOAT = MethodHandles.byteArrayViewVarHandle(float[].class,
            ByteOrder.LITTLE_ENDIAN);

    private FeatureCodec() {
    }

    /** Size of one stored value of {@code group}. */
    public static int valueBytes(FeatureGroupSpec group) {
        return HEADER_BYTES + Float.BYTES * group.width();
    }

    /** Whether {@code value} is this layout for {@code group} (length, magic, version and width). */
    public static boolean fits(FeatureGroupSpec group, byte[] value) {
        return value.length == valueBytes(group)
                && (int) INT.get(value, 0) == MAGIC
                && Short.toUnsignedInt((short) SHORT.get(value, 4)) == group.version()
                && Short.toUnsignedInt((short) SHORT.get(value, 6)) == group.width();
    }

    /** The event time (ms since the epoch) of a value that {@link #fits}. */
    public static long eventMillis(byte[] value) {
        return (long) LONG.get(value, 8);
    }

    /** Value {@code index} of a value that {@link #fits}. */
    public static float value(byte[] value, int index) {
        return (float) FLOAT.get(value, HEADER_BYTES + Float.BYTES * index);
    }

    /** Encodes one value (for writers and tests on the JVM side); rejects a wrong width and NaN/infinity. */
    public static byte[] encode(FeatureGroupSpec group, float[] values, long eventMillis) {
        if (values.length != group.width()) {
            throw new IllegalArgumentException("group " + group.name() + ": expected " + group.width()
                    + " values, got " + values.length);
        }
        byte[] out = new byte[valueBytes(group)];
        INT.set(out, 0, MAGIC);
        SHORT.set(out, 4, (short) group.version());
        SHORT.set(out, 6, (short) group.width());
        LONG.set(out, 8, eventMillis);
        for (int i = 0; i < values.length; i++) {
            if (!Float.isFinite(values[i])) {
                throw new IllegalArgumentException("group " + group.name() + ": value " + i + " is not finite");
            }
            FLOAT.set(out, HEADER_BYTES + Float.BYTES * i, values[i]);
        }
        return out;
    }
}
