package dev.scoregate.adserver;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The second-price auction's rules, one case each (Auction's class comment numbers them). */
class AuctionTest {
    private final Auction.Outcome outcome = new Auction.Outcome();

    private Auction.Outcome run(float reserve, float... ecpm) {
        return Auction.run(ecpm, ecpm.length, reserve, outcome);
    }

    @Test
    void theHighestBidWinsAndPaysTheSecondHighest() {
        run(1f, 4f, 9f, 7f, 2f);
        assertEquals(1, outcome.winner());
        assertEquals(2, outcome.runnerUp());
        assertEquals(7f, outcome.price());
        assertEquals(4, outcome.bidders());
    }

    @Test
    void theReserveSetsTheFloorOfThePrice() {
        run(8f, 4f, 9f, 7f);
        assertEquals(1, outcome.winner());
        assertEquals(8f, outcome.price()); // second highest (7) is below the reserve: pays the reserve
        assertEquals(-1, outcome.runnerUp());
        assertEquals(1, outcome.bidders());
        run(5f, 4f, 9f, 7f);
        assertEquals(7f, outcome.price()); // second highest above the reserve
    }

    @Test
    void aBidEqualToTheReserveCountsAndNaNNeverBids() {
        run(3f, Float.NaN, 3f, Float.NaN);
        assertEquals(1, outcome.winner());
        assertEquals(3f, outcome.price());
        run(0f, Float.NaN, Float.NaN);
        assertFalse(outcome.filled());
        assertEquals(0, outcome.bidders());
    }

    @Test
    void nothingAtOrAboveTheReserveLeavesTheRequestUnfilled() {
        run(10f, 4f, 9.99f, 7f);
        assertFalse(outcome.filled());
        assertEquals(-1, outcome.winner());
        assertTrue(Float.isNaN(outcome.price()));
        run(1f);
        assertFalse(outcome.filled());
    }

    @Test
    void tiesGoToTheEarlierCandidateWhoPaysItsOwnBid() {
        run(1f, 5f, 8f, 8f, 3f);
        assertEquals(1, outcome.winner());
        assertEquals(2, outcome.runnerUp());
        assertEquals(8f, outcome.price());
    }

    @Test
    void theWinnerNeverPaysMoreThanItBid() {
        java.util.SplittableRandom random = new java.util.SplittableRandom(7);
        float[] bids = new float[50];
        for (int trial = 0; trial < 1000; trial++) {
            for (int i = 0; i < bids.length; i++) {
                bids[i] = random.nextInt(10) == 0 ? Float.NaN : (float) random.nextDouble(0, 100);
            }
            float reserve = (float) random.nextDouble(0, 60);
            Auction.run(bids, bids.length, reserve, outcome);
            if (outcome.filled()) {
                assertTrue(outcome.price() >= reserve && outcome.price() <= bids[outcome.winner()]);
                for (float b : bids) {
                    assertTrue(Float.isNaN(b) || b <= bids[outcome.winner()]);
                }
            }
        }
    }

    @Test
    void onlyTheFirstNCandidatesTakePart() {
        Auction.run(new float[] {2f, 3f, 100f}, 2, 0f, outcome);
        assertEquals(1, outcome.winner());
        assertEquals(2f, outcome.price());
    }

    @Test
    void rejectsANegativeOrNaNReserve() {
        assertThrows(IllegalArgumentException.class, () -> run(-1f, 1f));
        assertThrows(IllegalArgumentException.class, () -> run(Float.NaN, 1f));
    }

    // ---------------------------------------------------------------------------------------- ad breaks
    // The same vectors as the Python pipeline's tests (tests/unit/gateway/test_pipeline_auction.py): both sides run
    // the same fill and the same prices.

    private final Auction.PodOutcome pod = new Auction.PodOutcome();
    private final int[] order = new int[16];

    private Auction.PodOutcome fill(float[] ecpm, float[] seconds, int[] groups, float podSeconds, int slots,
                                    boolean separate) {
        return Auction.fillPod(ecpm, ecpm.length, seconds, groups, podSeconds, slots, 1f, separate, order, pod);
    }

    @Test
    void aPodFillsBestFirstUnderSeparationAndTimeAndPaysGeneralisedSecondPrice() {
        float[] ecpm = {10f, 9f, 8f, 7f, 6f, 0.5f};
        float[] seconds = {15f, 15f, 30f, 15f, 15f, 15f};
        int[] category = {1, 1, 2, 3, 4, 5};
        fill(ecpm, seconds, category, 45f, 4, true);
        assertEquals(2, pod.count());
        assertEquals(0, pod.selected(0)); // 1 shares category 1 with 0: skipped
        assertEquals(2, pod.selected(1)); // 30 s fills the break exactly
        assertEquals(45f, pod.seconds());
        assertEquals(8f, pod.price(0)); // the next placed ad's eCPM
        assertEquals(7f, pod.price(1)); // the best loser below its own: ad 3
    }

    @Test
    void aPodRespectsItsSlotsAndSeparationCanBeOff() {
        float[] ecpm = {10f, 9f, 8f};
        float[] seconds = {10f, 10f, 10f};
        int[] same = {0, 0, 0};
        fill(ecpm, seconds, same, 60f, 3, true);
        assertEquals(1, pod.count());
        fill(ecpm, seconds, same, 60f, 2, false);
        assertEquals(2, pod.count());
        assertEquals(9f, pod.price(0));
        assertEquals(8f, pod.price(1));
        fill(ecpm, new float[] {90f, 90f, 90f}, same, 60f, 3, true);
        assertEquals(0, pod.count()); // nothing fits
        assertEquals(0f, pod.seconds());
        assertThrows(IndexOutOfBoundsException.class, () -> pod.selected(0));
    }

    @Test
    void aPodIgnoresNaNInfinityAndBidsBelowTheReserve() {
        float[] ecpm = {Float.NaN, Float.POSITIVE_INFINITY, 0.5f, 3f};
        fill(ecpm, new float[] {10f, 10f, 10f, 10f}, new int[] {1, 2, 3, 4}, 60f, 4, true);
        assertEquals(1, pod.count());
        assertEquals(3, pod.selected(0));
        assertEquals(1f, pod.price(0)); // alone: the reserve
    }
}
