package dev.scoregate.bridge.inprocess;

import dev.scoregate.bridge.InvalidInputException;
import dev.scoregate.bridge.ModelId;

/**
 * The signature of one served model, as much of it as the Java side checks requests against. The Python host builds
 * one per loaded model; the position in the list given to {@link InProcessGateway} is the model index a lane reports
 * in its control block.
 *
 * @param name        the name requests use, e.g. {@code "ctr"}; non-empty, without {@code '@'}
 * @param version     the version serving under that name; required, because every
 *                    {@link dev.scoregate.bridge.ScoreResult#servedBy()} names the version that scored
 * @param features    float32 features per row: the model's input is {@code [rows, features]}
 * @param outputWidth float32 outputs per row, written row-major; 1 for one score per row. A request's score buffer
 *                    must hold {@code rows x outputWidth} floats
 */
public record ModelSpec(String name, String version, int features, int outputWidth) {

    public ModelSpec {
        if (version == null) {
            throw new IllegalArgumentException("model '" + name + "': a version is required; results name the "
                    + "version that scored");
        }
        try {
            new ModelId(name, version);
        } catch (InvalidInputException e) {
            throw new IllegalArgumentException(e.getMessage(), e);
        }
        if (features <= 0 || outputWidth <= 0) {
            throw new IllegalArgumentException("model '" + name + "@" + version + "': features and outputWidth "
                    + "must be > 0, got " + features + " and " + outputWidth);
        }
    }

    /** {@code name@version}: what {@link dev.scoregate.bridge.ScoreResult#servedBy()} reports. */
    public ModelId id() {
        return new ModelId(name, version);
    }
}
