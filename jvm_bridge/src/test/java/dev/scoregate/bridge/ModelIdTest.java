package dev.scoregate.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

class ModelIdTest {

    @Test
    void parsesBareName() {
        ModelId id = ModelId.parse("ctr");
        assertEquals("ctr", id.name());
        assertNull(id.version());
        assertEquals(Optional.empty(), id.pinnedVersion());
        assertEquals("ctr", id.toString());
    }

    @Test
    void parsesNameAtVersion() {
        ModelId id = ModelId.parse("ctr@7");
        assertEquals(new ModelId("ctr", "7"), id);
        assertEquals(Optional.of("7"), id.pinnedVersion());
        assertEquals("ctr@7", id.toString());
        assertEquals(id, ModelId.parse(id.toString()));
    }

    @ParameterizedTest
    @ValueSource(strings = {"", " ", "@7", "ctr@", "ctr@ ", "a@b@c"})
    void rejectsMalformedSpecs(String spec) {
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> ModelId.parse(spec));
        assertEquals(Optional.of("model"), e.inputName());
        assertTrue(e.getMessage().contains("'@'"), e.getMessage());
    }

    @Test
    void rejectsNull() {
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> ModelId.parse(null));
        assertEquals("request input 'model': model name is required", e.getMessage());
    }
}
