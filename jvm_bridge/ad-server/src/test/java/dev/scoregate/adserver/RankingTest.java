package dev.scoregate.adserver;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.Comparator;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** Top-k selection and eCPM ranking: the early-ranking cut and the auction's order. */
class RankingTest {
    private static int[] top(float[] keys, int k) {
        int[] out = new int[k];
        int n = Ranking.topK(keys, keys.length, k, out);
        return Arrays.copyOf(out, n);
    }

    @Test
    void largestFirstTiesByIndexNaNNever() {
        float[] keys = {0.2f, 0.9f, Float.NaN, 0.5f, 0.9f, 0.1f};
        assertArrayEquals(new int[] {1, 4, 3}, top(keys, 3));
        assertArrayEquals(new int[] {1, 4, 3, 0, 5}, top(keys, 6)); // fewer than k: every non-NaN key
        assertArrayEquals(new int[0], top(keys, 0));
        assertArrayEquals(new int[0], top(new float[] {Float.NaN}, 1));
    }

    @Test
    void agreesWithAFullSortOnRandomKeys() {
        SplittableRandom random = new SplittableRandom(3);
        for (int trial = 0; trial < 200; trial++) {
            int n = 1 + random.nextInt(300);
            int k = 1 + random.nextInt(60);
            float[] keys = new float[n];
            for (int i = 0; i < n; i++) {
                keys[i] = random.nextInt(20) == 0 ? Float.NaN : random.nextInt(50) / 7f; // many ties
            }
            int[] want = IntStream.range(0, n).filter(i -> !Float.isNaN(keys[i])).boxed()
                    .sorted(Comparator.<Integer>comparingDouble(i -> -keys[i]).thenComparingInt(i -> i))
                    .limit(k).mapToInt(Integer::intValue).toArray();
            assertArrayEquals(want, top(keys, k), "trial " + trial);
        }
    }

    @Test
    void ecpmRanksBidsAcrossUnits() {
        // a CPC ad: $2 per click at 1 % CTR -> $20 eCPM; a CPA ad: $40 per action at 0.1 % -> $40;
        // a CPM ad: $30; a CTV ad: $30 CPM on completed views at 50 % completion -> $15
        float[] ecpm = {
            BidUnit.CPC.ecpm(2f, 0.01f, Float.NaN, Float.NaN),
            BidUnit.CPA.ecpm(40f, 0.3f, 0.001f, Float.NaN),
            BidUnit.CPM.ecpm(30f, Float.NaN, Float.NaN, Float.NaN),
            BidUnit.CPCM.ecpm(30f, Float.NaN, Float.NaN, 0.5f),
        };
        assertEquals(20f, ecpm[0], 1e-4f);
        assertEquals(40f, ecpm[1], 1e-4f);
        assertEquals(30f, ecpm[2]);
        assertEquals(15f, ecpm[3]);
        assertArrayEquals(new int[] {1, 2, 0, 3}, top(ecpm, 4));
        Auction.Outcome outcome = Auction.run(ecpm, 4, 1f, new Auction.Outcome());
        assertEquals(1, outcome.winner());
        assertEquals(30f, outcome.price());
    }

    @Test
    void anUnscoredPredictionMeansNoBid() {
        assertEquals(Float.NaN, BidUnit.CPC.ecpm(2f, Float.NaN, 0.1f, 0.1f));
        assertEquals(Float.NaN, BidUnit.CPA.ecpm(2f, 0.1f, Float.NaN, 0.1f));
        assertEquals(Float.NaN, BidUnit.CPCM.ecpm(2f, 0.1f, 0.1f, Float.NaN));
        assertEquals(2f, BidUnit.CPM.ecpm(2f, Float.NaN, Float.NaN, Float.NaN));
        assertEquals(BidUnit.CPCM, BidUnit.of("CPCM"));
        assertThrows(IllegalArgumentException.class, () -> BidUnit.of("CPV"));
    }

    @Test
    void rejectsBadSizes() {
        assertThrows(IllegalArgumentException.class, () -> Ranking.topK(new float[2], 3, 1, new int[1]));
        assertThrows(IllegalArgumentException.class, () -> Ranking.topK(new float[2], 2, 2, new int[1]));
    }
}
