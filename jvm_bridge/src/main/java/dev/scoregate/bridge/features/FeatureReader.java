package dev.scoregate.bridge.features;

import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.map.IMap;
import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.InvalidInputException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.LongSupplier;

/**
 * Assembles one request's {@code N x F} float32 feature rows from the cluster straight into a score buffer (a
 * {@link FeatureArena} slot, or any direct buffer): the JVM twin of {@code cache/hydrate.py}, reading the same maps,
 * keys ({@code Long}) and layout ({@link FeatureCodec}).
 *
 * <p>For one request (entity ids such as the user and the context, and N candidate ads) every read is issued at once
 * ({@code getAsync} per single entity, one {@code getAll} for the ads, which a client near cache serves locally when
 * warm), then each group's values are copied column by column into the output, row-major, native byte order. No
 * per-feature objects are created.
 *
 * <p>Fallbacks, each counted in the {@link Hydration} report and never an exception:
 * <ol>
 *   <li>an entity with no stored value, or a value of another layout or version: the group's defaults
 *       ({@code missing});</li>
 *   <li>a value older than the group's freshness SLO: served, flagged ({@code stale});</li>
 *   <li>a failed read (member gone, client offline): defaults, counted missing, {@code failed} set;</li>
 *   <li>the deadline passes: every group not yet read gets defaults, {@code timedOut} set, and the call returns
 *       within the deadline (plus the copy).</li>
 * </ol>
 * Errors of the caller (rows beyond {@code maxRows}, an output buffer too small, a request that names no id for a
 * group's entity) throw {@link InvalidInputException} before anything is read.
 *
 * <p>Thread-safe: holds no per-call state. {@link #close()} stops the reader's own executor (not the client).
 */
public final class FeatureReader implements AutoCloseable {
    /** Default bound on the candidates of one request. */
    public static final int DEFAULT_MAX_ROWS = 10_000;

    private final FeaturePlan plan;
    private final List<FeatureGroupSpec> groups;
    private final List<IMap<Long, byte[]>> maps;
    private final ExecutorService executor;
    private final boolean ownsExecutor;
    private final LongSupplier clockMillis;
    private final int maxRows;

    /** A reader with its own small executor for the {@code getAll} calls, the system clock and default bounds. */
    public FeatureReader(HazelcastInstance client, FeaturePlan plan) {
        this(client, plan, null, System::currentTimeMillis, DEFAULT_MAX_ROWS);
    }

    /** A reader with its own executor and the system clock, bounded to {@code maxRows} candidates a request. */
    public FeatureReader(HazelcastInstance client, FeaturePlan plan, int maxRows) {
        this(client, plan, null, System::currentTimeMillis, maxRows);
    }

    /**
     * @param client      a Hazelcast client (or member) of the cluster holding the feature maps
     * @param plan        the output layout
     * @param executor    runs the blocking {@code getAll} calls so that the caller can stop waiting at its deadline;
     *                    {@code null}: the reader creates (and {@link #close() closes}) a daemon pool
     * @param clockMillis wall-clock milliseconds, against which staleness is judged (tests inject one)
     * @param maxRows     the most candidates one request may ask for
     */
    public FeatureReader(HazelcastInstance client, FeaturePlan plan, ExecutorService executor,
                         LongSupplier clockMillis, int maxRows) {
        Objects.requireNonNull(client, "client");
        this.plan = Objects.requireNonNull(plan, "plan");
        this.groups = plan.groups();
        this.clockMillis = Objects.requireNonNull(clockMillis, "clockMillis");
        if (maxRows <= 0) {
            throw new IllegalArgumentException("maxRows must be > 0, got " + maxRows);
        }
        this.maxRows = maxRows;
        this.maps = groups.stream().map(g -> client.<Long, byte[]>getMap(g.mapName())).toList();
        this.ownsExecutor = executor == null;
        this.executor = executor != null ? executor : defaultExecutor();
    }

    private static ExecutorService defaultExecutor() {
        int threads = Math.max(4, 2 * Runtime.getRuntime().availableProcessors());
        AtomicInteger n = new AtomicInteger();
        ThreadPoolExecutor pool = new ThreadPoolExecutor(threads, threads, 30, TimeUnit.SECONDS,
                new LinkedBlockingQueue<>(), r -> {
                    Thread t = new Thread(r, "scoregate-feature-read-" + n.incrementAndGet());
                    t.setDaemon(true);
                    return t;
                });
        pool.allowCoreThreadTimeOut(true);
        return pool;
    }

    public FeaturePlan plan() {
        return plan;
    }

    public int maxRows() {
        return maxRows;
    }

    /** {@link #hydrate(Map, long[], int, Map, ByteBuffer, long)} into a leased arena slot's feature matrix. */
    public Hydration hydrate(Map<String, Long> entities, long[] ads, int rows, Map<String, float[]> inline,
                             FeatureArena.Slot slot, Duration timeout) {
        if (slot.featureCount() != plan.featureCount()) {
            throw new InvalidInputException(null, "features", slot + " holds " + slot.featureCount()
                    + " features per row but the plan has " + plan.featureCount());
        }
        return hydrate(entities, ads, rows, inline, slot.featureBuffer(), timeout.toNanos());
    }

    /**
     * Fills rows {@code 0..rows-1} of {@code out} (float32, row-major, {@code featureCount} per row, native byte
     * order, from absolute index 0) for one request.
     *
     * @param entities     this request's id per entity kind ({@code user}, {@code context}, ...); groups keyed by
     *                     {@code ad} read one row per candidate instead
     * @param ads          candidate ad ids; the first {@code rows} are used
     * @param inline       request-time groups by name, supplied instead of read (may be {@code null})
     * @param out          the destination; its position, limit and order flag are ignored
     * @param timeoutNanos how long to wait for the cluster
     * @throws InvalidInputException if {@code rows} is out of bounds, {@code out} too small, an inline vector of the
     *                               wrong width, or an entity id is missing for a group that needs it
     */
    public Hydration hydrate(Map<String, Long> entities, long[] ads, int rows, Map<String, float[]> inline,
                             ByteBuffer out, long timeoutNanos) {
        long start = System.nanoTime();
        long deadline = start + Math.max(0, timeoutNanos);
        check(entities, ads, rows, inline, out);
        int f = plan.featureCount();
        ByteBuffer dst = out.duplicate().order(ByteOrder.nativeOrder());
        int n = groups.size();
        CompletableFuture<?>[] pending = new CompletableFuture<?>[n];
        Set<Long> adKeys = null;
        for (int g = 0; g < n; g++) {
            FeatureGroupSpec group = groups.get(g);
            if (inline != null && inline.containsKey(group.name())) {
                continue;
            }
            IMap<Long, byte[]> map = maps.get(g);
            try {
                if (group.entity().equals("ad")) {
                    if (adKeys == null) {
                        adKeys = new HashSet<>(rows * 2);
                        for (int r = 0; r < rows; r++) {
                            adKeys.add(ads[r]);
                        }
                    }
                    // One getAll (grouped by partition, near cache first) beats a getAsync per candidate by ~25x
                    // cold at N = 500 on loopback; it blocks, so it runs on the executor to honour the deadline.
                    Set<Long> keys = adKeys;
                    pending[g] = rows == 0 ? CompletableFuture.completedFuture(Map.of())
                            : CompletableFuture.supplyAsync(() -> map.getAll(keys), executor);
                } else {
                    pending[g] = map.getAsync(entities.get(group.entity())).toCompletableFuture();
                }
            } catch (RuntimeException e) { // client shut down or offline: served as defaults below
                pending[g] = CompletableFuture.failedFuture(e);
            }
        }
        int[] missing = new int[n];
        int[] stale = new int[n];
        boolean timedOut = false;
        boolean failed = false;
        long now = clockMillis.getAsLong();
        for (int g = 0; g < n; g++) {
            FeatureGroupSpec group = groups.get(g);
            int[] src = plan.sources(g);
            int[] cols = plan.destinations(g);
            if (pending[g] == null) { // inline
                float[] vec = inline.get(group.name());
                for (int r = 0; r < rows; r++) {
                    int base = r * f;
                    for (int k = 0; k < src.length; k++) {
                        dst.putFloat((base + cols[k]) * Float.BYTES, vec[src[k]]);
                    }
                }
                continue;
            }
            Object result = null;
            try {
                result = pending[g].get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (TimeoutException e) {
                timedOut = true;
            } catch (ExecutionException | RuntimeException e) {
                failed = true;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                timedOut = true;
            }
            if (group.entity().equals("ad")) {
                @SuppressWarnings("unchecked")
                Map<Long, byte[]> got = result == null ? Map.of() : (Map<Long, byte[]>) result;
                for (int r = 0; r < rows; r++) {
                    int served = fill(group, got.get(ads[r]), src, cols, dst, r * f, now);
                    missing[g] += served == MISSING ? 1 : 0;
                    stale[g] += served == STALE ? 1 : 0;
                }
            } else {
                byte[] value = (byte[]) result;
                int served = MISSING;
                for (int r = 0; r < rows; r++) {
                    served = fill(group, value, src, cols, dst, r * f, now);
                }
                missing[g] = rows > 0 && served == MISSING ? 1 : 0;
                stale[g] = rows > 0 && served == STALE ? 1 : 0;
            }
        }
        List<String> names = groups.stream().map(FeatureGroupSpec::name).toList();
        return new Hydration(rows, names, missing, stale, timedOut, failed, System.nanoTime() - start);
    }

    private static final int FRESH = 0;
    private static final int STALE = 1;
    private static final int MISSING = 2;

    /** Writes one row's columns of one group at float index {@code base}; returns FRESH, STALE or MISSING. */
    private static int fill(FeatureGroupSpec group, byte[] value, int[] src, int[] cols, ByteBuffer dst, int base,
                            long now) {
        if (value == null || !FeatureCodec.fits(group, value)) {
            for (int k = 0; k < src.length; k++) {
                dst.putFloat((base + cols[k]) * Float.BYTES, group.defaultValue(src[k]));
            }
            return MISSING;
        }
        for (int k = 0; k < src.length; k++) {
            dst.putFloat((base + cols[k]) * Float.BYTES, FeatureCodec.value(value, src[k]));
        }
        return now - FeatureCodec.eventMillis(value) > group.freshnessSloMs() ? STALE : FRESH;
    }

    private void check(Map<String, Long> entities, long[] ads, int rows, Map<String, float[]> inline,
                       ByteBuffer out) {
        if (rows < 0 || rows > maxRows) {
            throw new InvalidInputException(null, "rows", "a request may hydrate 0.." + maxRows
                    + " candidates, got " + rows);
        }
        if (ads.length < rows) {
            throw new InvalidInputException(null, "ads", rows + " rows but only " + ads.length + " ad ids");
        }
        long need = (long) rows * plan.featureCount() * Float.BYTES;
        if (!out.isDirect() && !out.hasArray() || out.capacity() < need) {
            throw new InvalidInputException(null, "features", "the output holds " + out.capacity() + " bytes; "
                    + rows + " rows x " + plan.featureCount() + " features need " + need);
        }
        if (out.isReadOnly()) {
            throw new InvalidInputException(null, "features", "the output buffer is read-only");
        }
        for (FeatureGroupSpec group : groups) {
            float[] vec = inline == null ? null : inline.get(group.name());
            if (vec != null) {
                if (vec.length != group.width()) {
                    throw new InvalidInputException(null, group.name(), "inline group " + group.name()
                            + " needs " + group.width() + " values, got " + vec.length);
                }
            } else if (!group.entity().equals("ad") && (entities == null || entities.get(group.entity()) == null)) {
                throw new InvalidInputException(null, group.entity(), "group " + group.name() + " is keyed by "
                        + group.entity() + ", which this request does not name");
            }
        }
    }

    @Override
    public void close() {
        if (ownsExecutor) {
            executor.shutdownNow();
        }
    }
}
