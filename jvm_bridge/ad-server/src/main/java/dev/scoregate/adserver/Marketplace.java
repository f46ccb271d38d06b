package dev.scoregate.adserver;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The demo marketplace as the ad server sees it: the feature export that {@code python -m models.demo build} writes
 * to {@code build/demo/export} ({@code models/demo/export.py} documents every file), mapped read-only.
 *
 * <p>Feature blocks and attribute columns stay in the mapped files (little-endian, as the index says); accessors read
 * them with absolute gets, so nothing is copied onto the heap but the small index and the eligible-ad pools.
 * Immutable after {@link #open} and thread-safe.
 */
public final class Marketplace {
    /** The export format this class reads. */
    public static final String FORMAT = "scoregate.export/1";

    /**
     * A model the export knows: its task ({@code pctr}, {@code pcompletion}, {@code pconversion},
     * {@code brand_safety}, {@code early_rank}, ...) and its input columns (global feature indices, input order).
     */
    public record ModelInfo(String name, String task, String stage, int[] columns) {
        public ModelInfo {
            columns = columns.clone();
        }

        @Override
        public int[] columns() {
            return columns.clone();
        }
    }

    private final Path directory;
    private final int users;
    private final int ads;
    private final int contexts;
    private final FloatBuffer[] blocks;
    private final int[] widths;
    private final IntBuffer requestUser;
    private final IntBuffer contextDevice;
    private final IntBuffer adObjective;
    private final IntBuffer adCategory;
    private final FloatBuffer adBid;
    private final FloatBuffer adCreativeSeconds;
    private final FloatBuffer contextPodSeconds;
    private final IntBuffer contextSlots;
    private final List<String> devices;
    private final List<String> objectives;
    private final BidUnit[] unitOfObjective;
    private final int[][] eligibleByDevice;
    private final Map<String, ModelInfo> models;

    private Marketplace(Path directory, Map<String, Object> index) throws IOException {
        this.directory = directory;
        Map<String, Object> sizes = object(index, "sizes");
        users = integer(sizes, "users");
        ads = integer(sizes, "ads");
        contexts = integer(sizes, "contexts");
        Map<String, Object> arrays = object(index, "arrays");
        Map<String, Object> blockIndex = object(index, "blocks");
        FeatureLayout.Block[] kinds = FeatureLayout.Block.values();
        blocks = new FloatBuffer[kinds.length];
        widths = new int[kinds.length];
        int expectedFirst = 0;
        for (FeatureLayout.Block kind : kinds) {
            Map<String, Object> block = object(blockIndex, kind.name().toLowerCase(Locale.ROOT));
            int b = kind.ordinal();
            widths[b] = integer(block, "width");
            if (integer(block, "first_column") != expectedFirst) {
                throw new IllegalArgumentException("export block " + kind + " starts at column "
                        + block.get("first_column") + ", expected " + expectedFirst + " (user, ad, context order)");
            }
            expectedFirst += widths[b];
            blocks[b] = map(arrays, (String) block.get("array"), "float32").asFloatBuffer();
        }
        requestUser = map(arrays, "request_user", "int32").asIntBuffer();
        contextDevice = map(arrays, "context_device", "int32").asIntBuffer();
        adObjective = map(arrays, "ad_objective", "int32").asIntBuffer();
        adCategory = map(arrays, "ad_category", "int32").asIntBuffer();
        adBid = map(arrays, "ad_bid", "float32").asFloatBuffer();
        adCreativeSeconds = map(arrays, "ad_creative_len_s", "float32").asFloatBuffer();
        contextPodSeconds = map(arrays, "context_pod_len_s", "float32").asFloatBuffer();
        contextSlots = map(arrays, "context_n_slots", "int32").asIntBuffer();
        Map<String, Object> vocabularies = object(index, "vocabularies");
        devices = strings(vocabularies, "devices");
        objectives = strings(vocabularies, "objectives");
        Map<String, Object> pricing = object(index, "pricing");
        unitOfObjective = new BidUnit[objectives.size()];
        for (int o = 0; o < objectives.size(); o++) {
            unitOfObjective[o] = BidUnit.of((String) object(pricing, objectives.get(o)).get("unit"));
        }
        Map<String, Object> eligible = object(index, "eligible_ads");
        eligibleByDevice = new int[devices.size()][];
        for (int d = 0; d < devices.size(); d++) {
            Object pool = eligible.get(devices.get(d));
            eligibleByDevice[d] = pool == null ? allAds() : ids(map(arrays, (String) pool, "int32").asIntBuffer());
        }
        Map<String, ModelInfo> known = new LinkedHashMap<>();
        for (Map.Entry<String, Object> e : object(index, "models").entrySet()) {
            Map<String, Object> m = cast(e.getValue(), e.getKey());
            List<Object> columns = list(m, "columns");
            int[] cols = new int[columns.size()];
            for (int i = 0; i < cols.length; i++) {
                cols[i] = ((Long) columns.get(i)).intValue();
            }
            known.put(e.getKey(), new ModelInfo(e.getKey(), (String) m.get("task"), (String) m.get("stage"), cols));
        }
        models = Collections.unmodifiableMap(known);
    }

    /**
     * Maps the export in {@code directory} ({@code index.json} and its arrays).
     *
     * @throws IOException              if a file cannot be read
     * @throws IllegalArgumentException if the index is of another format, not little-endian, or a file's size
     *                                  disagrees with its shape
     */
    public static Marketplace open(Path directory) throws IOException {
        Path indexFile = directory.resolve("index.json");
        if (!Files.isRegularFile(indexFile)) {
            throw new IOException(indexFile + " is missing: write the export with 'python -m models.demo build --out "
                    + "build/demo' (make setup does)");
        }
        Map<String, Object> index = cast(Json.parse(Files.readString(indexFile, StandardCharsets.UTF_8)), "index");
        if (!FORMAT.equals(index.get("format"))) {
            throw new IllegalArgumentException(indexFile + ": format " + index.get("format") + ", expected " + FORMAT);
        }
        if (!"little".equals(index.get("byte_order"))) {
            throw new IllegalArgumentException(indexFile + ": byte_order " + index.get("byte_order")
                    + ", expected little");
        }
        return new Marketplace(directory, index);
    }

    public Path directory() {
        return directory;
    }

    public int users() {
        return users;
    }

    public int ads() {
        return ads;
    }

    /** Pooled request contexts: request {@code c} is user {@link #requestUser(int)} in context {@code c}. */
    public int contexts() {
        return contexts;
    }

    /** The user pooled context {@code context} was drawn for. */
    public int requestUser(int context) {
        return requestUser.get(context);
    }

    /** Device code of pooled context {@code context} (index into {@link #devices()}). */
    public int contextDevice(int context) {
        return contextDevice.get(context);
    }

    /** Objective code of ad {@code ad} (index into {@link #objectives()}). */
    public int adObjective(int ad) {
        return adObjective.get(ad);
    }

    /** Advertiser category code of ad {@code ad}. */
    public int adCategory(int ad) {
        return adCategory.get(ad);
    }

    /** The bid of ad {@code ad}, in the unit of its objective ({@link #unitOf(int)}). */
    public float adBid(int ad) {
        return adBid.get(ad);
    }

    /** Length of ad {@code ad}'s creative in seconds (0 for display ads). */
    public float adCreativeSeconds(int ad) {
        return adCreativeSeconds.get(ad);
    }

    /**
     * Length in seconds of the ad break pooled context {@code context} fills, or 0 for a single slot (the same rule as
     * the Python pipeline: a break has more than one slot).
     */
    public float contextPodSeconds(int context) {
        return contextSlots.get(context) > 1 ? contextPodSeconds.get(context) : 0f;
    }

    /** Slots of the ad break of pooled context {@code context} (0 or 1: a single slot). */
    public int contextSlots(int context) {
        return contextSlots.get(context);
    }

    /** How the bids of objective {@code objective} are priced. */
    public BidUnit unitOf(int objective) {
        return unitOfObjective[objective];
    }

    public List<String> devices() {
        return devices;
    }

    public List<String> objectives() {
        return objectives;
    }

    /** A new array of the ids of the ads a request on device {@code device} may show (a CTV pod: video ads only). */
    public int[] eligibleAds(int device) {
        return eligibleByDevice[device].clone();
    }

    /** The models the export lists, by name. */
    public Map<String, ModelInfo> models() {
        return models;
    }

    /**
     * The model called {@code name}.
     *
     * @throws IllegalArgumentException if the export does not list it
     */
    public ModelInfo model(String name) {
        ModelInfo info = models.get(name);
        if (info == null) {
            throw new IllegalArgumentException("the export lists no model '" + name + "'; it knows " + models.keySet());
        }
        return info;
    }

    /** The layout that assembles rows of {@code columns} (global feature indices) from this marketplace's blocks. */
    public FeatureLayout layout(int[] columns) {
        return new FeatureLayout(columns, blocks.clone(), widths.clone());
    }

    /** Features per row: the sum of the block widths (64 in the demo). */
    public int featureCount() {
        int total = 0;
        for (int w : widths) {
            total += w;
        }
        return total;
    }

    private int[] allAds() {
        int[] all = new int[ads];
        for (int i = 0; i < ads; i++) {
            all[i] = i;
        }
        return all;
    }

    private static int[] ids(IntBuffer buffer) {
        int[] out = new int[buffer.capacity()];
        buffer.get(0, out);
        return out;
    }

    private ByteBuffer map(Map<String, Object> arrays, String name, String dtype) throws IOException {
        Map<String, Object> spec = object(arrays, name);
        if (!dtype.equals(spec.get("dtype"))) {
            throw new IllegalArgumentException("export array " + name + " is " + spec.get("dtype") + ", expected "
                    + dtype);
        }
        long expected = 4;
        for (Object d : list(spec, "shape")) {
            expected *= (Long) d;
        }
        Path file = directory.resolve((String) spec.get("file"));
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            if (channel.size() != expected) {
                throw new IllegalArgumentException(file + " holds " + channel.size() + " bytes; its shape "
                        + spec.get("shape") + " needs " + expected);
            }
            // The mapping outlives the channel; buffers stay valid until they are garbage.
            return channel.map(FileChannel.MapMode.READ_ONLY, 0, expected).order(ByteOrder.LITTLE_ENDIAN);
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> cast(Object value, String what) {
        if (!(value instanceof Map)) {
            throw new IllegalArgumentException("export index: " + what + " is not an object");
        }
        return (Map<String, Object>) value;
    }

    private static Map<String, Object> object(Map<String, Object> parent, String key) {
        return cast(parent.get(key), key);
    }

    @SuppressWarnings("unchecked")
    private static List<Object> list(Map<String, Object> parent, String key) {
        Object value = parent.get(key);
        if (!(value instanceof List)) {
            throw new IllegalArgumentException("export index: " + key + " is not an array");
        }
        return (List<Object>) value;
    }

    private static List<String> strings(Map<String, Object> parent, String key) {
        return list(parent, key).stream().map(String.class::cast).toList();
    }

    private static int integer(Map<String, Object> parent, String key) {
        Object value = parent.get(key);
        if (!(value instanceof Long)) {
            throw new IllegalArgumentException("export index: " + key + " is not an integer");
        }
        return Math.toIntExact((Long) value);
    }
}
