package dev.scoregate.bridge;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.Optional;

/**
 * One scoring call: which model, by when, and the two buffers it reads from and writes to. Immutable once built;
 * {@link Builder#build()} checks everything that can be checked without the model, so a bad request fails here, in
 * the caller's stack, instead of as a mis-score in Python.
 *
 * <h2>Buffers</h2>
 * <ul>
 *   <li>{@link #featureBuffer()}: {@code rows x featureCount} float32, row-major, starting at absolute index 0.</li>
 *   <li>{@link #scoreBuffer()}: {@code rows} float32 starting at absolute index 0; the gateway writes one score per
 *       row into it.</li>
 * </ul>
 * Both must be <b>direct</b> (the gateway hands their address to ONNX Runtime without copying) and in <b>native byte
 * order</b>. Position and limit are ignored: the Python side maps a buffer from its base address, so a caller that
 * needs an offset passes {@code buffer.slice(offset, length).order(ByteOrder.nativeOrder())}. The byte-order check is
 * on the buffer's order flag, which is how the caller's {@code putFloat}/{@code asFloatBuffer} writes were encoded.
 *
 * <h2>Ownership</h2>
 * The caller owns both buffers. From the call until {@link ModelGateway#score} returns (or the future of
 * {@link ModelGateway#scoreAsync} completes) the caller must not write the features nor read the scores; afterwards
 * the gateway keeps no reference to either.
 *
 * <h2>Deadline</h2>
 * An absolute {@link System#nanoTime()} value, required: an ad request without a deadline is a bug. Give either a
 * relative {@link Builder#timeout(Duration)} (resolved against {@code System.nanoTime()} when {@code build()} runs) or
 * an absolute {@link Builder#deadlineNanos(long)}, not both. Transports send the <em>remaining</em> budget
 * ({@link #remainingNanos(long)}) across the boundary, never the absolute value: {@code nanoTime} has an arbitrary
 * origin per JVM.
 */
public final class ScoreRequest {
    private final ModelId model;
    private final long deadlineNanos;
    private final int rows;
    private final int featureCount;
    private final ByteBuffer featureBuffer;
    private final ByteBuffer scoreBuffer;
    private final FeatureArena.Slot slot;
    private final byte[] routingKey;
    /** {@link Routing#bucket} of the key, computed on first use; -2 until then. A benign race: any thread's is right. */
    private int bucket = -2;

    private ScoreRequest(Builder b, ModelId model, long deadlineNanos) {
        this.model = model;
        this.deadlineNanos = deadlineNanos;
        this.rows = b.rows;
        this.featureCount = b.featureCount;
        this.featureBuffer = b.featureBuffer;
        this.scoreBuffer = b.scoreBuffer;
        this.slot = b.slot;
        this.routingKey = b.routingKey;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** The model to score with; see {@link ModelId} for what omitting the version means. */
    public ModelId model() {
        return model;
    }

    /** The deadline as a {@link System#nanoTime()} value. */
    public long deadlineNanos() {
        return deadlineNanos;
    }

    /** Nanoseconds left at {@code nowNanos} (a {@link System#nanoTime()} reading); zero or negative once passed. */
    public long remainingNanos(long nowNanos) {
        return deadlineNanos - nowNanos;
    }

    public int rows() {
        return rows;
    }

    public int featureCount() {
        return featureCount;
    }

    /** The input matrix, {@code rows x featureCount} float32, row-major, from absolute index 0. Not a copy. */
    public ByteBuffer featureBuffer() {
        return featureBuffer;
    }

    /** Where the gateway writes {@code rows} float32 scores, from absolute index 0. Not a copy. */
    public ByteBuffer scoreBuffer() {
        return scoreBuffer;
    }

    /**
     * The arena slot the buffers belong to, when the request came from {@link FeatureArena.Slot#request(int)}. A
     * transport that has mapped the whole arena uses the slot's offsets instead of mapping these buffers per call.
     */
    public Optional<FeatureArena.Slot> slot() {
        return Optional.ofNullable(slot);
    }

    /** Whether the request carries a routing key ({@link Builder#routingKey(String)}). */
    public boolean hasRoutingKey() {
        return routingKey != null;
    }

    /**
     * The routing key's bucket ({@link Routing#bucket}), in {@code [0, Routing.BUCKETS)}; -1 without a key. A
     * gateway computes it only while a canary of the model runs, once per request.
     */
    public int routingBucket() {
        int b = bucket;
        if (b == -2) {
            b = bucket = routingKey == null ? -1 : Routing.bucket(routingKey);
        }
        return b;
    }

    @Override
    public String toString() {
        return "ScoreRequest[model=" + model + ", rows=" + rows + ", featureCount=" + featureCount
                + (slot == null ? "" : ", slot=" + slot) + "]";
    }

    /**
     * Collects the fields of a request; {@link #build()} validates them all at once. Not thread-safe; cheap to
     * create, so use one per request.
     */
    public static final class Builder {
        private String modelSpec;
        private ModelId model;
        private Duration timeout;
        private long deadlineNanos;
        private boolean hasDeadline;
        private int rows;
        private int featureCount;
        private ByteBuffer featureBuffer;
        private ByteBuffer scoreBuffer;
        private FeatureArena.Slot slot;
        private byte[] routingKey;

        private Builder() {
        }

        /** {@code "name"} or {@code "name@version"}; parsed by {@code build()}. */
        public Builder model(String spec) {
            this.modelSpec = spec;
            this.model = null;
            return this;
        }

        public Builder model(ModelId id) {
            this.model = id;
            this.modelSpec = null;
            return this;
        }

        /** A relative deadline, resolved against {@link System#nanoTime()} by {@code build()}; must be positive. */
        public Builder timeout(Duration timeout) {
            this.timeout = timeout;
            return this;
        }

        /** An absolute deadline as a {@link System#nanoTime()} value. */
        public Builder deadlineNanos(long deadlineNanos) {
            this.deadlineNanos = deadlineNanos;
            this.hasDeadline = true;
            return this;
        }

        public Builder rows(int rows) {
            this.rows = rows;
            return this;
        }

        public Builder featureCount(int featureCount) {
            this.featureCount = featureCount;
            return this;
        }

        public Builder featureBuffer(ByteBuffer features) {
            this.featureBuffer = features;
            return this;
        }

        public Builder scoreBuffer(ByteBuffer scores) {
            this.scoreBuffer = scores;
            return this;
        }

        /**
         * The request's routing key (e.g. the user id): while a canary of the model runs, the key decides whether the
         * request goes to the candidate, and the same key always gets the same answer, on every gateway and
         * transport (see {@link Routing}). Without one, or with a pinned version, the request goes to the version
         * the name serves. {@code null} clears it.
         */
        public Builder routingKey(String key) {
            this.routingKey = key == null ? null : Routing.key(key);
            return this;
        }

        /** {@link #routingKey(String)} for a numeric key: its decimal digits ({@code 42} routes as {@code "42"}). */
        public Builder routingKey(long key) {
            this.routingKey = Routing.key(key);
            return this;
        }

        Builder slot(FeatureArena.Slot slot) {
            this.slot = slot;
            return this;
        }

        /**
         * Validates and builds. Rules, in the order they are checked:
         * <ol>
         *   <li>a model is set and parses;</li>
         *   <li>exactly one of timeout (positive) or deadlineNanos is set;</li>
         *   <li>rows &gt; 0 and featureCount &gt; 0, and rows x featureCount x 4 fits in an int;</li>
         *   <li>the feature buffer, then the score buffer: present, direct, in native byte order, and at least
         *       rows x featureCount x 4 (features) or rows x 4 (scores) bytes of capacity;</li>
         *   <li>the score buffer is writable.</li>
         * </ol>
         *
         * @throws InvalidInputException naming the model and the input at fault
         */
        public ScoreRequest build() {
            ModelId id = model != null ? model : ModelId.parse(modelSpec);
            long deadline = resolveDeadline(id);
            if (rows <= 0) {
                throw new InvalidInputException(id.toString(), "rows", "rows must be > 0, got " + rows);
            }
            if (featureCount <= 0) {
                throw new InvalidInputException(id.toString(), "featureCount",
                        "featureCount must be > 0, got " + featureCount);
            }
            long featureBytes = (long) rows * featureCount * Float.BYTES;
            if (featureBytes > Integer.MAX_VALUE) {
                throw new InvalidInputException(id.toString(), "features", rows + " rows x " + featureCount
                        + " features x 4 bytes exceeds the 2 GiB a ByteBuffer can hold; split the batch");
            }
            checkBuffer(id, "features", featureBuffer, featureBytes);
            checkBuffer(id, "scores", scoreBuffer, (long) rows * Float.BYTES);
            if (scoreBuffer.isReadOnly()) {
                throw new InvalidInputException(id.toString(), "scores",
                        "score buffer is read-only; the gateway writes into it");
            }
            return new ScoreRequest(this, id, deadline);
        }

        private long resolveDeadline(ModelId id) {
            if (timeout != null && hasDeadline) {
                throw new InvalidInputException(id.toString(), "deadline",
                        "set either timeout(Duration) or deadlineNanos(long), not both");
            }
            if (timeout != null) {
                if (timeout.isNegative() || timeout.isZero()) {
                    throw new InvalidInputException(id.toString(), "deadline",
                            "timeout must be positive, got " + timeout);
                }
                return System.nanoTime() + timeout.toNanos();
            }
            if (!hasDeadline) {
                throw new InvalidInputException(id.toString(), "deadline",
                        "a deadline is required: set timeout(Duration) or deadlineNanos(long)");
            }
            return deadlineNanos;
        }

        // Messages are built only on failure: build() runs once per scoring call and should not allocate strings.
        private void checkBuffer(ModelId id, String input, ByteBuffer buf, long needed) {
            if (buf != null && buf.isDirect() && buf.order() == ByteOrder.nativeOrder() && buf.capacity() >= needed) {
                return;
            }
            String model = id.toString();
            if (buf == null) {
                throw new InvalidInputException(model, input, input + " buffer is required");
            }
            if (!buf.isDirect()) {
                throw new InvalidInputException(model, input, input + " buffer is a heap ByteBuffer; the gateway "
                        + "passes its address to ONNX Runtime, so it must be direct (ByteBuffer.allocateDirect or a "
                        + "FeatureArena slot)");
            }
            if (buf.order() != ByteOrder.nativeOrder()) {
                throw new InvalidInputException(model, input, input + " buffer is " + buf.order() + " but this host is "
                        + ByteOrder.nativeOrder() + "; ONNX Runtime reads float32 in native order and would silently "
                        + "mis-score. Call buffer.order(ByteOrder.nativeOrder()) before writing; note that slice(), "
                        + "duplicate() and asReadOnlyBuffer() return BIG_ENDIAN buffers");
            }
            String shape = input.equals("features")
                    ? rows + " rows x " + featureCount + " features x 4 bytes"
                    : rows + " rows x 4 bytes";
            throw new InvalidInputException(model, input, input + " buffer holds " + buf.capacity() + " bytes but "
                    + shape + " needs " + needed);
        }
    }
}
