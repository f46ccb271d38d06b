package dev.scoregate.adserver;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A hand-made export in the format of {@code models/demo/export.py}, small enough to check by eye: 3 users with 3
 * features, 6 ads with 2, 4 pooled contexts with 2 (7 global features). Values encode where they come from:
 * user {@code u} column {@code c} is {@code 100 (u + 1) + c}, ad {@code a} column {@code c} is {@code 1000 (a + 1) + c},
 * context {@code k} column {@code c} is {@code 10000 (k + 1) + c + 0.5}.
 */
final class TinyExport {
    static final int USERS = 3;
    static final int ADS = 6;
    static final int CONTEXTS = 4;
    static final int USER_WIDTH = 3;
    static final int AD_WIDTH = 2;
    static final int CONTEXT_WIDTH = 2;
    /** Devices: 0 web, 1 ctv. Context k is on device {@code CONTEXT_DEVICE[k]} and belongs to user REQUEST_USER[k]. */
    static final int[] CONTEXT_DEVICE = {0, 1, 0, 1};
    static final int[] REQUEST_USER = {2, 0, 1, 2};
    /** Objectives: 0 cpc, 1 cpa, 2 awareness, 3 ctv_completion. */
    static final int[] AD_OBJECTIVE = {0, 3, 1, 2, 3, 0};
    static final float[] AD_BID = {1.5f, 30f, 20f, 5f, 25f, 0.5f};
    static final int[] VIDEO_ADS = {1, 4};

    private TinyExport() {
    }

    static float user(int u, int c) {
        return 100f * (u + 1) + c;
    }

    static float ad(int a, int c) {
        return 1000f * (a + 1) + c;
    }

    static float context(int k, int c) {
        return 10000f * (k + 1) + c + 0.5f;
    }

    /** The global feature {@code column} of a row for (user, ad, context). */
    static float feature(int column, int user, int ad, int context) {
        if (column < USER_WIDTH) {
            return user(user, column);
        }
        if (column < USER_WIDTH + AD_WIDTH) {
            return ad(ad, column - USER_WIDTH);
        }
        return context(context, column - USER_WIDTH - AD_WIDTH);
    }

    /** Writes the export into {@code dir} and returns it. */
    static Path write(Path dir) throws IOException {
        float[] users = new float[USERS * USER_WIDTH];
        for (int u = 0; u < USERS; u++) {
            for (int c = 0; c < USER_WIDTH; c++) {
                users[u * USER_WIDTH + c] = user(u, c);
            }
        }
        float[] ads = new float[ADS * AD_WIDTH];
        for (int a = 0; a < ADS; a++) {
            for (int c = 0; c < AD_WIDTH; c++) {
                ads[a * AD_WIDTH + c] = ad(a, c);
            }
        }
        float[] contexts = new float[CONTEXTS * CONTEXT_WIDTH];
        for (int k = 0; k < CONTEXTS; k++) {
            for (int c = 0; c < CONTEXT_WIDTH; c++) {
                contexts[k * CONTEXT_WIDTH + c] = context(k, c);
            }
        }
        floats(dir, "user_features.f32", users);
        floats(dir, "ad_features.f32", ads);
        floats(dir, "context_features.f32", contexts);
        ints(dir, "request_user.i32", REQUEST_USER);
        ints(dir, "context_device.i32", CONTEXT_DEVICE);
        ints(dir, "ad_objective.i32", AD_OBJECTIVE);
        ints(dir, "ad_category.i32", new int[] {0, 1, 0, 1, 0, 1});
        floats(dir, "ad_bid.f32", AD_BID);
        floats(dir, "ad_creative_len_s.f32", new float[] {0f, 15f, 0f, 0f, 30f, 0f});
        floats(dir, "context_pod_len_s.f32", new float[] {0f, 0f, 0f, 0f}); // single slots only here
        ints(dir, "context_n_slots.i32", new int[] {0, 0, 0, 0});
        ints(dir, "video_ad_ids.i32", VIDEO_ADS);
        String index = """
                {
                 "format": "scoregate.export/1", "seed": 0, "byte_order": "little",
                 "sizes": {"users": 3, "ads": 6, "contexts": 4},
                 "blocks": {
                  "user": {"array": "user_features", "row": "request_user", "first_column": 0, "width": 3},
                  "ad": {"array": "ad_features", "row": "ad", "first_column": 3, "width": 2},
                  "context": {"array": "context_features", "row": "context", "first_column": 5, "width": 2}
                 },
                 "arrays": {
                  "user_features": {"file": "user_features.f32", "dtype": "float32", "shape": [3, 3]},
                  "ad_features": {"file": "ad_features.f32", "dtype": "float32", "shape": [6, 2]},
                  "context_features": {"file": "context_features.f32", "dtype": "float32", "shape": [4, 2]},
                  "request_user": {"file": "request_user.i32", "dtype": "int32", "shape": [4]},
                  "context_device": {"file": "context_device.i32", "dtype": "int32", "shape": [4]},
                  "ad_objective": {"file": "ad_objective.i32", "dtype": "int32", "shape": [6]},
                  "ad_category": {"file": "ad_category.i32", "dtype": "int32", "shape": [6]},
                  "ad_bid": {"file": "ad_bid.f32", "dtype": "float32", "shape": [6]},
                  "ad_creative_len_s": {"file": "ad_creative_len_s.f32", "dtype": "float32", "shape": [6]},
                  "context_pod_len_s": {"file": "context_pod_len_s.f32", "dtype": "float32", "shape": [4]},
                  "context_n_slots": {"file": "context_n_slots.i32", "dtype": "int32", "shape": [4]},
                  "video_ad_ids": {"file": "video_ad_ids.i32", "dtype": "int32", "shape": [2]}
                 },
                 "vocabularies": {"devices": ["web", "ctv"], "objectives": ["cpc", "cpa", "awareness",
                  "ctv_completion"], "note": "escapes \\"ok\\" \\u00e9"},
                 "pricing": {"cpc": {"unit": "CPC"}, "cpa": {"unit": "CPA"}, "awareness": {"unit": "CPM"},
                  "ctv_completion": {"unit": "CPCM", "ecpm": "bid * p_completion"}},
                 "eligible_ads": {"web": null, "ctv": "video_ad_ids"},
                 "models": {
                  "ctr": {"task": "pctr", "stage": "full_scoring", "columns": [0, 1, 2, 3, 4, 5, 6]},
                  "completion": {"task": "pcompletion", "stage": "full_scoring", "columns": [0, 1, 2, 3, 4, 5, 6]},
                  "conversion": {"task": "pconversion", "stage": "full_scoring", "columns": [0, 1, 2, 3, 4, 5, 6]},
                  "safety": {"task": "brand_safety", "stage": "full_scoring", "columns": [3, 4, 5, 6]},
                  "early": {"task": "early_rank", "stage": "early_ranking", "columns": [4, 0, 1, 6, 3]}
                 }
                }
                """;
        Files.writeString(dir.resolve("index.json"), index);
        return dir;
    }

    private static void floats(Path dir, String file, float[] values) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(values);
        Files.write(dir.resolve(file), b.array());
    }

    private static void ints(Path dir, String file, int[] values) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().put(values);
        Files.write(dir.resolve(file), b.array());
    }
}
