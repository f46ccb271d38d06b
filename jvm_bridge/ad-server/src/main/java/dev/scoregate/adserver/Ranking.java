package dev.scoregate.adserver;

/**
 * Top-k selection over primitive arrays, for the early-ranking cut: no boxing, no allocation. (The single-slot
 * {@link Auction} needs only the top two, which it finds in the same order in one pass.)
 *
 * <p>Order: larger keys first; equal keys in ascending index order (so results are deterministic); NaN keys never
 * rank (a NaN is a candidate that does not compete). Pure and thread-safe.
 */
public final class Ranking {
    private Ranking() {
    }

    /**
     * Writes into {@code out} the indices of the (up to) {@code k} largest of {@code keys[0..n)}, largest first, and
     * returns how many it wrote: {@code min(k, number of non-NaN keys)}. Insertion into a sorted prefix: O(n k) in
     * the worst case, about O(n) when k is small against n or keys arrive unsorted, as they do here.
     *
     * @throws IllegalArgumentException if {@code n} exceeds {@code keys.length} or {@code k} exceeds
     *                                  {@code out.length}, or either is negative
     */
    public static int topK(float[] keys, int n, int k, int[] out) {
        if (n < 0 || n > keys.length || k < 0 || k > out.length) {
            throw new IllegalArgumentException("need 0 <= n <= keys.length and 0 <= k <= out.length, got n=" + n
                    + ", k=" + k);
        }
        int size = 0;
        for (int i = 0; i < n; i++) {
            float key = keys[i];
            if (Float.isNaN(key) || k == 0) {
                continue;
            }
            if (size == k && !(key > keys[out[size - 1]])) {
                continue; // not better than the current k-th (ties keep the earlier index)
            }
            int at = size == k ? k - 1 : size++;
            while (at > 0 && key > keys[out[at - 1]]) {
                out[at] = out[at - 1];
                at--;
            }
            out[at] = i;
        }
        return size;
    }
}
