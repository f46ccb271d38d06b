package dev.scoregate.bridge.inprocess;

import dev.scoregate.bridge.DeadlineExceededException;
import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.GatewayUnavailableException;
import dev.scoregate.bridge.InvalidInputException;
import dev.scoregate.bridge.ModelGateway;
import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.Routing;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import dev.scoregate.bridge.ScoregateException;
import dev.scoregate.bridge.UnknownModelException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * The Java half of the in-process (JPype) transport: a {@link ModelGateway} whose request threads never call into
 * Python. {@link #score} checks a request against its model's {@link ModelSpec}, queues it, and parks the calling
 * thread until a lane completes it or its deadline passes. Python worker threads each own a {@link WorkerLane} and
 * call into Java to take batches, score them with ONNX Runtime on the direct buffers, and complete them.
 *
 * <h2>Contract</h2>
 * <ol>
 *   <li>Thread-safe: any number of request threads; each lane belongs to one Python worker ({@link WorkerLane}).</li>
 *   <li>Admission is bounded: beyond {@link Options#queueCapacity()} requests queued and not yet taken, {@code score}
 *       fails at once with {@link GatewayUnavailableException} ("overloaded") instead of queueing.</li>
 *   <li>A request whose deadline passes while queued is withdrawn and fails with {@link DeadlineExceededException};
 *       no worker ever sees it. One being scored from staging is abandoned (its buffers are never written after).
 *       One being scored in place, in its own arena slot, is waited for: Python writes that slot while it runs.</li>
 *   <li>{@link #scoreAsync} futures are completed on the worker's thread (a Python worker's), or, when the deadline
 *       passes first, on the JDK's {@link CompletableFuture#delayedExecutor} thread (as {@code orTimeout} does).
 *       Dependent stages added with non-async methods run there and hold that thread up: attach with the
 *       {@code *Async} variants, or {@code join}.</li>
 *   <li>{@link #close()} fails every queued and every later request with {@link GatewayUnavailableException} and
 *       makes {@link WorkerLane#take} return -1. Batches already taken complete normally. Registering with
 *       {@link dev.scoregate.bridge.ModelGateways} is the host's job.</li>
 *   <li>Canaries: while the host has set a canary share for a name ({@link #route}), a request for that name that
 *       pins no version and carries a routing key whose bucket falls in the share is queued on the name's canary
 *       route, model index {@link #canaryRoute canaryRoute(i)} for model {@code i} ({@link #routes()}), and so is
 *       one that pins the candidate; the lane's Python scores that route with the candidate, and the result names
 *       the version that scored.</li>
 *   <li>Pins: a request naming {@code name@version} is scored by that version or fails with
 *       {@link UnknownModelException}: in process, a name serves its live version and its canary's, and a pin of
 *       any other version (one listed at start that a hot swap replaced) fails once its batch is scored.</li>
 *   <li>New names: the host {@link #addModel adds} a name deployed after start under a spare model index; requests
 *       for it are admitted from then on. Before, they fail with {@link UnknownModelException}.</li>
 * </ol>
 *
 * <p>Request threads wait with {@link java.util.concurrent.locks.LockSupport#parkNanos}; the lane unparks them. The
 * queue is described on the package-private {@code RequestQueue}: one short lock for linking, never held while
 * copying or scoring.
 */
public final class InProcessGateway implements ModelGateway, AutoCloseable {

    /**
     * How the gateway queues, batches and waits.
     *
     * @param workers         lanes, one per Python worker thread; default {@value #DEFAULT_WORKERS}
     * @param maxBatchRows    most rows one batch (one ONNX Runtime run) carries; also the most rows one request may
     *                        have; default {@value #DEFAULT_MAX_BATCH_ROWS}
     * @param maxDelayNanos   how long a lane holding fewer than maxBatchRows rows may wait for more requests of the
     *                        same model (never past a member's deadline); default 0: never wait to fill a batch
     * @param queueCapacity   requests queued and not yet taken beyond which {@code score} fails fast as overloaded;
     *                        default {@value #DEFAULT_QUEUE_CAPACITY}
     * @param callerSpinNanos how long a synchronous caller may busy-wait for its result before parking, when a core
     *                        is free (see below); default {@value #DEFAULT_CALLER_SPIN_NANOS}; 0: always park
     * @param laneSpinNanos   how long an idle lane may busy-wait for work before parking, when a core is free;
     *                        default {@value #DEFAULT_LANE_SPIN_NANOS}; 0: always park
     * @param gatherNanos     batches that score in less than this (by the lanes' own CPU time) gather on the lane
     *                        already scoring instead of waking or feeding another: default
     *                        {@value #DEFAULT_GATHER_NANOS}; 0: every arrival may use an idle lane
     * @param spareModels     names that may be added after start ({@link #addModel}): model indices reserved
     *                        beyond the listed models; default {@value #DEFAULT_SPARE_MODELS}
     *
     * <p>Gathering: every lane is a Python thread, and Python runs one thread at a time (the GIL). Two lanes only
     * win when their ONNX Runtime runs, which release the GIL, are long enough to overlap; for short batches they
     * take turns on the GIL and each turn costs a wake-up (see {@code RequestQueue}).
     *
     * <p>Spinning: a parked thread costs a wake-up per hand-off, 30-50 us on a virtual machine whose other vCPU went
     * idle, and a call makes two hand-offs. Threads spin only while scoring lanes plus spinning threads are fewer
     * than the cores, so spinning makes a lightly loaded gateway fast and changes nothing on a saturated one.
     */
    public record Options(int workers, int maxBatchRows, long maxDelayNanos, int queueCapacity, long callerSpinNanos,
                          long laneSpinNanos, long gatherNanos, int spareModels) {
        public static final int DEFAULT_WORKERS = 2;
        public static final int DEFAULT_MAX_BATCH_ROWS = 1024;
        public static final int DEFAULT_QUEUE_CAPACITY = 8192;
        public static final long DEFAULT_CALLER_SPIN_NANOS = 1_000_000;
        public static final long DEFAULT_LANE_SPIN_NANOS = 50_000;
        public static final long DEFAULT_GATHER_NANOS = 100_000;
        public static final int DEFAULT_SPARE_MODELS = 32;

        public Options {
            if (workers <= 0 || maxBatchRows <= 0 || maxDelayNanos < 0 || queueCapacity <= 0 || callerSpinNanos < 0
                    || laneSpinNanos < 0 || gatherNanos < 0 || spareModels < 0) {
                throw new IllegalArgumentException("workers, maxBatchRows and queueCapacity must be > 0 and "
                        + "maxDelayNanos, callerSpinNanos, laneSpinNanos, gatherNanos and spareModels >= 0, got "
                        + workers + ", " + maxBatchRows + ", " + maxDelayNanos + ", " + queueCapacity + ", "
                        + callerSpinNanos + ", " + laneSpinNanos + ", " + gatherNanos + ", " + spareModels);
            }
        }

        /** With {@value #DEFAULT_SPARE_MODELS} spare model indices. */
        public Options(int workers, int maxBatchRows, long maxDelayNanos, int queueCapacity, long callerSpinNanos,
                       long laneSpinNanos, long gatherNanos) {
            this(workers, maxBatchRows, maxDelayNanos, queueCapacity, callerSpinNanos, laneSpinNanos, gatherNanos,
                    DEFAULT_SPARE_MODELS);
        }

        /** With the default spins and gathering. */
        public Options(int workers, int maxBatchRows, long maxDelayNanos, int queueCapacity) {
            this(workers, maxBatchRows, maxDelayNanos, queueCapacity, DEFAULT_CALLER_SPIN_NANOS,
                    DEFAULT_LANE_SPIN_NANOS, DEFAULT_GATHER_NANOS);
        }

        public static Options defaults() {
            return new Options(DEFAULT_WORKERS, DEFAULT_MAX_BATCH_ROWS, 0, DEFAULT_QUEUE_CAPACITY);
        }

        public Options withWorkers(int workers) {
            return new Options(workers, maxBatchRows, maxDelayNanos, queueCapacity, callerSpinNanos, laneSpinNanos,
                    gatherNanos, spareModels);
        }

        public Options withMaxBatchRows(int maxBatchRows) {
            return new Options(workers, maxBatchRows, maxDelayNanos, queueCapacity, callerSpinNanos, laneSpinNanos,
                    gatherNanos, spareModels);
        }

        public Options withMaxDelayNanos(long maxDelayNanos) {
            return new Options(workers, maxBatchRows, maxDelayNanos, queueCapacity, callerSpinNanos, laneSpinNanos,
                    gatherNanos, spareModels);
        }

        public Options withQueueCapacity(int queueCapacity) {
            return new Options(workers, maxBatchRows, maxDelayNanos, queueCapacity, callerSpinNanos, laneSpinNanos,
                    gatherNanos, spareModels);
        }

        /** Batches scoring in less than {@code gatherNanos} gather on one lane; 0: never. */
        public Options withGatherNanos(long gatherNanos) {
            return new Options(workers, maxBatchRows, maxDelayNanos, queueCapacity, callerSpinNanos, laneSpinNanos,
                    gatherNanos, spareModels);
        }

        /** Both spins; {@code (0, 0)} parks at once, as a gateway on a shared, saturated host might prefer. */
        public Options withSpin(long callerSpinNanos, long laneSpinNanos) {
            return new Options(workers, maxBatchRows, maxDelayNanos, queueCapacity, callerSpinNanos, laneSpinNanos,
                    gatherNanos, spareModels);
        }

        /** Model indices reserved for names added after start ({@link #addModel}). */
        public Options withSpareModels(int spareModels) {
            return new Options(workers, maxBatchRows, maxDelayNanos, queueCapacity, callerSpinNanos, laneSpinNanos,
                    gatherNanos, spareModels);
        }
    }

    private static final Failure CLOSED = model -> new GatewayUnavailableException(model,
            "the in-process gateway closed before a worker took the request; never scored", null);

    /**
     * What the gateway serves: replaced whole (copy on write, under {@code lifecycle}) when a name is added, read once
     * per request.
     *
     * @param specs    by model index, {@code capacity} long; null past {@code count}
     * @param servedBy {@code specs[i].id()}
     * @param index    both {@code name@version} and, for the first spec of each name, the bare name
     */
    private record Table(ModelSpec[] specs, ModelId[] servedBy, Map<ModelId, Integer> index, List<String> names,
                         List<String> loaded, int count) {
    }

    private volatile Table table;
    /** Model indices: the listed models plus {@link Options#spareModels()}; canary routes start here. */
    private final int capacity;
    /** The widest input and output a lane stages (the listed models'): names added later must fit. */
    private final int maxFeatures;
    private final int maxWidth;
    private final Options options;
    private final RequestQueue queue;
    private final SpinBudget spin = SpinBudget.forThisMachine();
    private final WorkerLane[] lanes;
    /** Copy on write: the index is the registration id. */
    private volatile FeatureArena[] arenas = new FeatureArena[0];
    /** Copy on write, per listed model: keyed requests whose bucket is below this go to its canary route; 0: none. */
    private volatile int[] canaryThresholds;
    /** Copy on write, per listed model: the canary's candidate version (requests pinning it take the route), or null. */
    private volatile String[] canaryVersions;
    private volatile boolean closed;
    /** Orders newArena against close (a private lock: the gateway object itself is shared with callers). */
    private final Object lifecycle = new Object();

    /**
     * @param models  the served models, in the order whose positions lanes report as model index. Several versions
     *                of one name may be listed; a request that names no version gets the first listed.
     * @param options queueing and batching
     * @throws IllegalArgumentException if {@code models} is empty or lists a {@code name@version} twice, or a
     *                                  lane's staging buffer would exceed 2 GiB
     */
    public InProcessGateway(List<ModelSpec> models, Options options) {
        this.options = Objects.requireNonNull(options, "options");
        ModelSpec[] listed = List.copyOf(models).toArray(new ModelSpec[0]);
        if (listed.length == 0) {
            throw new IllegalArgumentException("an InProcessGateway needs at least one model");
        }
        this.capacity = listed.length + options.spareModels();
        this.table = tableOf(Arrays.copyOf(listed, capacity), listed.length);
        int features = 0;
        int width = 0;
        for (ModelSpec spec : listed) {
            features = Math.max(features, spec.features());
            width = Math.max(width, spec.outputWidth());
        }
        this.maxFeatures = features;
        this.maxWidth = width;
        this.canaryThresholds = new int[capacity];
        this.canaryVersions = new String[capacity];
        this.queue = new RequestQueue(2 * capacity, options.workers(), options.queueCapacity(),
                options.maxBatchRows(), options.maxDelayNanos(), spin, options.laneSpinNanos(), options.gatherNanos());
        this.lanes = new WorkerLane[options.workers()];
        for (int i = 0; i < lanes.length; i++) {
            lanes[i] = new WorkerLane(this, queue, spin, i, options.maxBatchRows(), maxFeatures, maxWidth);
        }
    }

    /** With {@link Options#defaults()}. */
    public InProcessGateway(List<ModelSpec> models) {
        this(models, Options.defaults());
    }

    /** The lookup table of {@code specs[0, count)}; throws if a {@code name@version} is listed twice. */
    private static Table tableOf(ModelSpec[] specs, int count) {
        ModelId[] servedBy = new ModelId[specs.length];
        Map<ModelId, Integer> index = new HashMap<>();
        LinkedHashSet<String> names = new LinkedHashSet<>();
        List<String> loaded = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            servedBy[i] = specs[i].id();
            if (index.put(servedBy[i], i) != null) {
                throw new IllegalArgumentException("model " + servedBy[i] + " is listed twice");
            }
            index.putIfAbsent(new ModelId(specs[i].name(), null), i);
            names.add(specs[i].name());
            loaded.add(servedBy[i].toString());
        }
        // never changed once published: a HashMap keeps the admission lookup as it was
        return new Table(specs, servedBy, index, List.copyOf(names), List.copyOf(loaded), count);
    }

    /**
     * Serves a name that was not listed at start (deployed since), under the next spare model index: requests for it
     * are admitted from the moment this returns. The Python host calls it, before any request can reach the index,
     * when its engine starts serving a new name; a lane then scores the index with that name's live version.
     *
     * @return the new model's index
     * @throws IllegalArgumentException    if the name is already served, or its rows are wider than a lane stages
     *                                     (the widest listed model's features and outputs)
     * @throws IllegalStateException       if every spare index is taken ({@link Options#spareModels()})
     * @throws GatewayUnavailableException if the gateway is closed
     */
    public int addModel(ModelSpec spec) {
        Objects.requireNonNull(spec, "spec");
        synchronized (lifecycle) {
            if (closed) {
                throw closed(spec.id().toString());
            }
            Table current = table;
            if (current.index().containsKey(new ModelId(spec.name(), null))) {
                throw new IllegalArgumentException("model '" + spec.name() + "' is already served in process");
            }
            if (spec.features() > maxFeatures || spec.outputWidth() > maxWidth) {
                throw new IllegalArgumentException("model " + spec.id() + " takes " + spec.features()
                        + " features and gives " + spec.outputWidth() + " outputs per row, but the lanes stage at most "
                        + maxFeatures + " and " + maxWidth + " (the widest models listed at start): restart the "
                        + "host to serve it in process");
            }
            if (current.count() == capacity) {
                throw new IllegalStateException("cannot add model " + spec.id() + ": all " + options.spareModels()
                        + " spare model indices are taken (Options.spareModels); restart the host to serve it");
            }
            ModelSpec[] specs = current.specs().clone();
            specs[current.count()] = spec;
            table = tableOf(specs, current.count() + 1);
            return current.count();
        }
    }

    @Override
    public ScoreResult score(ScoreRequest request) {
        return admit(request, Thread.currentThread(), null).await(queue, spin, options.callerSpinNanos());
    }

    @Override
    public CompletableFuture<ScoreResult> scoreAsync(ScoreRequest request) {
        CompletableFuture<ScoreResult> future = new CompletableFuture<>();
        try {
            Pending pending = admit(request, null, future);
            long remaining = pending.deadline() - System.nanoTime();
            // Runs on the JDK's delayer thread, as orTimeout's tasks do: the default executor would be a new
            // thread per task on machines with fewer than 3 cores. Usually the request is done by then: a no-op.
            CompletableFuture.delayedExecutor(Math.max(0, remaining), TimeUnit.NANOSECONDS, Runnable::run)
                    .execute(() -> pending.expireAsync(queue));
        } catch (ScoregateException e) {
            future.completeExceptionally(e);
        }
        return future;
    }

    /** Checks {@code request} against its model and queues it; throws what the caller should see. */
    private Pending admit(ScoreRequest request, Thread waiter, CompletableFuture<ScoreResult> future) {
        Objects.requireNonNull(request, "request");
        ModelId named = request.model();
        if (closed) {
            throw closed(named.toString());
        }
        Table served = table;
        Integer model = served.index().get(named);
        if (model == null && named.version() != null) {
            // A version not listed at start (the live one after a hot swap, a canary): checked when scored.
            model = served.index().get(new ModelId(named.name(), null));
        }
        if (model == null) {
            throw new UnknownModelException(named.toString(), served.loaded());
        }
        ModelSpec spec = served.specs()[model];
        if (request.featureCount() != spec.features()) {
            throw new InvalidInputException(named.toString(), "features", "expected " + spec.features()
                    + " features per row, got " + request.featureCount());
        }
        if (request.rows() > options.maxBatchRows()) {
            throw new InvalidInputException(named.toString(), "rows", request.rows() + " rows exceed maxBatchRows "
                    + options.maxBatchRows() + " of this gateway; split the request");
        }
        long scoreBytes = (long) request.rows() * spec.outputWidth() * Float.BYTES;
        if (request.scoreBuffer().capacity() < scoreBytes) {
            throw new InvalidInputException(named.toString(), "scores", "score buffer holds "
                    + request.scoreBuffer().capacity() + " bytes but " + request.rows() + " rows x "
                    + spec.outputWidth() + " outputs x 4 bytes needs " + scoreBytes);
        }
        long now = System.nanoTime();
        if (request.remainingNanos(now) <= 0) {
            throw DeadlineExceededException.overrun(named.toString(), -request.remainingNanos(now),
                    "before the request was queued");
        }
        int arenaId = -1;
        int featureOffset = 0;
        int scoreOffset = 0;
        Optional<FeatureArena.Slot> slot = request.slot();
        if (slot.isPresent() && isRegistered(slot.get().arena())) {
            arenaId = slot.get().arena().registrationId();
            featureOffset = slot.get().offset();
            scoreOffset = slot.get().scoresOffset();
        }
        int route = model;
        String pinned = named.version();
        if (pinned == null) {
            int threshold = canaryThresholds[model];
            if (threshold > 0) {
                int bucket = request.routingBucket();
                if (bucket >= 0 && bucket < threshold) {
                    route = model + capacity; // the canary route of this model
                }
            }
        } else if (pinned.equals(canaryVersions[model])) {
            route = model + capacity;
        }
        Pending pending = new Pending(request, route, served.servedBy()[model], now, arenaId, featureOffset, scoreOffset,
                waiter, future);
        int admitted = queue.offer(pending);
        if (admitted == RequestQueue.OVERLOADED) {
            throw new GatewayUnavailableException(named.toString(), "overloaded: " + options.queueCapacity()
                    + " requests are queued (queueCapacity); shed load or add workers", null);
        }
        if (admitted == RequestQueue.CLOSED) {
            throw closed(named.toString());
        }
        return pending;
    }

    private boolean isRegistered(FeatureArena arena) {
        FeatureArena[] registered = arenas;
        int id = arena.registrationId();
        return id >= 0 && id < registered.length && registered[id] == arena;
    }

    private static GatewayUnavailableException closed(String model) {
        return new GatewayUnavailableException(model, "the in-process gateway is closed (the Python host stopped)",
                null);
    }

    /** The served model names, without versions. */
    @Override
    public List<String> models() {
        return table.names();
    }

    /** The served models, in model-index order (what {@code control[0]} counts in): listed, then added. */
    public List<ModelSpec> specs() {
        Table served = table;
        return List.of(Arrays.copyOf(served.specs(), served.count()));
    }

    /**
     * The spec a request naming {@code model} ({@code "name"} or {@code "name@version"}) is checked against.
     *
     * @throws UnknownModelException if no served model matches
     * @throws InvalidInputException if {@code model} does not parse
     */
    public ModelSpec spec(String model) {
        Table served = table;
        Integer i = served.index().get(ModelId.parse(model));
        if (i == null) {
            throw new UnknownModelException(model, served.loaded());
        }
        return served.specs()[i];
    }

    /** The spec of model index {@code model}, a served model or a canary route ({@link #routes()}); null if unused. */
    ModelSpec spec(int model) {
        return table.specs()[model < capacity ? model : model - capacity];
    }

    /**
     * Model indices a lane may see in {@code control[0]}: {@code [0, c)} the served models, listed ones first in
     * order, then those {@link #addModel added} (c = the listed models + {@link Options#spareModels()}), and
     * {@code [c, 2c)} their canary routes ({@link #canaryRoute}).
     */
    public int routes() {
        return 2 * capacity;
    }

    /** The model index of model {@code model}'s canary route. */
    public int canaryRoute(int model) {
        return Objects.checkIndex(model, capacity) + capacity;
    }

    /**
     * Sends keyed, un-pinned requests for {@code name} whose routing bucket ({@link Routing}) is
     * below {@code threshold}, and requests pinning {@code candidate}, to the name's canary route; a threshold of 0
     * sends no keyed request there, and a null candidate ends the route. Set by the Python host when a rollout changes (the threshold is the rollout's:
     * {@code round(canary% x 100)}). Requests already queued keep their route.
     *
     * @param name      a listed model name, without version
     * @param candidate the rollout's candidate version (a shadow's too, with a threshold of 0), or null for none
     * @param threshold {@code 0 <= threshold <= Routing.BUCKETS}
     * @throws UnknownModelException    if no listed model has that name
     * @throws IllegalArgumentException if {@code threshold} is out of range
     */
    public void route(String name, String candidate, int threshold) {
        Table served = table;
        Integer i = served.index().get(ModelId.parse(name));
        if (i == null || name.indexOf('@') >= 0) {
            throw new UnknownModelException(name, served.loaded());
        }
        if (threshold < 0 || threshold > Routing.BUCKETS) {
            throw new IllegalArgumentException("threshold must be in [0, " + Routing.BUCKETS
                    + "], got " + threshold);
        }
        synchronized (lifecycle) {
            String[] versions = canaryVersions.clone();
            versions[i] = candidate;
            int[] thresholds = canaryThresholds.clone();
            thresholds[i] = threshold;
            canaryVersions = versions; // before the threshold: a keyed request routed there finds its version set
            canaryThresholds = thresholds;
        }
    }

    /** The canary threshold {@link #route} last set for {@code name} (0: none). */
    public int canaryThreshold(String name) {
        Table served = table;
        Integer i = served.index().get(ModelId.parse(name));
        if (i == null) {
            throw new UnknownModelException(name, served.loaded());
        }
        return canaryThresholds[i];
    }

    /** {@code name@version} of every served model, for messages. */
    List<String> loaded() {
        return table.loaded();
    }

    public Options options() {
        return options;
    }

    /**
     * The lane of Python worker {@code i}. The same object on every call.
     *
     * @throws IndexOutOfBoundsException unless {@code 0 <= i < workers}
     */
    public WorkerLane lane(int i) {
        return lanes[Objects.checkIndex(i, lanes.length)];
    }

    /** Requests whose spinning caller took its scores on Python's mark, before the lane's complete() (all lanes). */
    public long earlyAnswers() {
        long n = 0;
        for (WorkerLane lane : lanes) {
            n += lane.earlyAnswers();
        }
        return n;
    }

    /**
     * Allocates a {@link FeatureArena} registered with this gateway under the next small id ({@link
     * FeatureArena#registrationId()}, 0, 1, ...): a request alone in its batch on one of its slots is scored in
     * place, without a copy. Arenas stay registered (and their memory alive) as long as the gateway.
     *
     * @throws GatewayUnavailableException if the gateway is closed
     * @throws IllegalArgumentException    as {@link FeatureArena#allocate}
     */
    public FeatureArena newArena(int slots, int maxRows, int features) {
        synchronized (lifecycle) {
            if (closed) {
                throw closed(null);
            }
            FeatureArena[] registered = arenas;
            FeatureArena arena = FeatureArena.allocateRegistered(slots, maxRows, features, registered.length);
            FeatureArena[] grown = Arrays.copyOf(registered, registered.length + 1);
            grown[registered.length] = arena;
            arenas = grown;
            return arena;
        }
    }

    /**
     * The whole buffer of registered arena {@code id} ({@code control[2]} when &gt;= 0): what a Python worker maps
     * once. A new view of the same memory on each call.
     *
     * @throws IndexOutOfBoundsException if no arena is registered under {@code id}
     */
    public ByteBuffer arena(int id) {
        FeatureArena[] registered = arenas;
        return registered[Objects.checkIndex(id, registered.length)].buffer();
    }

    /** Requests queued and not yet taken by a lane, right now. */
    public int queued() {
        return queue.queued();
    }

    /**
     * What the queue believes a batch of {@code rows} rows of {@code model} costs to score, in CPU nanoseconds of a
     * lane, from what the lanes reported (0: not known yet). Batches below {@link Options#gatherNanos()} gather on
     * one lane. For diagnostics.
     *
     * @throws UnknownModelException if no served model matches
     */
    public long scoringCostNanos(String model, int rows) {
        Table served = table;
        Integer i = served.index().get(ModelId.parse(model));
        if (i == null) {
            throw new UnknownModelException(model, served.loaded());
        }
        return queue.cost(i, rows);
    }

    /** Idempotent; see the class comment, rule 5. */
    @Override
    public void close() {
        synchronized (lifecycle) {
            closed = true;
        }
        for (Pending pending : queue.close()) {
            pending.fail(CLOSED);
        }
    }

    @Override
    public String toString() {
        return "InProcessGateway[" + String.join(", ", table.loaded()) + "; " + options + "]";
    }
}
