package dev.scoregate.bridge.features;

import java.util.Arrays;
import java.util.List;

/**
 * What one {@link FeatureReader#hydrate} call served, per group of its plan (same order as
 * {@link FeaturePlan#groups()}). {@code missing[g]}: rows of group {@code g} served with defaults (no stored value,
 * a value of another layout, a failed read, or a read past the deadline); {@code stale[g]}: rows served but older
 * than the group's freshness SLO. Groups supplied inline count neither.
 */
public record Hydration(int rows, List<String> groups, int[] missing, int[] stale, boolean timedOut,
                        boolean failed, long elapsedNanos) {
    /** Whether anything was served other than fresh stored values. */
    public boolean degraded() {
        return timedOut || failed || Arrays.stream(missing).anyMatch(x -> x > 0) || Arrays.stream(stale).anyMatch(
                x -> x > 0);
    }

    /** Missing rows of the group called {@code name} (0 for a group not in the plan). */
    public int missing(String name) {
        int g = groups.indexOf(name);
        return g < 0 ? 0 : missing[g];
    }

    /** Stale rows of the group called {@code name} (0 for a group not in the plan). */
    public int stale(String name) {
        int g = groups.indexOf(name);
        return g < 0 ? 0 : stale[g];
    }

    @Override
    public String toString() {
        return "Hydration[rows=" + rows + ", groups=" + groups + ", missing=" + Arrays.toString(missing) + ", stale="
                + Arrays.toString(stale) + ", timedOut=" + timedOut + ", failed=" + failed + ", elapsedUs="
                + elapsedNanos / 1000 + "]";
    }
}
