package dev.scoregate.adserver;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.scoregate.bridge.features.FeatureGroupSpec;
import java.nio.FloatBuffer;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The pure parts of the feature-cache path: copying a model's columns out of full rows, and reading a group's
 * definition as the Python side publishes it. The path against a real member runs in
 * {@code tests/integration/test_ad_server_features.py}.
 */
class ClusterFeaturesTest {
    @Test
    void gatherCopiesTheModelsColumnsOfTheChosenRows() {
        int width = 10;
        int rows = 6;
        FloatBuffer full = FloatBuffer.allocate(rows * width);
        for (int i = 0; i < rows * width; i++) {
            full.put(i, i);
        }
        int[] columns = {3, 4, 5, 0, 9, 8, 1, 2};
        ClusterFeatures.Gather gather = new ClusterFeatures.Gather(columns, width);
        int[] picked = {4, 0, 5};
        FloatBuffer out = FloatBuffer.allocate(picked.length * columns.length);
        gather.write(out, full, picked, picked.length);
        for (int r = 0; r < picked.length; r++) {
            for (int k = 0; k < columns.length; k++) {
                assertEquals(picked[r] * width + columns[k], out.get(r * columns.length + k), 0f);
            }
        }
        FloatBuffer same = FloatBuffer.allocate(2 * columns.length);
        gather.write(same, full, null, 2); // no row map: row r from full row r
        assertEquals(width + 9, same.get(columns.length + 4), 0f);
    }

    @Test
    void gatherMatchesAPlainLoopOnRandomLayouts() {
        SplittableRandom random = new SplittableRandom(7);
        for (int trial = 0; trial < 50; trial++) {
            int width = 1 + random.nextInt(64);
            int[] columns = random.ints(1 + random.nextInt(width), 0, width).toArray();
            FloatBuffer full = FloatBuffer.allocate(4 * width);
            for (int i = 0; i < full.capacity(); i++) {
                full.put(i, random.nextFloat());
            }
            float[] want = new float[4 * columns.length];
            for (int r = 0; r < 4; r++) {
                for (int k = 0; k < columns.length; k++) {
                    want[r * columns.length + k] = full.get(r * width + columns[k]);
                }
            }
            FloatBuffer out = FloatBuffer.allocate(want.length);
            new ClusterFeatures.Gather(columns, width).write(out, full, null, 4);
            assertArrayEquals(want, out.array());
        }
        assertThrows(IllegalArgumentException.class, () -> new ClusterFeatures.Gather(new int[] {10}, 10));
    }

    @Test
    void readsTheGroupDefinitionPythonPublishes() {
        // cache.ingest.registry_json(FeatureRegistry.marketplace().group("context_profile")), shortened to 3 features
        String json = "{\"entity\": \"context\", \"version\": 2, \"features\": [\"a\", \"b\", \"c\"], "
                + "\"defaults\": [0.0, -1.5, 3], \"freshness_slo_ms\": 300000}";
        FeatureGroupSpec spec = ClusterFeatures.spec("context_profile", json);
        assertEquals("context", spec.entity());
        assertEquals(2, spec.version());
        assertEquals(300_000L, spec.freshnessSloMs());
        assertArrayEquals(new float[] {0f, -1.5f, 3f}, spec.defaults());
        assertEquals("fg.context_profile.v2", spec.mapName());
        assertThrows(IllegalStateException.class, () -> ClusterFeatures.spec("x", "[1, 2]"));
    }
}
