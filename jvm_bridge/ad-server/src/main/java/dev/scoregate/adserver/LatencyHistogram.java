package dev.scoregate.adserver;

import java.util.concurrent.atomic.AtomicLongArray;

/**
 * A log-linear latency histogram in nanoseconds: exact below 64 ns, then 32 buckets per power of two (a bucket spans
 * at most 1/32 of its value, so a reported percentile is within about 3 %). The ad server's one dependency is the
 * facade, so this is the few lines of HdrHistogram it needs.
 *
 * <p>Threads: one writer ({@link #record}, the request thread that owns it) and any number of readers
 * ({@link #addTo}); counts are cumulative, and a reader takes interval figures by subtracting its previous snapshot.
 * Static helpers work on such snapshots ({@code long[BUCKETS]}).
 */
public final class LatencyHistogram {
    /** Buckets of a snapshot. */
    public static final int BUCKETS = 64 + (63 - 6) * 32;
    private static final int SUB_BITS = 5;

    private final AtomicLongArray counts = new AtomicLongArray(BUCKETS);

    /** Counts one value ({@code nanos < 1} counts as 0). Single writer. */
    public void record(long nanos) {
        int i = index(nanos);
        counts.setRelease(i, counts.getPlain(i) + 1);
    }

    /** Adds this histogram's cumulative counts to {@code snapshot}. Any thread. */
    public void addTo(long[] snapshot) {
        for (int i = 0; i < BUCKETS; i++) {
            snapshot[i] += counts.getAcquire(i);
        }
    }

    /** The bucket of {@code value}. */
    static int index(long value) {
        if (value < 64) {
            return (int) Math.max(0, value);
        }
        int exponent = 63 - Long.numberOfLeadingZeros(value); // >= 6
        int mantissa = (int) (value >>> (exponent - SUB_BITS)); // [32, 64)
        return 64 + (exponent - 6) * 32 + (mantissa - 32);
    }

    /** The middle of bucket {@code index}'s range: what a percentile in that bucket reports. */
    static long value(int index) {
        if (index < 64) {
            return index;
        }
        int exponent = 6 + (index - 64) / 32;
        long mantissa = 32 + (index - 64) % 32;
        int shift = exponent - SUB_BITS;
        return (mantissa << shift) + ((1L << shift) >> 1);
    }

    /** Values in a snapshot. */
    public static long count(long[] snapshot) {
        long total = 0;
        for (long c : snapshot) {
            total += c;
        }
        return total;
    }

    /**
     * The value at percentile {@code percent} (0-100) of a snapshot: the smallest bucket whose cumulative count
     * reaches {@code ceil(percent / 100 * count)}. 0 for an empty snapshot.
     */
    public static long percentile(long[] snapshot, double percent) {
        long total = count(snapshot);
        if (total == 0) {
            return 0;
        }
        long rank = Math.max(1, (long) Math.ceil(percent / 100.0 * total));
        long seen = 0;
        for (int i = 0; i < snapshot.length; i++) {
            seen += snapshot[i];
            if (seen >= rank) {
                return value(i);
            }
        }
        return value(snapshot.length - 1);
    }

    /** The largest bucket's value holding any count, 0 for an empty snapshot. */
    public static long max(long[] snapshot) {
        for (int i = snapshot.length - 1; i >= 0; i--) {
            if (snapshot[i] != 0) {
                return value(i);
            }
        }
        return 0;
    }
}
