package dev.scoregate.bridge;

import java.util.Optional;

/**
 * The request is malformed; retrying it unchanged fails again. Names the model, the input and the problem, in the
 * same words as the Python {@code InvalidInputError}: {@code model 'ctr' input 'features': ...}.
 *
 * <p>Thrown both by {@link ScoreRequest.Builder#build()} (buffer layout, shapes, missing fields) before anything
 * crosses into Python, and by the gateway for what only the model knows (feature count, non-finite values).
 */
public class InvalidInputException extends ScoregateException {
    private static final long serialVersionUID = 1L;

    private final String inputName;

    /**
     * @param modelName the model the request named, or {@code null} if it named none
     * @param inputName the input at fault ({@code "features"}, {@code "scores"}, {@code "rows"}...), or {@code null}
     * @param problem   what is wrong, and if it helps, how to fix it
     */
    public InvalidInputException(String modelName, String inputName, String problem) {
        this(modelName, inputName, problem, null);
    }

    public InvalidInputException(String modelName, String inputName, String problem, Throwable cause) {
        this(modelName, inputName, cause, message(modelName, inputName, problem));
    }

    /** Takes the finished message; the public constructors format it. */
    private InvalidInputException(String modelName, String inputName, Throwable cause, String message) {
        super(modelName, message, cause);
        this.inputName = inputName;
    }

    /**
     * For transports: an error the Python gateway reported, with its message kept verbatim (Python's message
     * already says the model, the input and the problem, in the same words as this class's).
     */
    public static InvalidInputException fromGateway(String modelName, String message) {
        return new InvalidInputException(modelName, null, null, message);
    }

    /** The input at fault, when the problem is about one input. */
    public Optional<String> inputName() {
        return Optional.ofNullable(inputName);
    }

    private static String message(String modelName, String inputName, String problem) {
        String where = describeModel(modelName) + (inputName == null ? "" : " input '" + inputName + "'");
        return where + ": " + problem;
    }
}
