package dev.scoregate.bridge;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class ModelGatewaysTest {
    private final SummingGateway first = new SummingGateway("ctr", "1");
    private final SummingGateway second = new SummingGateway("cvr", "1");

    @AfterEach
    void clearRegistry() {
        ModelGateways.unregister(first);
        ModelGateways.unregister(second);
    }

    @Test
    void getWithoutARegisteredGatewayIsUnavailable() {
        GatewayUnavailableException e = assertThrows(GatewayUnavailableException.class, ModelGateways::get);
        assertTrue(e.getMessage().startsWith("no ModelGateway is registered"), e.getMessage());
        assertEquals(Optional.empty(), ModelGateways.find());
    }

    @Test
    void registerThenGet() {
        ModelGateways.register(first);
        assertSame(first, ModelGateways.get());
        assertEquals(Optional.of(first), ModelGateways.find());
        assertDoesNotThrow(() -> ModelGateways.register(first), "registering the same instance again is a no-op");
    }

    @Test
    void aSecondGatewayDoesNotReplaceTheFirst() {
        ModelGateways.register(first);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> ModelGateways.register(second));
        assertTrue(e.getMessage().contains("already registered"), e.getMessage());
        assertSame(first, ModelGateways.get());
    }

    @Test
    void unregisterRemovesOnlyTheRegisteredGateway() {
        ModelGateways.register(first);
        assertFalse(ModelGateways.unregister(second));
        assertSame(first, ModelGateways.get());
        assertTrue(ModelGateways.unregister(first));
        assertThrows(GatewayUnavailableException.class, ModelGateways::get);
        ModelGateways.register(second);
        assertSame(second, ModelGateways.get());
    }
}
