package dev.scoregate.adserver;

/**
 * A single-slot second-price auction with a reserve price, on eCPMs; and CTV ad breaks ({@link #fillPod}).
 *
 * <p>Rules, in order:
 * <ol>
 *   <li>A candidate bids its eCPM; a NaN eCPM (filtered, or not priceable) does not bid.</li>
 *   <li>Bids below the reserve are out.</li>
 *   <li>The highest remaining bid wins; among equal bids, the lower index (the earlier candidate).</li>
 *   <li>The winner pays the larger of the reserve and the second-highest remaining bid: with one bidder above the
 *       reserve, the reserve. It never pays more than its own bid.</li>
 *   <li>No bid at or above the reserve: no winner, the request goes unfilled.</li>
 * </ol>
 * Prices are eCPMs (per thousand impressions) in the bids' currency. Pure; an {@link Outcome} belongs to one thread.
 */
public final class Auction {
    private Auction() {
    }

    /** What one auction decided. Mutable and reused, so that the request loop allocates nothing per auction. */
    public static final class Outcome {
        private int winner = -1;
        private int runnerUp = -1;
        private float price = Float.NaN;
        private int bidders;

        /** Index of the winning candidate, or -1 when the request goes unfilled. */
        public int winner() {
            return winner;
        }

        /** Index of the second-highest bid at or above the reserve, or -1. */
        public int runnerUp() {
            return runnerUp;
        }

        /** The clearing price (eCPM), or NaN without a winner. */
        public float price() {
            return price;
        }

        /** Bids at or above the reserve. */
        public int bidders() {
            return bidders;
        }

        public boolean filled() {
            return winner >= 0;
        }

        @Override
        public String toString() {
            return filled() ? "Outcome[winner=" + winner + ", price=" + price + ", runnerUp=" + runnerUp + ", bidders="
                    + bidders + "]" : "Outcome[unfilled]";
        }
    }

    /**
     * Runs the auction over {@code ecpm[0..n)} and writes the result into {@code outcome}.
     *
     * @param ecpm    each candidate's bid as an eCPM (NaN: does not bid); may be changed by the caller afterwards
     * @param n       candidates
     * @param reserve the reserve price (eCPM), {@code >= 0}
     * @param outcome where the result goes (overwritten)
     * @return {@code outcome}
     */
    public static Outcome run(float[] ecpm, int n, float reserve, Outcome outcome) {
        if (!(reserve >= 0)) {
            throw new IllegalArgumentException("the reserve must be >= 0, got " + reserve);
        }
        int bidders = 0;
        int best = -1;
        int second = -1;
        for (int i = 0; i < n; i++) {
            float bid = ecpm[i];
            if (!(bid >= reserve)) { // NaN fails too
                continue;
            }
            bidders++;
            if (best < 0 || bid > ecpm[best]) {
                second = best;
                best = i;
            } else if (second < 0 || bid > ecpm[second]) {
                second = i;
            }
        }
        outcome.bidders = bidders;
        outcome.winner = best;
        outcome.runnerUp = second;
        outcome.price = best < 0 ? Float.NaN : second < 0 ? reserve : Math.max(reserve, ecpm[second]);
        return outcome;
    }

    /** What one ad break's fill decided. Mutable and reused, like {@link Outcome}. */
    public static final class PodOutcome {
        private int[] selected = new int[0];
        private float[] prices = new float[0];
        private int count;
        private float seconds;

        /** Ads placed in the break. */
        public int count() {
            return count;
        }

        /** Candidate index of the {@code k}-th ad placed, best eCPM first (play order). */
        public int selected(int k) {
            return selected[java.util.Objects.checkIndex(k, count)];
        }

        /** Clearing price (eCPM) of the {@code k}-th ad placed. */
        public float price(int k) {
            return prices[java.util.Objects.checkIndex(k, count)];
        }

        /** Seconds of the break filled. */
        public float seconds() {
            return seconds;
        }

        void ensure(int n) {
            if (selected.length < n) {
                selected = new int[n];
                prices = new float[n];
            }
        }
    }

    /**
     * Fills an ad break of {@code podSeconds} with at most {@code maxSlots} ads, the rules of the Python pipeline's
     * {@code fill_pod} (the same inputs give the same break and prices):
     * <ol>
     *   <li>Candidates with a finite eCPM at or above the reserve and a creative of 0 &lt; length &lt;= the break
     *       are taken best eCPM first (ties: the lower index).</li>
     *   <li>An ad goes in if it fits the seconds left and, with {@code separate}, no ad of its group (advertiser
     *       category) is in the break already (competitive separation).</li>
     *   <li>Generalised second price: each ad pays the next placed ad's eCPM; the last pays the best eCPM below its
     *       own that did not get in; never less than the reserve.</li>
     * </ol>
     *
     * @param order scratch of at least {@code n} ints (reused by the caller: nothing is allocated per break)
     */
    public static PodOutcome fillPod(float[] ecpm, int n, float[] seconds, int[] groups, float podSeconds,
                                     int maxSlots, float reserve, boolean separate, int[] order, PodOutcome out) {
        if (!(reserve >= 0)) {
            throw new IllegalArgumentException("the reserve must be >= 0, got " + reserve);
        }
        int eligible = 0;
        for (int i = 0; i < n; i++) {
            float bid = ecpm[i];
            if (bid >= reserve && !Float.isInfinite(bid) && seconds[i] > 0 && seconds[i] <= podSeconds) {
                order[eligible++] = i;
            }
        }
        for (int a = 1; a < eligible; a++) { // insertion sort, best first, stable: a few hundred candidates at most
            int x = order[a];
            int b = a - 1;
            while (b >= 0 && ecpm[order[b]] < ecpm[x]) {
                order[b + 1] = order[b];
                b--;
            }
            order[b + 1] = x;
        }
        out.ensure(Math.max(1, maxSlots));
        int count = 0;
        float left = podSeconds;
        for (int k = 0; k < eligible && count < maxSlots && left > 0; k++) {
            int i = order[k];
            if (seconds[i] > left) {
                continue;
            }
            boolean clash = false;
            for (int j = 0; separate && j < count; j++) {
                clash |= groups[out.selected[j]] == groups[i];
            }
            if (clash) {
                continue;
            }
            out.selected[count++] = i;
            left -= seconds[i];
        }
        for (int k = 0; k < count; k++) {
            float price;
            if (k + 1 < count) {
                price = ecpm[out.selected[k + 1]];
            } else {
                float own = ecpm[out.selected[k]];
                price = reserve;
                for (int e = 0; e < eligible; e++) {
                    int i = order[e];
                    if (!placed(out, count, i) && ecpm[i] <= own && ecpm[i] > price) {
                        price = ecpm[i];
                    }
                }
            }
            out.prices[k] = Math.max(reserve, price);
        }
        out.count = count;
        out.seconds = podSeconds - left;
        return out;
    }

    private static boolean placed(PodOutcome out, int count, int candidate) {
        for (int j = 0; j < count; j++) {
            if (out.selected[j] == candidate) {
                return true;
            }
        }
        return false;
    }
}
