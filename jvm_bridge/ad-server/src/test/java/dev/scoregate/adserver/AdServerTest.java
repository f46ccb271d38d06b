package dev.scoregate.adserver;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.scoregate.bridge.DeadlineExceededException;
import dev.scoregate.bridge.ModelGateway;
import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import dev.scoregate.bridge.ScoregateException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The request path end to end on the {@link TinyExport} with a fake gateway (pure logic: the real gateway is Python,
 * and the Python integration test runs this server against it).
 */
class AdServerTest {
    @TempDir
    Path dir;

    private Marketplace market;

    @BeforeEach
    void open() throws IOException {
        market = Marketplace.open(TinyExport.write(dir));
    }

    /**
     * Scores each row from its features so that the test can predict the outcome: every model gives 0.1, except that
     * "safety" flags ad 2 (p(unsafe) 0.9) and "early" scores by ad id (higher ids first). Fails the calls listed in
     * {@code failing} with a deadline error. Records the feature counts it saw.
     */
    static final class FakeGateway implements ModelGateway {
        final Map<String, Integer> featureCounts = new ConcurrentHashMap<>();
        final AtomicInteger calls = new AtomicInteger();
        volatile String failing = "";

        @Override
        public ScoreResult score(ScoreRequest request) {
            String model = request.model().name();
            calls.incrementAndGet();
            featureCounts.merge(model, request.featureCount(), (a, b) -> a.equals(b) ? a : -1);
            if (failing.contains(model)) {
                throw new DeadlineExceededException(model, "injected by the test");
            }
            int f = request.featureCount();
            for (int r = 0; r < request.rows(); r++) {
                // The ad's first feature is 1000 (ad + 1): column 3 in full rows, 0 in "safety" rows, 0 in "early".
                int adColumn = model.equals("safety") || model.equals("early") ? 0 : 3;
                int ad = Math.round(request.featureBuffer().getFloat((r * f + adColumn) * 4) / 1000f) - 1;
                float score = switch (model) {
                    case "safety" -> ad == 2 ? 0.9f : 0.01f;
                    case "early" -> ad;
                    default -> 0.1f;
                };
                request.scoreBuffer().putFloat(r * 4, score);
            }
            return ScoreResult.of(new ModelId(model, "1"), request);
        }

        @Override
        public CompletableFuture<ScoreResult> scoreAsync(ScoreRequest request) {
            try {
                return CompletableFuture.completedFuture(score(request));
            } catch (ScoregateException e) {
                return CompletableFuture.failedFuture(e);
            }
        }

        @Override
        public List<String> models() {
            return List.of("ctr", "completion", "conversion", "safety", "early");
        }
    }

    private AdServerOptions options(int candidates, String early, boolean parallel, float reserve) {
        return new AdServerOptions(dir, Duration.ofSeconds(1), 1, candidates,
                List.of("ctr", "completion", "conversion", "safety"), early, 2, reserve, 0.5f, Duration.ofSeconds(5),
                parallel, 1);
    }

    @Test
    void everyRequestIsScoredPricedAndAuctioned() {
        FakeGateway gateway = new FakeGateway();
        Metrics metrics = new Metrics(4);
        AdServer server = new AdServer(gateway, market, options(6, null, true, 0f), metrics);
        assertEquals(List.of("pctr", "pcompletion", "pconversion", "brand_safety"), server.roles());
        AdServer.Worker worker = server.newWorker(0);
        for (int i = 0; i < 200; i++) {
            worker.serveOne();
        }
        Metrics.Snapshot s = metrics.snapshot();
        assertEquals(200, s.requests());
        assertEquals(0, s.errors());
        assertEquals(800, s.modelCalls());
        assertEquals(200, s.filled()); // reserve 0: someone always bids
        assertEquals(Map.of("ctr", 7, "completion", 7, "conversion", 7, "safety", 4), gateway.featureCounts);
        // Web requests see all 6 ads, ad 2 (CPA) is filtered as unsafe; CTV requests see ads 1 and 4 only.
        // eCPMs at p = 0.1: ad0 CPC 1000*1.5*0.1 = 150, ad1 CPCM 30*0.1 = 3, ad3 CPM 5, ad4 CPCM 2.5, ad5 CPC 50.
        // So web: ad 0 wins and pays 50 (ad 5); CTV: ad 1 wins and pays 2.5 (ad 4).
        long web = s.wins(0);
        long ctv = s.wins(3);
        assertEquals(200, web + ctv);
        assertTrue(web > 50 && ctv > 50, "both devices drawn: " + web + " / " + ctv);
        assertEquals((web * 50 + ctv * 2.5) / 200, s.averageClearingPrice(), 1e-6);
        assertEquals((web * 150 + ctv * 3) / 200.0, s.averageWinningEcpm(), 1e-4);
        assertEquals(web, s.unsafe()); // ad 2 is a candidate of every web request
        assertEquals(web * 6 + ctv * 2, s.scored());
    }

    @Test
    void theEarlyRankerCutsTheCandidatesBeforeFullScoring() {
        FakeGateway gateway = new FakeGateway();
        Metrics metrics = new Metrics(4);
        AdServer server = new AdServer(gateway, market, options(6, "early", false, 0f), metrics);
        assertTrue(server.earlyRanking());
        assertEquals(2, server.fullRows());
        AdServer.Worker worker = server.newWorker(0);
        for (int i = 0; i < 100; i++) {
            worker.serveOne();
        }
        Metrics.Snapshot s = metrics.snapshot();
        assertEquals(0, s.errors());
        assertEquals(5, gateway.featureCounts.get("early"));
        // Web requests: the early ranker keeps ads 5 and 4 (highest ids), CPC 50 beats CPCM 2.5; CTV requests have 2
        // candidates, no cut needed, so 4 calls instead of 5.
        long web = s.wins(0);
        long ctv = s.wins(3);
        assertEquals(100, web + ctv);
        assertEquals(web * 5 + ctv * 4, s.modelCalls());
        assertEquals(2 * 100, s.scored());
        assertEquals((web * 2.5 + ctv * 2.5) / 100, s.averageClearingPrice(), 1e-6);
    }

    @Test
    void scoregateErrorsAreCountedAndTheServerGoesOn() {
        FakeGateway gateway = new FakeGateway();
        Metrics metrics = new Metrics(4);
        AdServer server = new AdServer(gateway, market, options(6, null, true, 0f), metrics);
        AdServer.Worker worker = server.newWorker(0);
        gateway.failing = "conversion";
        for (int i = 0; i < 10; i++) {
            worker.serveOne();
        }
        gateway.failing = "";
        for (int i = 0; i < 10; i++) {
            worker.serveOne();
        }
        Metrics.Snapshot s = metrics.snapshot();
        assertEquals(20, s.requests());
        assertEquals(10, s.errors());
        assertEquals(10, s.filled());
        assertEquals(10 * 3 + 10 * 4, s.modelCalls()); // failed requests count their successful calls
        assertEquals(Map.of("DeadlineExceededException", 10L), metrics.errors());
        assertTrue(metrics.firstErrors().get("DeadlineExceededException").contains("injected by the test"));
    }

    @Test
    void aHighReserveLeavesRequestsUnfilled() {
        Metrics metrics = new Metrics(4);
        AdServer server = new AdServer(new FakeGateway(), market, options(6, null, true, 100f), metrics);
        AdServer.Worker worker = server.newWorker(0);
        for (int i = 0; i < 100; i++) {
            worker.serveOne();
        }
        Metrics.Snapshot s = metrics.snapshot();
        // web: only ad 0 (150) clears 100 and pays the reserve; CTV: nobody does
        assertEquals(s.wins(0), s.filled());
        assertTrue(s.filled() > 0 && s.filled() < 100);
        assertEquals(100.0, s.averageClearingPrice(), 1e-6);
    }

    @Test
    void mainRunsThreadsPrintsLiveLinesAndASummary() throws Exception {
        FakeGateway gateway = new FakeGateway();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        AdServerOptions o = new AdServerOptions(dir, Duration.ofMillis(2500), 2, 6, List.of("ctr", "safety"), "early",
                3, 0f, 0.5f, Duration.ofSeconds(5), true, 1);
        Metrics.Snapshot total;
        try (PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8)) {
            total = AdServerMain.run(gateway, o, out);
        }
        String text = bytes.toString(StandardCharsets.UTF_8);
        assertTrue(total.requests() > 0 && total.errors() == 0, text);
        assertTrue(text.startsWith("scoregate ad server: 3 users, 6 ads, 4 pooled contexts"), text);
        assertTrue(text.contains("early keeps 3 -> ctr (pctr), safety (brand_safety), in parallel"), text);
        // Wall-clock reporting: at least one of the two live lines, even on a machine busy enough to delay one.
        assertTrue(text.lines().anyMatch(l -> l.matches("t=\\s+[12]\\.\\ds  requests/s .* errors 0")), text);
        assertTrue(text.contains("errors: none"), text);
        assertTrue(text.contains("cleared of"), text);
    }

    @Test
    void refusesModelsTheGatewayOrTheExportDoesNotKnow() {
        Metrics metrics = new Metrics(4);
        FakeGateway gateway = new FakeGateway();
        AdServerOptions unknown = new AdServerOptions(dir, Duration.ofSeconds(1), 1, 6, List.of("nope"), null, 2, 0f,
                0.5f, Duration.ofSeconds(5), true, 1);
        assertThrows(IllegalArgumentException.class, () -> new AdServer(gateway, market, unknown, metrics));
        AdServerOptions early = new AdServerOptions(dir, Duration.ofSeconds(1), 1, 6, List.of("early"), null, 2, 0f,
                0.5f, Duration.ofSeconds(5), true, 1);
        assertThrows(IllegalArgumentException.class, () -> new AdServer(gateway, market, early, metrics));
    }
}
