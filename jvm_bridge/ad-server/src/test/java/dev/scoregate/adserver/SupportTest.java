package dev.scoregate.adserver;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The small supporting pieces: JSON, the latency histogram, the command line. */
class SupportTest {
    @Test
    void jsonParsesWhatTheIndexUses() {
        Object parsed = Json.parse(" {\"a\": [1, -2.5e1, true, false, null], \"b\": {\"c\": \"x\\\"y\\u00e9\\n\"},"
                + " \"d\": [], \"e\": {}} ");
        Map<?, ?> map = (Map<?, ?>) parsed;
        assertEquals(List.of(1L, -25.0, true, false), ((List<?>) map.get("a")).subList(0, 4));
        assertNull(((List<?>) map.get("a")).get(4));
        assertEquals("x\"y\u00e9\n", ((Map<?, ?>) map.get("b")).get("c"));
        assertEquals(List.of(), map.get("d"));
        assertEquals(Map.of(), map.get("e"));
        for (String bad : new String[] {"{", "[1,]", "{\"a\" 1}", "tru", "\"open", "1 2", "{\"a\":01x}"}) {
            assertThrows(IllegalArgumentException.class, () -> Json.parse(bad), bad);
        }
    }

    @Test
    void histogramBucketsAreWithinThreePercent() {
        long previous = -1;
        for (int i = 0; i < LatencyHistogram.BUCKETS; i++) {
            long v = LatencyHistogram.value(i);
            assertTrue(v > previous, "bucket values increase");
            assertEquals(i, LatencyHistogram.index(v));
            previous = v;
        }
        for (long v : new long[] {0, 1, 63, 64, 65, 1_000, 123_456, 7_654_321, 1_000_000_000L, Long.MAX_VALUE}) {
            long back = LatencyHistogram.value(LatencyHistogram.index(v));
            assertTrue(Math.abs(back - v) <= v / 32.0 + 1, v + " -> " + back);
        }
    }

    @Test
    void histogramPercentilesAndIntervals() {
        LatencyHistogram h = new LatencyHistogram();
        for (int i = 1; i <= 1000; i++) {
            h.record(i * 1_000L); // 1 us .. 1 ms
        }
        long[] snapshot = new long[LatencyHistogram.BUCKETS];
        h.addTo(snapshot);
        assertEquals(1000, LatencyHistogram.count(snapshot));
        assertEquals(500_000, LatencyHistogram.percentile(snapshot, 50), 500_000 / 32.0);
        assertEquals(990_000, LatencyHistogram.percentile(snapshot, 99), 990_000 / 32.0);
        assertEquals(1_000_000, LatencyHistogram.max(snapshot), 1_000_000 / 32.0);
        assertEquals(0, LatencyHistogram.percentile(new long[LatencyHistogram.BUCKETS], 99));
    }

    @Test
    void optionsDefaultAndParse() {
        AdServerOptions d = AdServerOptions.parse();
        assertEquals(AdServerOptions.defaults(), d);
        assertEquals(List.of("pctr_gbdt", "pcompletion_gbdt", "pconversion_gbdt", "brand_safety_gbdt"), d.models());
        assertEquals(Duration.ofSeconds(20), d.duration());
        assertEquals(4, d.threads());
        assertEquals(200, d.candidates());
        assertEquals("early_rank_pctr_lr", d.earlyRanker());
        AdServerOptions o = AdServerOptions.parse("--duration", "2.5", "--threads", "2", "--models", "a, b",
                "--early-ranker", "none", "--fanout", "sequential", "--export", "/tmp/x", "--reserve", "3",
                "--timeout-ms", "7.5", "--unsafe-above", "0.5", "--candidates", "10", "--seed", "9");
        assertEquals(Duration.ofMillis(2500), o.duration());
        assertEquals(List.of("a", "b"), o.models());
        assertNull(o.earlyRanker());
        assertFalse(o.parallel());
        assertEquals(Path.of("/tmp/x"), o.export());
        assertEquals(Duration.ofNanos(7_500_000), o.timeout());
        for (String[] bad : new String[][] {{"--threads"}, {"--threads", "x"}, {"--nope", "1"}, {"--threads", "0"},
                {"--fanout", "both"}, {"--unsafe-above", "2"}, {"--models", ","}}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> AdServerOptions.parse(bad));
            assertTrue(e.getMessage().contains("usage:"), e.getMessage());
        }
    }
}
