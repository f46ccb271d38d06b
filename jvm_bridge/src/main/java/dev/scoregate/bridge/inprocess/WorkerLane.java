package dev.scoregate.bridge.inprocess;

import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.UnknownModelException;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;

/**
 * One Python worker's door into an {@link InProcessGateway}: it takes a batch, scores it straight from direct
 * buffers, and completes it. Two Java calls per batch, whatever its size; nothing is read field by field.
 *
 * <h2>Threads</h2>
 * A lane belongs to one thread, the Python worker that owns it, for its whole life: {@link #take}, {@link #complete}
 * and {@link #fail} are not thread-safe and must not be called concurrently, nor from request threads. Everything
 * that blocks or copies runs inside these calls, on that thread, in Java (JPype has released the GIL). Only
 * {@link InProcessGateway#close()} may run concurrently, from any thread.
 *
 * <h2>Protocol</h2>
 * <ol>
 *   <li>Once: map {@link #control()} as 16 native int64s and {@link #staging()} as bytes; map a registered arena's
 *       buffer ({@link InProcessGateway#arena(int)}) the first time control names it.</li>
 *   <li>{@code n = take(timeoutNanos)}: {@code -1} means closed (stop), {@code 0} timed out (take again), {@code n > 0}
 *       a batch of {@code n} requests described by the control block.</li>
 *   <li>Read {@code rows x features} float32 at {@code [3]} of buffer {@code [2]}; write {@code rows x outputWidth}
 *       float32, row-major, at {@code [4]} of the same buffer.</li>
 *   <li>Exactly one of {@code complete()} or {@code fail(code, message)}; then take again. Calling {@code take} with
 *       a batch outstanding is an {@link IllegalStateException} (and the batch stays outstanding).</li>
 *   <li>Whenever the version Python scores a model with is not the one it last named to this lane (a hot swap,
 *       or the first batch), {@link #serving(int, String)} before scoring: results name the version that ran.</li>
 * </ol>
 *
 * <h2>Control block: the contract with Python</h2>
 * A direct, native-order buffer of 16 longs, allocated once, written by {@code take} when it returns {@code n > 0}:
 * <pre>
 * [0] model index: position of the model in the ModelSpec list the gateway was built with (then the models added
 *     since, InProcessGateway.addModel), or InProcessGateway.canaryRoute(index) for a model's canary route
 * [1] rows: total rows of the batch, 1 .. maxBatchRows
 * [2] buffer id: -1 = this lane's staging(); k &gt;= 0 = registered arena k (InProcessGateway.arena(k))
 * [3] byte offset of the input features (float32, rows x features, row-major) in that buffer
 * [4] byte offset of the outputs (float32, rows x outputWidth, row-major) in that buffer
 * [5] number of requests in the batch (take's return value)
 * [6] features per row (the model's)
 * [7] outputWidth: outputs per row (the model's)
 * [8] written by Python before complete(): CPU nanoseconds of the scoring thread for the batch (0: not measured).
 *     It tells the queue which batches run short enough for one lane to gather their requests (see RequestQueue)
 * [9] written by Python after an in-place batch scored, before complete(): the batch's sequence number, [10].
 *     Optional; it lets a caller spinning for that request return at once instead of after complete(), for
 *     batches known to score for at least gatherNanos (RequestQueue.runsLong)
 * [10] sequence number of an in-place batch (buffer k &gt;= 0), new with each; stale for a staged batch
 * [11..15] reserved, 0
 * </pre>
 * Buffer {@code -1} (staged): Java copied each request's rows into staging, contiguously from offset 0, in batch
 * order; {@code [4]} is {@link #stagingOutputOffset()}. Buffer {@code k} (in place): the batch is one request on a
 * slot of registered arena {@code k}; the offsets are the slot's own ({@code Slot.offset()}, {@code Slot.scoresOffset()}),
 * both 64-byte aligned. All offsets are multiples of 4.
 */
public final class WorkerLane {
    /** {@link #fail} code: {@code InvalidInputError} -&gt; {@link dev.scoregate.bridge.InvalidInputException}. */
    public static final int INVALID_INPUT = 1;
    /** {@link #fail} code: {@code ModelNotFoundError} -&gt; {@link dev.scoregate.bridge.UnknownModelException}. */
    public static final int UNKNOWN_MODEL = 2;
    /** {@link #fail} code: {@code DeadlineExceededError} -&gt; {@link dev.scoregate.bridge.DeadlineExceededException}. */
    public static final int DEADLINE_EXCEEDED = 3;
    /** {@link #fail} code: {@code UnavailableError} -&gt; {@link dev.scoregate.bridge.GatewayUnavailableException}. */
    public static final int UNAVAILABLE = 4;

    /** Longs in {@link #control()}. */
    public static final int CONTROL_LONGS = 16;
    /** Buffer id in {@code control[2]} that means {@link #staging()}. */
    public static final int STAGING = -1;
    /** Alignment of {@link #staging()}'s base and of its output region. */
    public static final int ALIGNMENT = 64;

    private final InProcessGateway gateway;
    private final RequestQueue queue;
    private final SpinBudget spin;
    private final int index;
    private final ByteBuffer control;
    private final ByteBuffer staging;
    private final int outputOffset;
    private final RequestQueue.Batch batch;
    /** Row of the staged batch each request starts at; parallel to batch.items. */
    private final int[] rowStart;
    private boolean staged;
    /** Between a take that returned a batch and the next take: this lane counts as a busy core. */
    private boolean busy;
    /** The last in-place batch's sequence number, {@code control[10]}. */
    private long sequence;
    /** Per model index: the version this lane's Python scores it with ({@link #serving}); results name it. */
    private final ModelId[] serving;
    /** Requests of this lane answered on Python's mark by their own callers (see {@link #scored}). */
    private final LongAdder earlyAnswers = new LongAdder();

    /** Acquire reads of the control block's longs, in native order (the block is 64-byte aligned). */
    private static final VarHandle LONGS = MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.nativeOrder());
    private static final int SCORED = 9 * Long.BYTES;
    private static final int SEQUENCE = 10 * Long.BYTES;

    WorkerLane(InProcessGateway gateway, RequestQueue queue, SpinBudget spin, int index, int maxBatchRows, int maxFeatures,
               int maxOutputWidth) {
        this.gateway = gateway;
        this.queue = queue;
        this.spin = spin;
        this.index = index;
        this.control = aligned(CONTROL_LONGS * Long.BYTES);
        long inputBytes = (long) maxBatchRows * maxFeatures * Float.BYTES;
        long outputOffset = (inputBytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
        long total = outputOffset + (long) maxBatchRows * maxOutputWidth * Float.BYTES;
        if (total > Integer.MAX_VALUE - 2 * ALIGNMENT) {
            throw new IllegalArgumentException("a lane's staging buffer for maxBatchRows " + maxBatchRows + " x "
                    + maxFeatures + " features (+ outputs) needs " + total + " bytes; a ByteBuffer holds at most "
                    + "2 GiB. Lower maxBatchRows");
        }
        this.outputOffset = (int) outputOffset;
        this.staging = aligned((int) total);
        this.batch = new RequestQueue.Batch(maxBatchRows);
        this.rowStart = new int[maxBatchRows];
        this.serving = new ModelId[gateway.routes()]; // filled on first use: names may be added after start
    }

    /** The version results of {@code model} name: the last {@link #serving(int, String)}, else the spec's. */
    private ModelId servedBy(int model) {
        ModelId id = serving[model];
        if (id == null) {
            id = serving[model] = gateway.spec(model).id();
        }
        return id;
    }

    private static ByteBuffer aligned(int bytes) {
        // alignedSlice() rounds the end down as well as the start up: ask for whole cache lines. Like every slice it
        // comes back BIG_ENDIAN: set the order on what we keep.
        int lines = (bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
        return ByteBuffer.allocateDirect(lines + ALIGNMENT - 1).alignedSlice(ALIGNMENT).order(ByteOrder.nativeOrder());
    }

    /** This lane's number, {@code 0 <= index < workers}. */
    public int index() {
        return index;
    }

    /** The control block (layout in the class comment). The same memory on every call; position 0, native order. */
    public ByteBuffer control() {
        return control.duplicate().order(ByteOrder.nativeOrder());
    }

    /**
     * This lane's staging buffer: direct, native order, base 64-byte aligned; {@code maxBatchRows x maxFeatures}
     * float32 inputs from offset 0, then {@code maxBatchRows x maxOutputWidth} float32 outputs from
     * {@link #stagingOutputOffset()} (maxima over the served models). The same memory on every call.
     */
    public ByteBuffer staging() {
        return staging.duplicate().order(ByteOrder.nativeOrder());
    }

    /** Byte offset of the output region in {@link #staging()}, a multiple of 64; what {@code control[4]} says. */
    public int stagingOutputOffset() {
        return outputOffset;
    }

    /**
     * Waits up to {@code timeoutNanos} ({@code <= 0}: not at all) for queued requests and takes a batch of them:
     * the oldest request of any model, plus younger ones of the same model up to maxBatchRows rows (also those that
     * arrive within maxDelayNanos, when that is &gt; 0). Requests whose deadline passed are failed and skipped. A
     * single request on a registered arena is handed over in place; anything else is copied into staging here.
     *
     * @return the number of requests in the batch, described by {@link #control()}; 0 if none came in time; -1
     *         once the gateway is closed. An interrupt does not cut the wait short (its status is kept).
     * @throws IllegalStateException if the previous batch was not completed or failed
     */
    public int take(long timeoutNanos) {
        if (batch.size != 0) {
            throw new IllegalStateException(this + ": the previous batch of " + batch.size + " requests is still "
                    + "outstanding; call complete() or fail() first");
        }
        if (busy) {
            busy = false;
            spin.release();
        }
        long until = System.nanoTime() + Math.max(0, timeoutNanos);
        while (true) {
            int n = queue.take(index, until - System.nanoTime(), batch);
            failExpired();
            if (n <= 0 || prepare()) {
                if (n > 0) {
                    busy = true;
                    spin.busy();
                }
                return n <= 0 ? n : batch.size;
            }
            // Every request of the batch was abandoned before we got to it: take again, within the same timeout.
        }
    }

    /**
     * Python scores {@code model} with {@code version} from now on (a hot swap happened, or the version differs from
     * the one listed at start): results of this lane, including the outstanding batch's, name it. Call it only when
     * the version changes; it allocates.
     *
     * @param model   the model's index
     * @param version the version that scores; empty for an unversioned model (named "0", as at start)
     */
    public void serving(int model, String version) {
        ModelId id = new ModelId(gateway.spec(model).name(), version.isEmpty() ? "0" : version);
        serving[model] = id;
        for (int i = 0; i < batch.size; i++) {
            if (batch.items[i].model == model) {
                batch.items[i].servedBy = id;
            }
        }
    }

    /** The version this lane last named for {@code model} (for tests and diagnostics). */
    public ModelId serving(int model) {
        return servedBy(model);
    }

    /**
     * The batch was scored: copies staged outputs to each request's score buffer and completes every request.
     * Requests whose callers gave up meanwhile are skipped (their buffers are not written).
     *
     * @throws IllegalStateException if no batch is outstanding
     */
    public void complete() {
        checkOutstanding("complete");
        try {
            int model = batch.items[0].model;
            queue.scored(model, batch.rows, control.getLong(8 * Long.BYTES));
            control.putLong(8 * Long.BYTES, 0);
            int width = gateway.spec(model).outputWidth();
            for (int i = 0; i < batch.size; i++) {
                Pending p = batch.items[i];
                if (!p.claim()) {
                    continue; // abandoned at its deadline while staged
                }
                String pinned = p.request.model().version();
                if (pinned != null && !pinned.equals(p.servedBy.version())) {
                    p.fail(notServed(p.servedBy)); // scored by another version: the pin is not honoured
                    continue;
                }
                if (staged) {
                    int bytes = p.rows() * width * Float.BYTES;
                    whole(p.request.scoreBuffer(), bytes)
                            .put(0, staging, outputOffset + rowStart[i] * width * Float.BYTES, bytes);
                }
                p.succeed();
            }
        } finally {
            batch.clear();
            queue.returning(index);
        }
    }

    /**
     * The batch failed: fails every request of it with the exception {@code code} maps to, whose message is
     * {@code message} verbatim (Python's: it names the model, the input and the problem). Codes:
     * {@value #INVALID_INPUT} InvalidInputException, {@value #UNKNOWN_MODEL} UnknownModelException,
     * {@value #DEADLINE_EXCEEDED} DeadlineExceededException, {@value #UNAVAILABLE} GatewayUnavailableException,
     * anything else ScoregateException.
     *
     * @throws IllegalStateException if no batch is outstanding
     */
    public void fail(int code, String message) {
        checkOutstanding("fail");
        try {
            Failure failure = Failure.fromGateway(code, message, gateway.loaded());
            for (int i = 0; i < batch.size; i++) {
                Pending p = batch.items[i];
                if (p.claim()) {
                    p.fail(failure);
                }
            }
        } finally {
            batch.clear();
            queue.returning(index);
        }
    }

    private static Failure notServed(ModelId servedBy) {
        return model -> UnknownModelException.fromGateway(model, "unknown model '" + model + "': that version does not "
                + "serve in process; " + servedBy + " does", List.of(servedBy.toString()));
    }

    /** Decides in place or staged and writes the control block; false if nothing is left to score. */
    private boolean prepare() {
        Pending first = batch.items[0];
        ModelSpec spec = gateway.spec(first.model);
        if (batch.size == 1 && first.arenaId >= 0) {
            if (first.claimInPlace()) {
                staged = false;
                first.servedBy = servedBy(first.model);
                describe(first.model, first.rows(), first.arenaId, first.featureOffset, first.scoreOffset, 1, spec);
                long seq = ++sequence;
                control.putLong(SEQUENCE, seq);
                // Its caller may take the scores once Python marks the batch; not a pinned request, which waits for
                // complete() to check that its version scored it.
                if (queue.runsLong(first.model, first.rows()) && first.request.model().version() == null) {
                    first.scoredBy(this, seq);
                }
                return true;
            }
            batch.clear();
            return false;
        }
        int rowBytes = spec.features() * Float.BYTES;
        int live = 0;
        int rows = 0;
        for (int i = 0; i < batch.size; i++) {
            Pending p = batch.items[i];
            if (p.state == Pending.ABANDONED) {
                continue; // if it is abandoned after this check, complete() skips it instead
            }
            int bytes = p.rows() * rowBytes;
            staging.put(rows * rowBytes, whole(p.request.featureBuffer(), bytes), 0, bytes);
            p.servedBy = servedBy(first.model);
            batch.items[live] = p;
            rowStart[live] = rows;
            rows += p.rows();
            live++;
        }
        for (int i = live; i < batch.size; i++) {
            batch.items[i] = null;
        }
        batch.size = live;
        batch.rows = rows;
        if (live == 0) {
            return false;
        }
        staged = true;
        describe(first.model, rows, STAGING, 0, outputOffset, live, spec);
        return true;
    }

    /**
     * Whether Python marked in-place batch {@code seq} scored ({@code control[9]}): its outputs are in the request's
     * slot. Read by that request's spinning caller, on its own thread.
     */
    boolean scored(long seq) {
        return (long) LONGS.getAcquire(control, SCORED) == seq;
    }

    /** A caller took its scores on the mark (its own thread). */
    void answeredEarly() {
        earlyAnswers.increment();
    }

    long earlyAnswers() {
        return earlyAnswers.sum();
    }

    private void describe(int model, int rows, int buffer, int inputOffset, int outputOffset, int requests,
                          ModelSpec spec) {
        control.putLong(0, model);
        control.putLong(Long.BYTES, rows);
        control.putLong(2 * Long.BYTES, buffer);
        control.putLong(3 * Long.BYTES, inputOffset);
        control.putLong(4 * Long.BYTES, outputOffset);
        control.putLong(5 * Long.BYTES, requests);
        control.putLong(6 * Long.BYTES, spec.features());
        control.putLong(7 * Long.BYTES, spec.outputWidth());
    }

    private void failExpired() {
        List<Pending> expired = batch.expired;
        if (!expired.isEmpty()) {
            long now = System.nanoTime();
            for (Pending p : expired) {
                p.expire(now);
            }
            expired.clear();
        }
    }

    private void checkOutstanding(String call) {
        if (batch.size == 0) {
            throw new IllegalStateException(this + ": " + call + "() without a batch; call take() first");
        }
    }

    /** Bulk copies check the limit; ScoreRequest ignores position and limit, so look past a caller's limit. */
    private static ByteBuffer whole(ByteBuffer buffer, int bytes) {
        return buffer.limit() >= bytes ? buffer : buffer.duplicate().clear();
    }

    @Override
    public String toString() {
        return "WorkerLane#" + index;
    }
}
