package dev.scoregate.bridge.shm;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The layout of one shared-memory ring: the contract with the Python gateway ({@code jvm_bridge/shm_ring.py}, whose
 * module comment has the same table; change both together). The gateway creates and formats the ring; the client
 * reads the numbers from the header ({@link #read}) and trusts nothing it has not checked.
 *
 * <pre>
 * header, 4096 bytes                                   slot i at slotsOffset + i * stride
 *   0 int64 magic "SCRGSHM1"     32 int64 stride          0 int64 request seq   (Java, written last)
 *   8 int32 version (2)          40 int64 slots offset    8 int32 model index   (Java)
 *  12 int32 slots                48 int32 features off.  12 int32 rows          (Java)
 *  16 int32 workers              52 int32 scores off.    16 int32 features/row  (Java)
 *  20 int32 max rows             56 int32 message bytes  20 int32 outputs/row   (Java)
 *  24 int32 max features         64 int64 heartbeat (Py) 24 int64 deadline, gateway clock ns (Java)
 *  28 int32 max outputs/row     128 int64 state (Py)     32 int32 routing bucket, -1: no key (Java)
 *                                                        40 int64 pinned version's number, -1: none (Java)
 *                                                        64 int64 response seq  (Python, written last)
 *                               192 + 64 w int64 sleep   72 int32 outcome: 1 scored, 2 failed
 *                                   word of worker w     76 int32 error code, 80 int32 message length
 *                                                        88 int64 answered at, gateway clock ns (Python)
 *                                                        96 int64 version that scored, as its number; -1: not a
 *                                                               number (Python)
 *                                                       128 bytes message (UTF-8)
 *                                                   featuresOffset float32 features; scoresOffset float32 scores
 * </pre>
 * Slot {@code i} is served by worker {@code i % workers}. Every word has one writer, named above.
 */
public final class RingLayout {
    public static final long MAGIC = 0x314D485347524353L; // "SCRGSHM1", little-endian
    public static final int VERSION = 2;
    public static final int HEADER_BYTES = 4096;
    public static final int MAX_WORKERS = 32;

    static final int H_MAGIC = 0;
    static final int H_VERSION = 8;
    static final int H_SLOTS = 12;
    static final int H_WORKERS = 16;
    static final int H_MAX_ROWS = 20;
    static final int H_MAX_FEATURES = 24;
    static final int H_MAX_WIDTH = 28;
    static final int H_SLOT_STRIDE = 32;
    static final int H_SLOTS_OFFSET = 40;
    static final int H_FEATURES_OFFSET = 48;
    static final int H_SCORES_OFFSET = 52;
    static final int H_MESSAGE_BYTES = 56;
    static final int H_HEARTBEAT = 64;
    static final int H_STATE = 128;
    static final int H_SLEEP = 192;
    static final int SLEEP_STRIDE = 64;

    static final int S_REQ_SEQ = 0;
    static final int S_MODEL = 8;
    static final int S_ROWS = 12;
    static final int S_FEATURES = 16;
    static final int S_WIDTH = 20;
    static final int S_DEADLINE = 24;
    static final int S_BUCKET = 32;
    static final int S_PINNED = 40;
    static final int S_RESP_SEQ = 64;
    static final int S_OUTCOME = 72;
    static final int S_CODE = 76;
    static final int S_MESSAGE_LENGTH = 80;
    static final int S_ANSWERED = 88;
    static final int S_SERVED = 96;
    static final int S_MESSAGE = 128;

    /** Header state word. */
    public static final long SERVING = 1;
    public static final long CLOSED = 2;
    /** Slot outcome word. */
    public static final int SCORED = 1;
    public static final int FAILED = 2;

    private final int slots;
    private final int workers;
    private final int maxRows;
    private final int maxFeatures;
    private final int maxWidth;
    private final int stride;
    private final int slotsOffset;
    private final int featuresOffset;
    private final int scoresOffset;
    private final int messageBytes;

    private RingLayout(int slots, int workers, int maxRows, int maxFeatures, int maxWidth, int stride,
                       int slotsOffset, int featuresOffset, int scoresOffset, int messageBytes) {
        this.slots = slots;
        this.workers = workers;
        this.maxRows = maxRows;
        this.maxFeatures = maxFeatures;
        this.maxWidth = maxWidth;
        this.stride = stride;
        this.slotsOffset = slotsOffset;
        this.featuresOffset = featuresOffset;
        this.scoresOffset = scoresOffset;
        this.messageBytes = messageBytes;
    }

    /**
     * Reads and checks the header the gateway wrote: magic, version, and that every region lies inside
     * {@code memory} and is aligned as the protocol needs (8 bytes for the words, 4 for the floats).
     *
     * @throws IllegalStateException naming what is wrong
     */
    public static RingLayout read(ByteBuffer memory) {
        ByteBuffer m = memory.duplicate().order(ByteOrder.nativeOrder());
        if (m.capacity() < HEADER_BYTES || m.getLong(H_MAGIC) != MAGIC) {
            throw new IllegalStateException("not a Scoregate ring: bad magic or shorter than its header");
        }
        if (m.getInt(H_VERSION) != VERSION) {
            throw new IllegalStateException("ring layout version " + m.getInt(H_VERSION) + ", this client reads "
                    + VERSION + "; upgrade the client or the gateway");
        }
        long stride = m.getLong(H_SLOT_STRIDE);
        long slotsOffset = m.getLong(H_SLOTS_OFFSET);
        RingLayout layout = new RingLayout(m.getInt(H_SLOTS), m.getInt(H_WORKERS), m.getInt(H_MAX_ROWS),
                m.getInt(H_MAX_FEATURES), m.getInt(H_MAX_WIDTH), (int) stride, (int) slotsOffset,
                m.getInt(H_FEATURES_OFFSET), m.getInt(H_SCORES_OFFSET), m.getInt(H_MESSAGE_BYTES));
        layout.check(m.capacity(), stride, slotsOffset);
        return layout;
    }

    private void check(int capacity, long rawStride, long rawSlotsOffset) {
        boolean ok = slots > 0 && workers > 0 && workers <= MAX_WORKERS && maxRows > 0 && maxFeatures > 0
                && maxWidth > 0 && rawStride == stride && rawSlotsOffset == slotsOffset && stride % 64 == 0
                && slotsOffset >= HEADER_BYTES && slotsOffset % 64 == 0 && messageBytes >= 0
                && S_MESSAGE + (long) messageBytes <= featuresOffset && featuresOffset % 4 == 0
                && featuresOffset + (long) maxRows * maxFeatures * Float.BYTES <= scoresOffset
                && scoresOffset % 4 == 0 && scoresOffset + (long) maxRows * maxWidth * Float.BYTES <= stride
                && slotsOffset + (long) slots * stride <= capacity;
        if (!ok) {
            throw new IllegalStateException("inconsistent ring header: " + this + ", stride " + rawStride
                    + ", slots at " + rawSlotsOffset + ", mapping of " + capacity + " bytes");
        }
    }

    public int slots() {
        return slots;
    }

    public int workers() {
        return workers;
    }

    public int maxRows() {
        return maxRows;
    }

    public int maxFeatures() {
        return maxFeatures;
    }

    public int maxWidth() {
        return maxWidth;
    }

    public int messageBytes() {
        return messageBytes;
    }

    /** Byte offset of slot {@code slot}'s header from the ring's base. */
    public int slot(int slot) {
        return slotsOffset + slot * stride;
    }

    /** Byte offset of slot {@code slot}'s features. */
    public int features(int slot) {
        return slot(slot) + featuresOffset;
    }

    /** Byte offset of slot {@code slot}'s scores. */
    public int scores(int slot) {
        return slot(slot) + scoresOffset;
    }

    /** Bytes of features one slot holds: {@code maxRows x maxFeatures x 4}. */
    public long featureCapacity() {
        return (long) maxRows * maxFeatures * Float.BYTES;
    }

    /** Bytes of scores one slot holds: {@code maxRows x maxWidth x 4}. */
    public long scoreCapacity() {
        return (long) maxRows * maxWidth * Float.BYTES;
    }

    /** Byte offset of worker {@code worker}'s sleep word. */
    public int sleepWord(int worker) {
        return H_SLEEP + SLEEP_STRIDE * worker;
    }

    /** The worker that serves slot {@code slot}. */
    public int workerOf(int slot) {
        return slot % workers;
    }

    @Override
    public String toString() {
        return "RingLayout[" + slots + " slots x " + maxRows + " rows x " + maxFeatures + " features -> " + maxWidth
                + " outputs, " + workers + " workers, stride " + stride + "]";
    }

    /**
     * For tests and Java stand-ins for the gateway: formats {@code memory} as Python's {@code SharedRing} does.
     * Returns the layout; the memory must hold {@link #requiredBytes}.
     */
    public static RingLayout format(ByteBuffer memory, int slots, int workers, int maxRows, int maxFeatures,
                                    int maxWidth) {
        ByteBuffer m = memory.duplicate().order(ByteOrder.nativeOrder());
        int featuresOffset = 1024;
        int scoresOffset = featuresOffset + align(maxRows * maxFeatures * Float.BYTES);
        int stride = align(scoresOffset + align(maxRows * maxWidth * Float.BYTES));
        m.putLong(H_MAGIC, MAGIC);
        m.putInt(H_VERSION, VERSION);
        m.putInt(H_SLOTS, slots);
        m.putInt(H_WORKERS, workers);
        m.putInt(H_MAX_ROWS, maxRows);
        m.putInt(H_MAX_FEATURES, maxFeatures);
        m.putInt(H_MAX_WIDTH, maxWidth);
        m.putLong(H_SLOT_STRIDE, stride);
        m.putLong(H_SLOTS_OFFSET, HEADER_BYTES);
        m.putInt(H_FEATURES_OFFSET, featuresOffset);
        m.putInt(H_SCORES_OFFSET, scoresOffset);
        m.putInt(H_MESSAGE_BYTES, featuresOffset - S_MESSAGE);
        m.putLong(H_STATE, SERVING);
        return read(m);
    }

    /** Bytes a ring of this shape occupies (as {@link #format} lays it out). */
    public static int requiredBytes(int slots, int maxRows, int maxFeatures, int maxWidth) {
        int scoresOffset = 1024 + align(maxRows * maxFeatures * Float.BYTES);
        int stride = align(scoresOffset + align(maxRows * maxWidth * Float.BYTES));
        return HEADER_BYTES + slots * stride;
    }

    private static int align(int n) {
        return (n + 63) / 64 * 64;
    }
}
