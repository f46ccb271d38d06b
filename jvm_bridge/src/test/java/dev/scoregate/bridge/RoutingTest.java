package dev.scoregate.bridge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** Routing keys and their buckets: the values Python's {@code models.rollout.bucket} gives (test_rollout.py). */
class RoutingTest {

    @Test
    void bucketsAreTheOnesPythonComputes() {
        assertEquals(6429, Routing.bucket(Routing.key("user-42")));
        assertEquals(307, Routing.bucket(Routing.key(42L)));
        assertEquals(307, Routing.bucket(Routing.key("42")));
        assertEquals(2227, Routing.bucket(new byte[0]));
        assertEquals(9146, Routing.bucket(Routing.key("é")));
    }

    @Test
    void aRequestCarriesItsKeyAndComputesItsBucketOnce() {
        ByteBuffer features = ByteBuffer.allocateDirect(16).order(ByteOrder.nativeOrder());
        ByteBuffer scores = ByteBuffer.allocateDirect(4).order(ByteOrder.nativeOrder());
        ScoreRequest.Builder builder = ScoreRequest.builder().model("ctr").rows(1).featureCount(4)
                .featureBuffer(features).scoreBuffer(scores).timeout(Duration.ofSeconds(1));
        ScoreRequest plain = builder.build();
        assertFalse(plain.hasRoutingKey());
        assertEquals(-1, plain.routingBucket());
        ScoreRequest keyed = builder.routingKey(42L).build();
        assertTrue(keyed.hasRoutingKey());
        assertEquals(307, keyed.routingBucket());
        assertEquals(307, keyed.routingBucket());
        assertEquals(6429, builder.routingKey("user-42").build().routingBucket());
        assertFalse(builder.routingKey(null).build().hasRoutingKey());
    }
}
