package dev.scoregate.bridge;

/**
 * Every slot of a {@link FeatureArena} is leased and none came back in time. The arena is sized for peak
 * concurrency, so this usually means slots are leaked (not released) or the gateway is slow; shed the request.
 */
public class ArenaExhaustedException extends ScoregateException {
    private static final long serialVersionUID = 1L;

    public ArenaExhaustedException(String message) {
        super(null, message);
    }
}
