package dev.scoregate.bridge;

import java.util.List;

/** The request names a model, or a {@code name@version}, that the gateway has not loaded. */
public class UnknownModelException extends ScoregateException {
    private static final long serialVersionUID = 1L;

    private final List<String> loaded;

    /**
     * @param modelName the name the request used
     * @param loaded    the models the gateway does serve, for the message; may be empty
     */
    public UnknownModelException(String modelName, List<String> loaded) {
        this(modelName, loaded, message(modelName, loaded));
    }

    /** Takes the finished message; the public constructor formats it. */
    private UnknownModelException(String modelName, List<String> loaded, String message) {
        super(modelName, message);
        this.loaded = List.copyOf(loaded);
    }

    /**
     * For transports: an error the Python gateway reported, with its message kept verbatim (Python's message
     * already says which model and what is loaded, in the same words as this class's).
     */
    public static UnknownModelException fromGateway(String modelName, String message, List<String> loaded) {
        return new UnknownModelException(modelName, loaded, message);
    }

    /** The models the gateway reported as loaded when this was thrown (possibly empty: not every transport knows). */
    public List<String> loaded() {
        return loaded;
    }

    private static String message(String modelName, List<String> loaded) {
        String hint = loaded.isEmpty() ? "" : "; loaded: " + String.join(", ", loaded);
        return "unknown model '" + modelName + "'" + hint;
    }
}
