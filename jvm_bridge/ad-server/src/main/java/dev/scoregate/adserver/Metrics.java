package dev.scoregate.adserver;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.LongAdder;

/**
 * The ad server's counters: one {@link Recorder} per request thread (single writer, no contention on the hot path)
 * and {@link Snapshot}s that sum them for the live line and the closing summary. Errors are rare, so they go to one
 * shared map by exception type, with the first message of each type.
 */
public final class Metrics {
    static final int REQUESTS = 0;
    static final int ERRORS = 1;
    static final int MODEL_CALLS = 2;
    static final int FILLED = 3;
    static final int CLEARING_MICROS = 4;
    static final int WINNING_MICROS = 5;
    static final int SCORED = 6;
    static final int UNSAFE = 7;
    static final int PODS = 8;
    static final int POD_ADS = 9;
    static final int POD_MILLIS = 10;
    static final int IMPRESSIONS = 11;
    static final int PODS_FILLED = 12;
    private static final int WINS = 13;

    private final int objectives;
    private final List<Recorder> recorders = new ArrayList<>();
    private final Map<String, LongAdder> errorCounts = new ConcurrentHashMap<>();
    private final Map<String, String> firstErrors = new ConcurrentHashMap<>();

    /** @param objectives how many objective codes wins are counted by */
    public Metrics(int objectives) {
        this.objectives = objectives;
    }

    /** A new recorder for one request thread. Call before the threads start. */
    public synchronized Recorder newRecorder() {
        Recorder recorder = new Recorder();
        recorders.add(recorder);
        return recorder;
    }

    /** The sum of every recorder right now (cumulative since the start). Any thread. */
    public synchronized Snapshot snapshot() {
        long[] counters = new long[WINS + objectives];
        long[] latency = new long[LatencyHistogram.BUCKETS];
        for (Recorder r : recorders) {
            for (int i = 0; i < counters.length; i++) {
                counters[i] += r.counters.getAcquire(i);
            }
            r.latency.addTo(latency);
        }
        return new Snapshot(counters, latency);
    }

    /** Errors so far by exception type (simple class name), sorted by name. */
    public Map<String, Long> errors() {
        Map<String, Long> out = new TreeMap<>();
        errorCounts.forEach((k, v) -> out.put(k, v.sum()));
        return out;
    }

    /** The first message seen for each error type. */
    public Map<String, String> firstErrors() {
        return new TreeMap<>(firstErrors);
    }

    /** One request thread's counters. Only that thread writes; {@link Metrics#snapshot()} reads. */
    public final class Recorder {
        private final AtomicLongArray counters = new AtomicLongArray(WINS + objectives);
        private final LatencyHistogram latency = new LatencyHistogram();

        private Recorder() {
        }

        private void add(int counter, long delta) {
            counters.setRelease(counter, counters.getPlain(counter) + delta);
        }

        /** A request that went through: its model calls, candidates scored and filtered, and its auction. */
        public void served(long latencyNanos, int modelCalls, int scored, int unsafe, Auction.Outcome outcome,
                           int winnerObjective, float winnerEcpm) {
            latency.record(latencyNanos);
            add(REQUESTS, 1);
            add(MODEL_CALLS, modelCalls);
            add(SCORED, scored);
            add(UNSAFE, unsafe);
            if (outcome.filled()) {
                add(FILLED, 1);
                add(IMPRESSIONS, 1);
                add(CLEARING_MICROS, Math.round(outcome.price() * 1e6));
                add(WINNING_MICROS, Math.round(winnerEcpm * 1e6));
                add(WINS + winnerObjective, 1);
            }
        }

        /**
         * A CTV ad-break request: filled when at least one ad was placed; the clearing and winning sums add every
         * placed ad's price and eCPM; each placed ad counts as a win of its objective.
         */
        public void servedPod(long latencyNanos, int modelCalls, int scored, int unsafe, Auction.PodOutcome pod,
                              float[] ecpm, int[] objectiveOfCandidate) {
            latency.record(latencyNanos);
            add(REQUESTS, 1);
            add(MODEL_CALLS, modelCalls);
            add(SCORED, scored);
            add(UNSAFE, unsafe);
            add(PODS, 1);
            add(POD_ADS, pod.count());
            add(POD_MILLIS, Math.round(pod.seconds() * 1e3));
            add(IMPRESSIONS, pod.count());
            if (pod.count() > 0) {
                add(FILLED, 1);
                add(PODS_FILLED, 1);
            }
            for (int k = 0; k < pod.count(); k++) {
                add(CLEARING_MICROS, Math.round(pod.price(k) * 1e6));
                add(WINNING_MICROS, Math.round(ecpm[pod.selected(k)] * 1e6));
                add(WINS + objectiveOfCandidate[pod.selected(k)], 1);
            }
        }

        /** A request that failed with {@code error} after {@code modelCalls} successful calls. */
        public void failed(RuntimeException error, int modelCalls) {
            add(REQUESTS, 1);
            add(ERRORS, 1);
            add(MODEL_CALLS, modelCalls);
            String type = error.getClass().getSimpleName();
            errorCounts.computeIfAbsent(type, k -> new LongAdder()).increment();
            firstErrors.putIfAbsent(type, String.valueOf(error.getMessage()));
        }
    }

    /** Summed counters and latency counts at one moment; {@link #minus} gives an interval. */
    public record Snapshot(long[] counters, long[] latency) {
        public long requests() {
            return counters[REQUESTS];
        }

        public long errors() {
            return counters[ERRORS];
        }

        public long modelCalls() {
            return counters[MODEL_CALLS];
        }

        public long filled() {
            return counters[FILLED];
        }

        public long scored() {
            return counters[SCORED];
        }

        /** CTV ad-break requests served. */
        public long pods() {
            return counters[PODS];
        }

        /** Ad breaks with at least one ad placed. */
        public long podsFilled() {
            return counters[PODS_FILLED];
        }

        /** Ads placed in ad breaks. */
        public long podAds() {
            return counters[POD_ADS];
        }

        /** Seconds of ad breaks filled. */
        public double podSeconds() {
            return counters[POD_MILLIS] / 1e3;
        }

        public long unsafe() {
            return counters[UNSAFE];
        }

        /** Wins of objective code {@code objective}. */
        public long wins(int objective) {
            return counters[WINS + objective];
        }

        /** Filled requests over requests, 0 to 1 (0 without requests). */
        public double fillRate() {
            return requests() == 0 ? 0 : (double) filled() / requests();
        }

        /** Mean clearing price (eCPM) per ad shown (a filled slot, or an ad placed in a break); 0 without any. */
        public double averageClearingPrice() {
            return counters[IMPRESSIONS] == 0 ? 0 : counters[CLEARING_MICROS] / 1e6 / counters[IMPRESSIONS];
        }

        /** Mean eCPM of the ads shown; 0 without any. */
        public double averageWinningEcpm() {
            return counters[IMPRESSIONS] == 0 ? 0 : counters[WINNING_MICROS] / 1e6 / counters[IMPRESSIONS];
        }

        /** Latency percentile in nanoseconds. */
        public long latencyPercentile(double percent) {
            return LatencyHistogram.percentile(latency, percent);
        }

        /** This snapshot minus an earlier one. */
        public Snapshot minus(Snapshot earlier) {
            long[] c = counters.clone();
            long[] l = latency.clone();
            for (int i = 0; i < c.length; i++) {
                c[i] -= earlier.counters[i];
            }
            for (int i = 0; i < l.length; i++) {
                l[i] -= earlier.latency[i];
            }
            return new Snapshot(c, l);
        }
    }
}
