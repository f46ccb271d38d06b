package dev.scoregate.bridge;

import java.util.Optional;

/**
 * A model name with an optional version: {@code "ctr"} or {@code "ctr@7"}. The Java twin of the Python
 * {@code ModelId(name, version)}.
 *
 * <p>Omitting the version means "whatever the gateway is serving under this name right now": the version the
 * rollout policy picks, which may differ from one call to the next during a canary. Naming a version pins it, and
 * fails with {@link UnknownModelException} once that version is unloaded. {@link ScoreResult#servedBy()} always
 * carries the version that actually scored.
 *
 * @param name    non-empty, without {@code '@'}
 * @param version non-empty and without {@code '@'}, or {@code null} for "the serving version"
 */
public record ModelId(String name, String version) {

    public ModelId {
        String spec = version == null ? name : name + "@" + version;
        if (name == null || name.isBlank() || name.indexOf('@') >= 0) {
            throw new InvalidInputException(spec, "model", "model name must be non-empty and must not contain '@'");
        }
        if (version != null && (version.isBlank() || version.indexOf('@') >= 0)) {
            throw new InvalidInputException(spec, "model",
                    "version after '@' must be non-empty and must not contain '@'");
        }
    }

    /** Parses {@code "name"} or {@code "name@version"}. */
    public static ModelId parse(String spec) {
        if (spec == null) {
            throw new InvalidInputException(null, "model", "model name is required");
        }
        int at = spec.indexOf('@');
        return at < 0 ? new ModelId(spec, null) : new ModelId(spec.substring(0, at), spec.substring(at + 1));
    }

    /** The version, if the id pins one. */
    public Optional<String> pinnedVersion() {
        return Optional.ofNullable(version);
    }

    /** {@code name} or {@code name@version}: the form {@link #parse} reads back. */
    @Override
    public String toString() {
        return version == null ? name : name + "@" + version;
    }
}
