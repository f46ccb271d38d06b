package dev.scoregate.bridge.features;

import java.util.Objects;
import java.util.Set;

/**
 * One feature group as the registry defines it ({@code cache/registry.py}): the entity it is keyed by, its width,
 * version, per-feature defaults and freshness SLO. Immutable.
 *
 * @param name            group name, e.g. {@code ad_profile}
 * @param entity          {@code user}, {@code ad}, {@code campaign} or {@code context}
 * @param version         layout version, part of the map name
 * @param defaults        one default per feature (served for missing entities); its length is the width
 * @param freshnessSloMs  values older than this are served but flagged stale
 */
public record FeatureGroupSpec(String name, String entity, int version, float[] defaults, long freshnessSloMs) {
    /** Entity kinds a group may be keyed by. */
    public static final Set<String> ENTITIES = Set.of("user", "ad", "campaign", "context");

    public FeatureGroupSpec {
        Objects.requireNonNull(name, "name");
        if (!ENTITIES.contains(entity)) {
            throw new IllegalArgumentException("group " + name + ": entity must be one of " + ENTITIES + ", got "
                    + entity);
        }
        if (version < 1 || version > 0xFFFF || defaults.length == 0 || defaults.length > 0xFFFF
                || freshnessSloMs <= 0) {
            throw new IllegalArgumentException("group " + name + ": 1 <= version <= 65535, 1 <= width <= 65535 and "
                    + "freshnessSloMs > 0 required");
        }
        defaults = defaults.clone();
    }

    /** Number of float32 values per entity. */
    public int width() {
        return defaults.length;
    }

    /** Default of feature {@code index}. */
    public float defaultValue(int index) {
        return defaults[index];
    }

    @Override
    public float[] defaults() {
        return defaults.clone();
    }

    /** The Hazelcast map holding this group: {@code fg.<name>.v<version>}. */
    public String mapName() {
        return "fg." + name + ".v" + version;
    }
}
