package dev.scoregate.adserver;

import com.hazelcast.core.HazelcastInstance;
import com.hazelcast.map.IMap;
import dev.scoregate.bridge.features.FeatureClients;
import dev.scoregate.bridge.features.FeatureGroupSpec;
import dev.scoregate.bridge.features.FeaturePlan;
import dev.scoregate.bridge.features.FeatureReader;
import dev.scoregate.bridge.features.Hydration;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/**
 * Candidate features from the Hazelcast feature cache instead of the export: the ad server's path when it is given
 * {@code --members}. The Python side loads the marketplace's tables into the cluster first and publishes the feature
 * groups' definitions (entity, version, defaults, freshness SLO) in the {@value #REGISTRY_MAP} map
 * ({@code cache/ingest.py}, {@code publish_registry}); this class reads them there, so both sides share one
 * definition.
 *
 * <p>Per request, one {@link FeatureReader#hydrate} fills the candidates' full rows (user and ad groups read from
 * the cluster, the ad group through the client's near cache; the context group, request-time data, taken from the
 * export's pooled context) into the worker's direct buffer, and {@link Gather} copies each model's columns from it
 * into the model's arena slot. Missing entities, stale values, read failures and deadlines are served as the
 * reader's fallbacks (defaults, flagged) and counted here, never failing a request.
 *
 * <p>Thread-safe; each request thread owns one {@link Rows}.
 */
public final class ClusterFeatures implements AutoCloseable {
    /** Where the feature groups' definitions live: group name to a JSON object. */
    public static final String REGISTRY_MAP = "fg.registry";
    /** The marketplace's groups, in global column order (user block, ad block, context block). */
    static final List<String> GROUPS = List.of("user_profile", "ad_profile", "context_profile");
    private static final String CONTEXT_GROUP = "context_profile";

    private final HazelcastInstance client;
    private final boolean ownsClient;
    private final FeatureReader reader;
    private final Marketplace market;
    private final FeatureLayout all;
    private final FeatureLayout context;
    private final int contextWidth;
    private final boolean verify;
    private final LongAdder requests = new LongAdder();
    private final LongAdder rows = new LongAdder();
    private final LongAdder missing = new LongAdder();
    private final LongAdder stale = new LongAdder();
    private final LongAdder degraded = new LongAdder();
    private final LongAdder mismatched = new LongAdder();

    /**
     * @param client  a client of the cluster holding the feature maps
     * @param market  the export (for the request-time context group and, with {@code verify}, the reference rows)
     * @param maxRows the most candidates of one request
     * @param verify  compare every hydrated row with the export's row for the same ids (a consistency check that
     *                costs a second row assembly per request)
     * @throws IllegalStateException if the cluster holds no definition of a group (the features were not loaded)
     *                               or the groups do not add up to the export's features
     */
    ClusterFeatures(HazelcastInstance client, boolean ownsClient, Marketplace market, int maxRows, boolean verify) {
        this.client = client;
        this.ownsClient = ownsClient;
        this.market = market;
        this.verify = verify;
        IMap<String, String> registry = client.getMap(REGISTRY_MAP);
        List<FeatureGroupSpec> specs = new ArrayList<>();
        for (String name : GROUPS) {
            String json = registry.get(name);
            if (json == null) {
                throw new IllegalStateException("the cluster defines no feature group '" + name + "' (map "
                        + REGISTRY_MAP + "): load the marketplace's features into it first (cache/ingest.py)");
            }
            specs.add(spec(name, json));
        }
        FeaturePlan plan = FeaturePlan.concat(specs);
        if (plan.featureCount() != market.featureCount()) {
            throw new IllegalStateException("the cluster's groups hold " + plan.featureCount() + " features, the "
                    + "export " + market.featureCount());
        }
        this.reader = new FeatureReader(client, plan, maxRows);
        int[] columns = new int[market.featureCount()];
        Arrays.setAll(columns, i -> i);
        this.all = market.layout(columns);
        this.contextWidth = specs.get(2).width();
        int[] contextColumns = new int[contextWidth];
        Arrays.setAll(contextColumns, i -> market.featureCount() - contextWidth + i);
        this.context = market.layout(contextColumns);
    }

    /** Connects a client (near cache on the ad group's map) to {@code members} of {@code clusterName}. */
    public static ClusterFeatures connect(String clusterName, List<String> members, Marketplace market, int maxRows,
                                          boolean verify) {
        HazelcastInstance client = FeatureClients.connect(clusterName, members, List.of("fg.ad_profile.v1"));
        try {
            return new ClusterFeatures(client, true, market, maxRows, verify);
        } catch (RuntimeException e) {
            client.shutdown();
            throw e;
        }
    }

    @SuppressWarnings("unchecked")
    static FeatureGroupSpec spec(String name, String json) {
        if (!(Json.parse(json) instanceof Map<?, ?> parsed)) {
            throw new IllegalStateException("feature group '" + name + "': its definition is not a JSON object");
        }
        Map<String, Object> o = (Map<String, Object>) parsed;
        List<?> values = (List<?>) o.get("defaults");
        float[] defaults = new float[values.size()];
        for (int i = 0; i < defaults.length; i++) {
            defaults[i] = ((Number) values.get(i)).floatValue();
        }
        return new FeatureGroupSpec(name, (String) o.get("entity"), ((Number) o.get("version")).intValue(), defaults,
                ((Number) o.get("freshness_slo_ms")).longValue());
    }

    /** Scratch for one request thread: the full rows of up to {@code candidates} ads. */
    public Rows newRows(int candidates) {
        return new Rows(candidates);
    }

    /** Counters since the start, for the run's summary. */
    public String summary() {
        return String.format(java.util.Locale.ROOT, "features from the cluster: %,d requests, %,d rows, %,d degraded "
                        + "requests, %,d rows defaulted (missing), %,d rows stale%s", requests.sum(), rows.sum(),
                degraded.sum(), missing.sum(), stale.sum(),
                verify ? String.format(java.util.Locale.ROOT, ", %,d rows differ from the export", mismatched.sum())
                        : "");
    }

    @Override
    public void close() {
        reader.close();
        if (ownsClient && client.getLifecycleService().isRunning()) {
            client.shutdown();
        }
    }

    /** One request thread's buffers and request maps. Not thread-safe. */
    public final class Rows {
        private final ByteBuffer bytes;
        private final FloatBuffer floats;
        private final FloatBuffer reference;
        private final long[] adIds;
        private final float[] contextRow;
        private final Map<String, Long> entities = new HashMap<>();
        private final Map<String, float[]> inline = new HashMap<>();
        private final int[] one = new int[1];

        private Rows(int candidates) {
            int width = all.width();
            bytes = ByteBuffer.allocateDirect(candidates * width * Float.BYTES).order(ByteOrder.nativeOrder());
            floats = bytes.asFloatBuffer();
            reference = verify ? FloatBuffer.allocate(candidates * width) : null;
            adIds = new long[candidates];
            contextRow = new float[contextWidth];
        }

        /** The full rows ({@code n x features}) of the last {@link #hydrate}. */
        public FloatBuffer rows() {
            return floats;
        }

        /** Reads the rows of {@code ads[0..n)} for {@code user} in pooled context {@code ctx} within the timeout. */
        public void hydrate(int user, int ctx, int[] ads, int n, long timeoutNanos) {
            for (int i = 0; i < n; i++) {
                adIds[i] = ads[i];
            }
            one[0] = ads[0];
            context.write(FloatBuffer.wrap(contextRow), user, ctx, one, 1);
            entities.put("user", (long) user);
            entities.put("context", (long) ctx);
            inline.put(CONTEXT_GROUP, contextRow);
            Hydration h = reader.hydrate(entities, adIds, n, inline, bytes, timeoutNanos);
            requests.increment();
            rows.add(n);
            int worstMissing = 0;
            int worstStale = 0;
            for (String g : h.groups()) {
                worstMissing = Math.max(worstMissing, g.equals("ad_profile") ? h.missing(g) : h.missing(g) * n);
                worstStale = Math.max(worstStale, g.equals("ad_profile") ? h.stale(g) : h.stale(g) * n);
            }
            missing.add(Math.min(n, worstMissing));
            stale.add(Math.min(n, worstStale));
            if (h.degraded()) {
                degraded.increment();
            }
            if (reference != null) {
                all.write(reference, user, ctx, ads, n);
                int width = all.width();
                for (int r = 0; r < n; r++) {
                    if (floats.slice(r * width, width).compareTo(reference.slice(r * width, width)) != 0) {
                        mismatched.increment();
                    }
                }
            }
        }
    }

    /**
     * Copies one model's columns out of full rows: the columns compiled into runs contiguous in both the full row
     * and the model's row, one bulk put per run per row. Immutable.
     */
    public static final class Gather {
        private final int width;
        private final int source;
        private final int[] from;
        private final int[] to;
        private final int[] length;

        /** @param columns the model's global columns in input order; {@code source} floats per full row */
        public Gather(int[] columns, int source) {
            List<int[]> runs = new ArrayList<>();
            for (int i = 0; i < columns.length; i++) {
                if (columns[i] < 0 || columns[i] >= source) {
                    throw new IllegalArgumentException("column " + columns[i] + " outside a row of " + source);
                }
                int[] last = runs.isEmpty() ? null : runs.get(runs.size() - 1);
                if (last != null && last[0] + last[2] == columns[i] && last[1] + last[2] == i) {
                    last[2]++;
                } else {
                    runs.add(new int[] {columns[i], i, 1});
                }
            }
            this.width = columns.length;
            this.source = source;
            this.from = runs.stream().mapToInt(r -> r[0]).toArray();
            this.to = runs.stream().mapToInt(r -> r[1]).toArray();
            this.length = runs.stream().mapToInt(r -> r[2]).toArray();
        }

        /** Writes row {@code r} of {@code target} from full row {@code rows == null ? r : rows[r]}, for r < n. */
        public void write(FloatBuffer target, FloatBuffer full, int[] rows, int n) {
            for (int r = 0; r < n; r++) {
                int src = (rows == null ? r : rows[r]) * source;
                int dst = r * width;
                for (int k = 0; k < from.length; k++) {
                    target.put(dst + to[k], full, src + from[k], length[k]);
                }
            }
        }
    }
}
