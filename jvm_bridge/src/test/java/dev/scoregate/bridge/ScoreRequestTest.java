package dev.scoregate.bridge;

import static dev.scoregate.bridge.Buffers.FOREIGN_ORDER;
import static dev.scoregate.bridge.Buffers.floats;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.Optional;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

class ScoreRequestTest {
    private static final int ROWS = 4;
    private static final int FEATURES = 8;

    private final ByteBuffer features = floats(ROWS * FEATURES);
    private final ByteBuffer scores = floats(ROWS);

    private ScoreRequest.Builder valid() {
        return ScoreRequest.builder()
                .model("ctr@3")
                .timeout(Duration.ofMillis(10))
                .rows(ROWS)
                .featureCount(FEATURES)
                .featureBuffer(features)
                .scoreBuffer(scores);
    }

    private static InvalidInputException rejected(ScoreRequest.Builder builder) {
        return assertThrows(InvalidInputException.class, builder::build);
    }

    private InvalidInputException rejectedWith(Consumer<ScoreRequest.Builder> change) {
        ScoreRequest.Builder builder = valid();
        change.accept(builder);
        return rejected(builder);
    }

    @Test
    void buildsAValidRequestWithoutCopying() {
        ScoreRequest request = valid().build();
        assertEquals(new ModelId("ctr", "3"), request.model());
        assertEquals(ROWS, request.rows());
        assertEquals(FEATURES, request.featureCount());
        assertSame(features, request.featureBuffer());
        assertSame(scores, request.scoreBuffer());
        assertEquals(Optional.empty(), request.slot());
    }

    @Test
    void timeoutIsResolvedAgainstNanoTimeAtBuild() {
        Duration timeout = Duration.ofMillis(10);
        long before = System.nanoTime();
        ScoreRequest request = valid().timeout(timeout).build();
        long after = System.nanoTime();
        assertTrue(request.deadlineNanos() - before >= timeout.toNanos());
        assertTrue(request.deadlineNanos() - after <= timeout.toNanos());
        assertEquals(timeout.toNanos(), request.remainingNanos(request.deadlineNanos() - timeout.toNanos()));
    }

    @Test
    void absoluteDeadlineIsKeptAsGiven() {
        long deadline = System.nanoTime() + 1_000_000;
        ScoreRequest request = valid().timeout(null).deadlineNanos(deadline).build();
        assertEquals(deadline, request.deadlineNanos());
        assertEquals(-5, request.remainingNanos(deadline + 5));
    }

    @Test
    void rejectsHeapFeatureBuffer() {
        InvalidInputException e = rejectedWith(b -> b.featureBuffer(
                ByteBuffer.allocate(ROWS * FEATURES * Float.BYTES).order(ByteOrder.nativeOrder())));
        assertEquals(Optional.of("ctr@3"), e.modelName());
        assertEquals(Optional.of("features"), e.inputName());
        assertTrue(e.getMessage().startsWith("model 'ctr@3' input 'features': features buffer is a heap ByteBuffer"),
                e.getMessage());
    }

    @Test
    void rejectsHeapScoreBuffer() {
        InvalidInputException e = rejectedWith(b -> b.scoreBuffer(ByteBuffer.allocate(ROWS * Float.BYTES)));
        assertEquals(Optional.of("scores"), e.inputName());
        assertTrue(e.getMessage().contains("must be direct"), e.getMessage());
    }

    @Test
    void rejectsForeignByteOrderNamingOnnxRuntime() {
        // On this (little-endian) host: a BIG_ENDIAN buffer, ByteBuffer's default order.
        InvalidInputException e = rejectedWith(b -> b.featureBuffer(features.duplicate().order(FOREIGN_ORDER)));
        assertEquals(Optional.of("features"), e.inputName());
        String message = e.getMessage();
        assertTrue(message.contains(FOREIGN_ORDER + " but this host is " + ByteOrder.nativeOrder()), message);
        assertTrue(message.contains("ONNX Runtime") && message.contains("mis-score"), message);
        assertTrue(message.contains("order(ByteOrder.nativeOrder())"), message);
    }

    @Test
    void rejectsASliceWhoseOrderWasReset() {
        // The common way to get this wrong: slice() of a native-order buffer is BIG_ENDIAN again.
        assumeTrue(ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN, "BIG_ENDIAN is native here");
        ByteBuffer slice = floats(2 * ROWS).slice(0, ROWS * Float.BYTES);
        assertEquals(Optional.of("scores"), rejectedWith(b -> b.scoreBuffer(slice)).inputName());
    }

    @Test
    void rejectsTooSmallFeatureBuffer() {
        InvalidInputException e = rejectedWith(b -> b.featureBuffer(floats(ROWS * FEATURES - 1)));
        assertEquals("model 'ctr@3' input 'features': features buffer holds 124 bytes but "
                + "4 rows x 8 features x 4 bytes needs 128", e.getMessage());
    }

    @Test
    void rejectsTooSmallScoreBuffer() {
        InvalidInputException e = rejectedWith(b -> b.scoreBuffer(floats(ROWS - 1)));
        assertEquals(Optional.of("scores"), e.inputName());
        assertTrue(e.getMessage().contains("needs 16"), e.getMessage());
    }

    @Test
    void acceptsLargerBuffersAndIgnoresPosition() {
        features.position(12);
        ScoreRequest request = valid().rows(2).build();
        assertEquals(2, request.rows());
    }

    @Test
    void rejectsReadOnlyScoreBuffer() {
        ByteBuffer readOnly = scores.asReadOnlyBuffer().order(ByteOrder.nativeOrder());
        InvalidInputException e = rejectedWith(b -> b.scoreBuffer(readOnly));
        assertTrue(e.getMessage().contains("read-only"), e.getMessage());
    }

    @Test
    void rejectsNonPositiveShapes() {
        assertEquals(Optional.of("rows"), rejectedWith(b -> b.rows(0)).inputName());
        assertEquals(Optional.of("rows"), rejectedWith(b -> b.rows(-1)).inputName());
        assertEquals(Optional.of("featureCount"), rejectedWith(b -> b.featureCount(0)).inputName());
    }

    @Test
    void rejectsShapesBeyondTwoGibibytes() {
        InvalidInputException e = rejectedWith(b -> b.rows(1 << 20).featureCount(1 << 10));
        assertTrue(e.getMessage().contains("split the batch"), e.getMessage());
    }

    @Test
    void rejectsMissingFields() {
        assertEquals(Optional.of("model"), rejectedWith(b -> b.model((String) null)).inputName());
        assertEquals(Optional.of("features"), rejectedWith(b -> b.featureBuffer(null)).inputName());
        assertEquals(Optional.of("scores"), rejectedWith(b -> b.scoreBuffer(null)).inputName());
        InvalidInputException noDeadline = rejectedWith(b -> b.timeout(null));
        assertTrue(noDeadline.getMessage().contains("a deadline is required"), noDeadline.getMessage());
    }

    @Test
    void rejectsBothTimeoutAndDeadline() {
        InvalidInputException e = rejectedWith(b -> b.deadlineNanos(System.nanoTime()));
        assertTrue(e.getMessage().contains("not both"), e.getMessage());
    }

    @Test
    void rejectsNonPositiveTimeout() {
        assertEquals(Optional.of("deadline"), rejectedWith(b -> b.timeout(Duration.ZERO)).inputName());
        assertEquals(Optional.of("deadline"), rejectedWith(b -> b.timeout(Duration.ofMillis(-1))).inputName());
    }

    @Test
    void acceptsModelId() {
        ModelId id = new ModelId("cvr", null);
        assertEquals(id, valid().model(id).build().model());
    }
}
