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
        super(modelName, message(modelName, loaded));
        this.loaded = List.copyOf(loaded);
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
