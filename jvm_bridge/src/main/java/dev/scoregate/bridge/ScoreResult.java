package dev.scoregate.bridge;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.Objects;

/**
 * The outcome of a successful {@link ModelGateway#score} call: which model version scored, and the scores, which
 * live in the request's own {@link ScoreRequest#scoreBuffer()} (the gateway writes there; nothing is copied).
 *
 * <p>The result is a view: it stays valid as long as the caller keeps the score buffer (or its arena slot) unreleased
 * and unmodified.
 */
public final class ScoreResult {
    private final ModelId servedBy;
    private final int rows;
    private final ByteBuffer scoreBuffer;

    private ScoreResult(ModelId servedBy, int rows, ByteBuffer scoreBuffer) {
        this.servedBy = servedBy;
        this.rows = rows;
        this.scoreBuffer = scoreBuffer;
    }

    /**
     * For gateways: the result of {@code request}, scored by {@code servedBy}.
     *
     * @param servedBy the model that scored, with its version (the gateway always knows which version ran)
     * @throws IllegalArgumentException if {@code servedBy} has no version
     */
    public static ScoreResult of(ModelId servedBy, ScoreRequest request) {
        Objects.requireNonNull(servedBy, "servedBy");
        if (servedBy.version() == null) {
            throw new IllegalArgumentException("servedBy must name the version that scored, got " + servedBy);
        }
        return new ScoreResult(servedBy, request.rows(), request.scoreBuffer());
    }

    /** The model and version that produced these scores; during a canary this varies between calls. */
    public ModelId servedBy() {
        return servedBy;
    }

    public int rows() {
        return rows;
    }

    /** The score of row {@code row}, read from the score buffer. */
    public float score(int row) {
        Objects.checkIndex(row, rows);
        return scoreBuffer.getFloat(row * Float.BYTES);
    }

    /** All scores as a float view of the score buffer: position 0, limit {@link #rows()}. */
    public FloatBuffer scores() {
        // slice() resets the order to BIG_ENDIAN; asFloatBuffer() takes the order current at the call.
        return scoreBuffer.slice(0, rows * Float.BYTES).order(scoreBuffer.order()).asFloatBuffer();
    }

    /** The score buffer itself (the request's). */
    public ByteBuffer scoreBuffer() {
        return scoreBuffer;
    }

    @Override
    public String toString() {
        return "ScoreResult[servedBy=" + servedBy + ", rows=" + rows + "]";
    }
}
