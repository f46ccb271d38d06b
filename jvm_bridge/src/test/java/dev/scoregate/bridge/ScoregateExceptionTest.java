package dev.scoregate.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** Messages match the Python {@code gateway.errors} wording, so a log line reads the same from either side. */
class ScoregateExceptionTest {

    @Test
    void everyExceptionIsAnUncheckedScoregateException() {
        List<ScoregateException> all = List.of(
                new UnknownModelException("ctr", List.of()),
                new InvalidInputException("ctr", "features", "bad"),
                new DeadlineExceededException("ctr", "late"),
                new GatewayUnavailableException("down"),
                new ArenaExhaustedException("full"));
        for (ScoregateException e : all) {
            assertTrue(e instanceof RuntimeException, e.getClass().getName());
        }
    }

    @Test
    void unknownModelListsWhatIsLoaded() {
        UnknownModelException e = new UnknownModelException("ctr@9", List.of("ctr", "cvr"));
        assertEquals("unknown model 'ctr@9'; loaded: ctr, cvr", e.getMessage());
        assertEquals(Optional.of("ctr@9"), e.modelName());
        assertEquals(List.of("ctr", "cvr"), e.loaded());
        assertEquals("unknown model 'x'", new UnknownModelException("x", List.of()).getMessage());
    }

    @Test
    void invalidInputNamesModelInputAndProblem() {
        InvalidInputException e = new InvalidInputException("ctr", "features", "expected 64 features, got 63");
        assertEquals("model 'ctr' input 'features': expected 64 features, got 63", e.getMessage());
        assertEquals(Optional.of("features"), e.inputName());
        assertEquals("request: empty", new InvalidInputException(null, null, "empty").getMessage());
        assertEquals(Optional.empty(), new InvalidInputException(null, null, "empty").modelName());
    }

    @Test
    void deadlineExceededSaysByHowMuch() {
        DeadlineExceededException e = DeadlineExceededException.overrun("ctr", 1_250_000, "before the call");
        assertEquals("model 'ctr': deadline exceeded: passed 1.250 ms before the call", e.getMessage());
        assertEquals(Optional.of("ctr"), e.modelName());
    }

    @Test
    void unavailableKeepsItsCause() {
        IOException cause = new IOException("connection reset");
        GatewayUnavailableException e = new GatewayUnavailableException("ctr", "Py4J connection lost", cause);
        assertEquals("model 'ctr': Py4J connection lost", e.getMessage());
        assertSame(cause, e.getCause());
        assertEquals(Optional.empty(), new GatewayUnavailableException("down").modelName());
    }

    @Test
    void fromGatewayKeepsThePythonMessageVerbatim() {
        String python = "model 'ctr' input 'features': expected 64 features, got 63";
        InvalidInputException invalid = InvalidInputException.fromGateway("ctr@7", python);
        assertEquals(python, invalid.getMessage());
        assertEquals(Optional.of("ctr@7"), invalid.modelName());
        assertEquals(Optional.empty(), invalid.inputName());
        UnknownModelException unknown = UnknownModelException.fromGateway("x", "unknown model 'x'", List.of("ctr"));
        assertEquals("unknown model 'x'", unknown.getMessage());
        assertEquals(List.of("ctr"), unknown.loaded());
        assertEquals("late", DeadlineExceededException.fromGateway("ctr", "late").getMessage());
        GatewayUnavailableException down = GatewayUnavailableException.fromGateway("ctr", "down");
        assertEquals("down", down.getMessage());
        assertEquals(Optional.of("ctr"), down.modelName());
    }
}
