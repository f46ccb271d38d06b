package dev.scoregate.bridge.features;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Where each column of a model's input comes from: for output column {@code c}, group {@code columnGroup[c]} (an
 * index into {@link #groups()}) and feature {@code columnIndex[c]} within that group's vector. Built once per model;
 * immutable and thread-safe.
 */
public final class FeaturePlan {
    private final List<FeatureGroupSpec> groups;
    private final Map<String, Integer> byName;
    private final int featureCount;
    /** Per group: source indices in the group's vector and destination columns, in column order. */
    private final int[][] src;
    private final int[][] dst;

    private FeaturePlan(List<FeatureGroupSpec> groups, int[] columnGroup, int[] columnIndex) {
        if (columnGroup.length != columnIndex.length || columnGroup.length == 0) {
            throw new IllegalArgumentException("columnGroup and columnIndex must have the same, non-zero length; got "
                    + columnGroup.length + " and " + columnIndex.length);
        }
        this.groups = List.copyOf(groups);
        this.byName = new HashMap<>();
        for (int g = 0; g < this.groups.size(); g++) {
            if (byName.put(this.groups.get(g).name(), g) != null) {
                throw new IllegalArgumentException("group " + this.groups.get(g).name() + " is in the plan twice");
            }
        }
        this.featureCount = columnGroup.length;
        List<List<int[]>> pairs = new ArrayList<>();
        for (int g = 0; g < this.groups.size(); g++) {
            pairs.add(new ArrayList<>());
        }
        for (int c = 0; c < columnGroup.length; c++) {
            int g = columnGroup[c];
            if (g < 0 || g >= this.groups.size()) {
                throw new IllegalArgumentException("column " + c + " names group " + g + " of " + this.groups.size());
            }
            int i = columnIndex[c];
            if (i < 0 || i >= this.groups.get(g).width()) {
                throw new IllegalArgumentException("column " + c + " reads feature " + i + " of group "
                        + this.groups.get(g).name() + ", which has " + this.groups.get(g).width());
            }
            pairs.get(g).add(new int[] {i, c});
        }
        this.src = new int[this.groups.size()][];
        this.dst = new int[this.groups.size()][];
        for (int g = 0; g < this.groups.size(); g++) {
            List<int[]> p = pairs.get(g);
            src[g] = p.stream().mapToInt(x -> x[0]).toArray();
            dst[g] = p.stream().mapToInt(x -> x[1]).toArray();
        }
    }

    /**
     * A plan over {@code groups}: output column {@code c} is feature {@code columnIndex[c]} of group
     * {@code groups.get(columnGroup[c])}.
     *
     * @throws IllegalArgumentException if a column names a group or feature that does not exist
     */
    public static FeaturePlan of(List<FeatureGroupSpec> groups, int[] columnGroup, int[] columnIndex) {
        Objects.requireNonNull(groups, "groups");
        return new FeaturePlan(groups, columnGroup.clone(), columnIndex.clone());
    }

    /** Every feature of every group, in order: the layout of a model that reads whole groups side by side. */
    public static FeaturePlan concat(List<FeatureGroupSpec> groups) {
        int total = groups.stream().mapToInt(FeatureGroupSpec::width).sum();
        int[] cg = new int[total];
        int[] ci = new int[total];
        int c = 0;
        for (int g = 0; g < groups.size(); g++) {
            for (int i = 0; i < groups.get(g).width(); i++, c++) {
                cg[c] = g;
                ci[c] = i;
            }
        }
        return new FeaturePlan(groups, cg, ci);
    }

    public List<FeatureGroupSpec> groups() {
        return groups;
    }

    /** Columns per output row (F). */
    public int featureCount() {
        return featureCount;
    }

    /** Index of the group called {@code name} in {@link #groups()}, or -1. */
    public int indexOf(String name) {
        Integer g = byName.get(name);
        return g == null ? -1 : g;
    }

    int[] sources(int group) {
        return src[group];
    }

    int[] destinations(int group) {
        return dst[group];
    }
}
