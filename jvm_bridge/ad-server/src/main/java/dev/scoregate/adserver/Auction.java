package dev.scoregate.adserver;

/**
 * A single-slot second-price auction with a reserve price, on eCPMs.
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
}
