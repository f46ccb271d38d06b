package dev.scoregate.bridge;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Test helpers for the buffers a {@link ScoreRequest} needs. */
final class Buffers {
    private Buffers() {
    }

    /** The byte order this host does not use: BIG_ENDIAN on x86 and ARM, LITTLE_ENDIAN on s390x. */
    static final ByteOrder FOREIGN_ORDER =
            ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;

    static ByteBuffer direct(int bytes) {
        return ByteBuffer.allocateDirect(bytes).order(ByteOrder.nativeOrder());
    }

    static ByteBuffer floats(int count) {
        return direct(count * Float.BYTES);
    }
}
