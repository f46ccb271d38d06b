package dev.scoregate.bridge;

import java.util.Optional;

/**
 * Root of every exception Scoregate throws on purpose. Unchecked: an ad server catches it at the one place it falls
 * back (a default bid, a cached score), not around every call.
 *
 * <p>The tree mirrors the Python gateway's {@code gateway.errors} one to one where the concepts match; the
 * transport maps each Python error to the class on the same line (STYLE.md, lesson 5):
 *
 * <pre>
 * ScoregateException               ScoregateError (and ModelLoadError, ModelExecutionError)
 * ├── UnknownModelException        ModelNotFoundError: no such model or name@version is loaded
 * ├── InvalidInputException        InvalidInputError and its subclasses: retrying unchanged fails again
 * ├── DeadlineExceededException    DeadlineExceededError: the deadline passed before the request was served
 * ├── GatewayUnavailableException  UnavailableError: no gateway registered, or the path to it is down
 * └── ArenaExhaustedException      (Java only) every FeatureArena slot is leased; back off or shed load
 * </pre>
 *
 * <p>Messages are written to be read in a log without the code: they name the model (when there is one), what was
 * wrong, and where it makes sense, what to do.
 */
public class ScoregateException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The model the failed request named, or {@code null} when the failure is not about one model. */
    private final String modelName;

    public ScoregateException(String modelName, String message) {
        this(modelName, message, null);
    }

    public ScoregateException(String modelName, String message, Throwable cause) {
        super(message, cause);
        this.modelName = modelName;
    }

    /** The model the request named, exactly as given ({@code "ctr"} or {@code "ctr@7"}), when there is one. */
    public Optional<String> modelName() {
        return Optional.ofNullable(modelName);
    }

    /** {@code "model 'ctr'"}: the prefix every model-specific message starts with, matching the Python side. */
    static String describeModel(String modelName) {
        return modelName == null ? "request" : "model '" + modelName + "'";
    }
}
