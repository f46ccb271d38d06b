package dev.scoregate.bridge;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One large direct, native-order buffer cut into fixed-size slots, each holding the feature matrix and the scores of
 * one request. Callers lease a slot, write features straight into it, score, and release it: nothing is allocated
 * or copied per request, and the Python side maps the whole arena once and finds a request's data by offset.
 *
 * <h2>Layout</h2>
 * Slot {@code i} starts at byte {@code i * slotStrideBytes()} of {@link #buffer()} (its {@link Slot#offset()}):
 * <pre>
 * [offset, offset + maxRows*featureCount*4)              features: float32, row-major, maxRows x featureCount
 * [scoresOffset, scoresOffset + maxRows*4)               scores:   float32, one per row
 * ...padding to slotStrideBytes(), a multiple of 64
 * </pre>
 * where {@code scoresOffset = offset + maxRows*featureCount*4}. Slot starts are multiples of {@value #SLOT_ALIGNMENT}
 * bytes from the buffer's base, which {@link #allocate} aligns to {@value #SLOT_ALIGNMENT}: two threads filling
 * neighbouring slots never write the same cache line, and ONNX Runtime's vector loads start aligned.
 *
 * <h2>Threads and ownership</h2>
 * {@link #acquire()} and {@link Slot#release()} are thread-safe. A leased {@link Slot} belongs to one thread at a
 * time; hand it to another only through something that orders memory (a queue, a future). Each lease is a new
 * {@code Slot} handle, so a stale handle (used after release) is detected rather than silently writing into someone
 * else's request. A slot's contents are not cleared between leases: rows beyond a request's {@code rows} hold
 * leftovers and are never read. The arena's memory lives as long as the arena is reachable; a transport that maps
 * it must keep a reference.
 */
public final class FeatureArena {
    /** Alignment, in bytes, of every slot's start relative to the arena's base address: one cache line. */
    public static final int SLOT_ALIGNMENT = 64;

    /** {@link #registrationId()} of an arena no gateway registered. */
    public static final int UNREGISTERED = -1;

    private static final AtomicLong NEXT_ID = new AtomicLong(1);

    private final long id;
    private final int registrationId;
    private final int slotCount;
    private final int maxRows;
    private final int featureCount;
    private final int featureBytes;
    private final int slotStride;
    private final ByteBuffer buffer;
    private final ArrayBlockingQueue<Region> free;

    private FeatureArena(ByteBuffer buffer, int registrationId, int slotCount, int maxRows, int featureCount,
                         int featureBytes, int slotStride) {
        this.id = NEXT_ID.getAndIncrement();
        this.registrationId = registrationId;
        this.buffer = buffer;
        this.slotCount = slotCount;
        this.maxRows = maxRows;
        this.featureCount = featureCount;
        this.featureBytes = featureBytes;
        this.slotStride = slotStride;
        this.free = new ArrayBlockingQueue<>(slotCount);
        for (int i = 0; i < slotCount; i++) {
            free.add(new Region(buffer, i, i * slotStride, featureBytes, maxRows * Float.BYTES));
        }
    }

    /**
     * Allocates an arena of {@code slotCount} slots, each for up to {@code maxRows} rows of {@code featureCount}
     * features. Size it for peak concurrency: one slot per request in flight.
     *
     * @throws IllegalArgumentException if a count is not positive or the arena would exceed 2 GiB
     */
    public static FeatureArena allocate(int slotCount, int maxRows, int featureCount) {
        return allocateAligned(slotCount, maxRows, featureCount, UNREGISTERED);
    }

    /**
     * For transports: allocates an arena that a gateway knows by the small number {@code registrationId}, so that
     * its Python side maps the whole buffer once and then finds a request by (registration, offset). Ad servers get
     * such arenas from their gateway (e.g. {@code InProcessGateway.newArena}), not from here. The gateway checks that
     * the arena it registered under that number is this very instance, so a number alone confers nothing.
     *
     * @throws IllegalArgumentException if {@code registrationId < 0}, or as {@link #allocate(int, int, int)}
     */
    public static FeatureArena allocateRegistered(int slotCount, int maxRows, int featureCount, int registrationId) {
        if (registrationId < 0) {
            throw new IllegalArgumentException("registrationId must be >= 0, got " + registrationId);
        }
        return allocateAligned(slotCount, maxRows, featureCount, registrationId);
    }

    private static FeatureArena allocateAligned(int slotCount, int maxRows, int featureCount, int registrationId) {
        int[] layout = layout(slotCount, maxRows, featureCount);
        ByteBuffer raw = ByteBuffer.allocateDirect(layout[2] + SLOT_ALIGNMENT - 1);
        // alignedSlice() (like every slice) comes back BIG_ENDIAN: set the order on what we keep.
        ByteBuffer aligned = raw.alignedSlice(SLOT_ALIGNMENT).limit(layout[2]).slice().order(ByteOrder.nativeOrder());
        return new FeatureArena(aligned, registrationId, slotCount, maxRows, featureCount, layout[0], layout[1]);
    }

    /**
     * An arena over memory the caller provides, e.g. a {@code MappedByteBuffer} over a file in {@code /dev/shm}
     * that an out-of-process (Py4J) gateway maps too. Slots are laid out from the buffer's absolute index 0; the
     * buffer's position, limit and order flag are ignored.
     *
     * @throws IllegalArgumentException if the buffer is not direct, is read-only, or is smaller than
     *                                  {@link #requiredBytes}
     */
    public static FeatureArena wrap(ByteBuffer memory, int slotCount, int maxRows, int featureCount) {
        Objects.requireNonNull(memory, "memory");
        int[] layout = layout(slotCount, maxRows, featureCount);
        if (!memory.isDirect()) {
            throw new IllegalArgumentException("arena memory must be a direct buffer; got a heap ByteBuffer");
        }
        if (memory.isReadOnly()) {
            throw new IllegalArgumentException("arena memory must be writable; got a read-only buffer");
        }
        if (memory.capacity() < layout[2]) {
            throw new IllegalArgumentException("arena memory holds " + memory.capacity() + " bytes but " + slotCount
                    + " slots of " + maxRows + " rows x " + featureCount + " features need " + layout[2]);
        }
        ByteBuffer view = memory.slice(0, layout[2]).order(ByteOrder.nativeOrder());
        return new FeatureArena(view, UNREGISTERED, slotCount, maxRows, featureCount, layout[0], layout[1]);
    }

    /** Bytes an arena of this shape occupies: {@code slotCount * slotStrideBytes}. */
    public static int requiredBytes(int slotCount, int maxRows, int featureCount) {
        return layout(slotCount, maxRows, featureCount)[2];
    }

    /** {featureBytes, slotStride, totalBytes}, with every overflow turned into a clear message. */
    private static int[] layout(int slotCount, int maxRows, int featureCount) {
        if (slotCount <= 0 || maxRows <= 0 || featureCount <= 0) {
            throw new IllegalArgumentException("slotCount, maxRows and featureCount must be > 0, got "
                    + slotCount + ", " + maxRows + ", " + featureCount);
        }
        long featureBytes = (long) maxRows * featureCount * Float.BYTES;
        long unpadded = featureBytes + (long) maxRows * Float.BYTES;
        long stride = (unpadded + SLOT_ALIGNMENT - 1) / SLOT_ALIGNMENT * SLOT_ALIGNMENT;
        long total = stride * slotCount;
        // Leave room for allocate()'s alignment padding under the 2 GiB ByteBuffer limit.
        if (total > Integer.MAX_VALUE - SLOT_ALIGNMENT) {
            throw new IllegalArgumentException(slotCount + " slots of " + maxRows + " rows x " + featureCount
                    + " features need " + total + " bytes; a ByteBuffer holds at most 2 GiB. Use several arenas");
        }
        return new int[] {(int) featureBytes, (int) stride, (int) total};
    }

    /**
     * Leases a free slot without waiting.
     *
     * @throws ArenaExhaustedException if every slot is leased
     */
    public Slot acquire() {
        Region region = free.poll();
        if (region == null) {
            throw exhausted(Duration.ZERO);
        }
        return lease(region);
    }

    /**
     * Leases a free slot, waiting up to {@code timeout} for one to be released.
     *
     * @throws ArenaExhaustedException if none is released in time
     * @throws InterruptedException    if the thread is interrupted while waiting
     */
    public Slot acquire(Duration timeout) throws InterruptedException {
        Region region = free.poll(timeout.toNanos(), TimeUnit.NANOSECONDS);
        if (region == null) {
            throw exhausted(timeout);
        }
        return lease(region);
    }

    private Slot lease(Region region) {
        // Only the thread that polled the region touches it here; the stamp goes even (free) -> odd (leased).
        long stamp = region.stamp.incrementAndGet();
        region.featureFloats.clear();
        return new Slot(this, region, stamp);
    }

    private void release(Slot slot) {
        Region region = slot.region;
        if (!region.stamp.compareAndSet(slot.stamp, slot.stamp + 1)) {
            throw new IllegalStateException(slot + " was already released; each lease may be released once");
        }
        free.add(region); // never full: at most slotCount regions exist
    }

    private ArenaExhaustedException exhausted(Duration waited) {
        String wait = waited.isZero() ? "" : " for " + waited.toMillis() + " ms";
        return new ArenaExhaustedException(this + ": all " + slotCount + " slots are leased and none was released"
                + wait + "; release every slot (try-with-resources) and size the arena for peak concurrency");
    }

    /** Unique within this JVM; the transport keys its mapping of {@link #buffer()} on it. */
    public long id() {
        return id;
    }

    /**
     * The number a gateway registered this arena under ({@link #allocateRegistered}), or {@value #UNREGISTERED}.
     * Unique only within that gateway.
     */
    public int registrationId() {
        return registrationId;
    }

    /**
     * The whole arena, from its (aligned) base: what the Python side maps once. A new view each call (native order,
     * position 0); the memory is shared with every slot.
     */
    public ByteBuffer buffer() {
        return buffer.duplicate().order(ByteOrder.nativeOrder());
    }

    public int slotCount() {
        return slotCount;
    }

    public int maxRows() {
        return maxRows;
    }

    public int featureCount() {
        return featureCount;
    }

    /** Distance in bytes between the starts of consecutive slots; a multiple of {@value #SLOT_ALIGNMENT}. */
    public int slotStrideBytes() {
        return slotStride;
    }

    /** Slots free right now; a moment later it may differ. */
    public int available() {
        return free.size();
    }

    @Override
    public String toString() {
        return "FeatureArena#" + id + "[" + slotCount + " slots of " + maxRows + " rows x " + featureCount
                + " features" + (registrationId == UNREGISTERED ? "" : ", registered as " + registrationId) + "]";
    }

    /** One slot's memory, views and lease stamp; lives as long as the arena. */
    private static final class Region {
        final int index;
        final int offset;
        final ByteBuffer features;
        final ByteBuffer scores;
        final FloatBuffer featureFloats;
        /** Even: free. Odd: leased, and the value identifies the lease. */
        final AtomicLong stamp = new AtomicLong();

        Region(ByteBuffer arena, int index, int offset, int featureBytes, int scoreBytes) {
            this.index = index;
            this.offset = offset;
            this.features = arena.slice(offset, featureBytes).order(ByteOrder.nativeOrder());
            this.scores = arena.slice(offset + featureBytes, scoreBytes).order(ByteOrder.nativeOrder());
            this.featureFloats = features.asFloatBuffer();
        }
    }

    /**
     * A leased slot. Valid from {@link FeatureArena#acquire()} until {@link #release()}; every method but the
     * layout getters and {@link #isLeased()} throws {@link IllegalStateException} on a released handle. Use
     * try-with-resources, and keep the slot leased until the score call has returned or its future completed.
     */
    public static final class Slot implements AutoCloseable {
        private final FeatureArena arena;
        private final Region region;
        private final long stamp;

        private Slot(FeatureArena arena, Region region, long stamp) {
            this.arena = arena;
            this.region = region;
            this.stamp = stamp;
        }

        public FeatureArena arena() {
            return arena;
        }

        /** Index of this slot in its arena, {@code 0 <= index < slotCount}. */
        public int index() {
            return region.index;
        }

        /** Byte offset of this slot, and of its feature matrix, from the base of {@link FeatureArena#buffer()}. */
        public int offset() {
            return region.offset;
        }

        /** Byte offset of this slot's scores from the base of {@link FeatureArena#buffer()}. */
        public int scoresOffset() {
            return region.offset + arena.featureBytes;
        }

        public int maxRows() {
            return arena.maxRows;
        }

        public int featureCount() {
            return arena.featureCount;
        }

        /** Whether this handle's lease is current (not yet released). */
        public boolean isLeased() {
            return region.stamp.get() == stamp;
        }

        /**
         * The feature matrix as floats, {@code maxRows x featureCount}, row-major; position 0 at acquire. Writes go
         * straight to the arena. The same view for the whole lease: relative puts move its position.
         */
        public FloatBuffer features() {
            checkLeased();
            return region.featureFloats;
        }

        /** Writes {@code values} (exactly {@code featureCount} floats) as row {@code row}. */
        public void putRow(int row, float[] values) {
            checkLeased();
            Objects.checkIndex(row, arena.maxRows);
            if (values.length != arena.featureCount) {
                throw new InvalidInputException(null, "features", "row " + row + " has " + values.length
                        + " values but " + arena + " holds " + arena.featureCount + " features per row");
            }
            region.featureFloats.put(row * arena.featureCount, values);
        }

        /** The feature matrix as bytes (direct, native order), {@code maxRows * featureCount * 4} long. */
        public ByteBuffer featureBuffer() {
            checkLeased();
            return region.features;
        }

        /** Where scores land (direct, native order), {@code maxRows * 4} bytes long. */
        public ByteBuffer scoreBuffer() {
            checkLeased();
            return region.scores;
        }

        /**
         * A request builder with this slot's buffers, {@code rows} and the feature count filled in; add the model and
         * the deadline, then {@code build()}. {@code rows} above {@link #maxRows()} fail in {@code build()}.
         */
        public ScoreRequest.Builder request(int rows) {
            checkLeased();
            return ScoreRequest.builder()
                    .rows(rows)
                    .featureCount(arena.featureCount)
                    .featureBuffer(region.features)
                    .scoreBuffer(region.scores)
                    .slot(this);
        }

        /**
         * Returns the slot to the arena.
         *
         * @throws IllegalStateException if this lease was already released
         */
        public void release() {
            arena.release(this);
        }

        /** Same as {@link #release()}. */
        @Override
        public void close() {
            release();
        }

        private void checkLeased() {
            if (region.stamp.get() != stamp) {
                throw new IllegalStateException(this + " is used after release");
            }
        }

        @Override
        public String toString() {
            return "FeatureArena#" + arena.id + "/slot " + region.index;
        }
    }
}
