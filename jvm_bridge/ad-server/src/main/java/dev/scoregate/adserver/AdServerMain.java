package dev.scoregate.adserver;

import dev.scoregate.bridge.ModelGateway;
import dev.scoregate.bridge.ModelGateways;
import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The reference ad server's entry point: runs synthetic ad requests ({@link AdServer}) from {@code --threads} Java
 * threads for {@code --duration} seconds through the gateway that {@link ModelGateways#get()} returns, printing a
 * live line every second and a closing summary. Run it inside the in-process bridge, which registers that gateway:
 *
 * <pre>
 * python -m gateway serve --models build/demo/models \
 *     --classpath jvm_bridge/ad-server/target/scoregate-ad-server.jar \
 *     --jvm-main dev.scoregate.adserver.AdServerMain -- --duration 20 --threads 4
 * </pre>
 *
 * {@code --help} lists the options ({@link AdServerOptions#USAGE}). Scoregate exceptions fail single requests and are
 * counted by type; the run goes on. A bug (any other exception in a request thread) ends the run with that exception.
 *
 * <p>Not a product class: an example of an ad server scoring through Scoregate (STYLE.md, lesson 15).
 */
public final class AdServerMain {
    private static final long REPORT_NANOS = TimeUnit.SECONDS.toNanos(1);

    private AdServerMain() {
    }

    public static void main(String[] args) throws IOException, InterruptedException {
        AdServerOptions options;
        try {
            options = AdServerOptions.parse(args);
        } catch (IllegalArgumentException e) {
            if (e.getMessage().startsWith("help\n")) {
                System.out.println(AdServerOptions.USAGE);
                return;
            }
            throw e;
        }
        run(ModelGateways.get(), options, System.out);
    }

    /**
     * Runs the ad server on {@code gateway} and returns its final snapshot.
     *
     * @throws IOException           if the export cannot be read
     * @throws IllegalStateException if a request thread died of a bug (the exception is the cause)
     */
    public static Metrics.Snapshot run(ModelGateway gateway, AdServerOptions options, PrintStream out)
            throws IOException, InterruptedException {
        Marketplace market = Marketplace.open(options.export());
        Metrics metrics = new Metrics(market.objectives().size());
        ClusterFeatures features = options.members().isEmpty() ? null : ClusterFeatures.connect(
                options.clusterName(), options.members(), market, options.candidates(), options.verifyFeatures());
        try {
            return run(gateway, market, options, metrics, features, out);
        } finally {
            if (features != null) {
                features.close();
            }
        }
    }

    private static Metrics.Snapshot run(ModelGateway gateway, Marketplace market, AdServerOptions options,
                                        Metrics metrics, ClusterFeatures features, PrintStream out)
            throws InterruptedException {
        AdServer server = new AdServer(gateway, market, options, metrics, features);
        out.println(banner(gateway, market, options, server));
        out.flush();

        int threads = options.threads();
        CountDownLatch go = new CountDownLatch(1);
        CountDownLatch done = new CountDownLatch(threads);
        AtomicReference<Throwable> bug = new AtomicReference<>();
        long[] end = new long[1];
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            AdServer.Worker worker = server.newWorker(t);
            Thread thread = new Thread(() -> {
                try {
                    go.await();
                    worker.runUntil(end[0]);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                } catch (RuntimeException | Error e) {
                    bug.compareAndSet(null, e);
                } finally {
                    done.countDown();
                }
            }, "ad-server-" + t);
            thread.setDaemon(true);
            workers.add(thread);
            thread.start();
        }
        long start = System.nanoTime();
        end[0] = start + options.duration().toNanos();
        go.countDown(); // publishes end[0] to the workers (happens-before through the latch)

        Metrics.Snapshot previous = metrics.snapshot();
        long previousAt = start;
        long nextReport = start + REPORT_NANOS;
        while (!done.await(Math.max(0, nextReport - System.nanoTime()), TimeUnit.NANOSECONDS)) {
            long now = System.nanoTime();
            Metrics.Snapshot current = metrics.snapshot();
            out.println(liveLine((now - start) / 1e9, current.minus(previous), (now - previousAt) / 1e9));
            out.flush();
            previous = current;
            previousAt = now;
            nextReport += REPORT_NANOS;
        }
        long elapsed = System.nanoTime() - start;
        for (Thread w : workers) {
            w.join();
        }
        Metrics.Snapshot total = metrics.snapshot();
        out.println(summary(total, elapsed / 1e9, metrics, market, options));
        if (features != null) {
            out.println(features.summary());
        }
        out.flush();
        if (bug.get() != null) {
            throw new IllegalStateException("a request thread failed: " + bug.get(), bug.get());
        }
        return total;
    }

    static String banner(ModelGateway gateway, Marketplace market, AdServerOptions o, AdServer server) {
        StringBuilder b = new StringBuilder();
        b.append(String.format(Locale.ROOT, "scoregate ad server: %,d users, %,d ads, %,d pooled contexts from %s%n",
                market.users(), market.ads(), market.contexts(), market.directory()));
        if (!o.members().isEmpty()) {
            b.append(String.format(Locale.ROOT, "  candidate features from the feature cache %s at %s%n",
                    o.clusterName(), String.join(",", o.members())));
        }
        b.append(String.format(Locale.ROOT, "  %d request threads, %d candidates/request", o.threads(),
                o.candidates()));
        if (server.earlyRanking()) {
            b.append(String.format(Locale.ROOT, " -> %s keeps %d", o.earlyRanker(), server.fullRows()));
        }
        List<String> roles = server.roles();
        List<String> named = new ArrayList<>();
        for (int j = 0; j < o.models().size(); j++) {
            named.add(o.models().get(j) + " (" + roles.get(j) + ")");
        }
        b.append(String.format(Locale.ROOT, " -> %s, %s%n", String.join(", ", named),
                o.parallel() ? "in parallel" : "one by one"));
        b.append(String.format(Locale.ROOT, "  second-price auction, reserve $%.2f CPM, brand-safety filter p(unsafe) > "
                + "%.2f, deadline %d ms, %.0f s, through %s", o.reserve(), o.unsafeAbove(), o.timeout().toMillis(),
                o.duration().toNanos() / 1e9, gateway));
        return b.toString();
    }

    static String liveLine(double t, Metrics.Snapshot interval, double seconds) {
        double rps = seconds > 0 ? interval.requests() / seconds : 0;
        double cps = seconds > 0 ? interval.modelCalls() / seconds : 0;
        return String.format(Locale.ROOT, "t=%5.1fs  requests/s %7s  model calls/s %8s  p50 %6.2f ms  p99 %6.2f ms  "
                        + "fill %5.1f%%  avg clearing $%6.2f CPM  errors %d", t, grouped(rps), grouped(cps),
                interval.latencyPercentile(50) / 1e6, interval.latencyPercentile(99) / 1e6,
                100 * interval.fillRate(), interval.averageClearingPrice(), interval.errors());
    }

    static String summary(Metrics.Snapshot s, double seconds, Metrics metrics, Marketplace market,
                          AdServerOptions o) {
        StringBuilder b = new StringBuilder("\n");
        b.append(String.format(Locale.ROOT, "%,d requests in %.1f s (%s/s), %,d model calls (%s/s), %,d errors%n",
                s.requests(), seconds, grouped(s.requests() / seconds), s.modelCalls(),
                grouped(s.modelCalls() / seconds), s.errors()));
        b.append(String.format(Locale.ROOT, "request latency: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, "
                        + "max %.2f ms%n", s.latencyPercentile(50) / 1e6, s.latencyPercentile(90) / 1e6,
                s.latencyPercentile(99) / 1e6, s.latencyPercentile(99.9) / 1e6,
                LatencyHistogram.max(s.latency()) / 1e6));
        b.append(String.format(Locale.ROOT, "auctions: %,d cleared of %,d requests (fill %.1f%%), avg clearing price "
                        + "$%.2f CPM, avg winning eCPM $%.2f (second price, reserve $%.2f)%n", s.filled(),
                s.requests(), 100 * s.fillRate(), s.averageClearingPrice(), s.averageWinningEcpm(), o.reserve()));
        if (s.pods() > 0) {
            b.append(String.format(Locale.ROOT, "CTV ad breaks: %,d, %.2f ads and %.1f s filled per break "
                    + "(category separation, generalised second price)%n", s.pods(), (double) s.podAds() / s.pods(),
                    s.podSeconds() / s.pods()));
        }
        double unsafeShare = s.scored() == 0 ? 0 : 100.0 * s.unsafe() / s.scored();
        b.append(String.format(Locale.ROOT, "brand safety: %,d of %,d fully scored candidates filtered (%.2f%%) "
                + "above p(unsafe) %.2f%n", s.unsafe(), s.scored(), unsafeShare, o.unsafeAbove()));
        List<String> wins = new ArrayList<>();
        for (int k = 0; k < market.objectives().size(); k++) {
            long shown = s.filled() - s.podsFilled() + s.podAds(); // ads shown: one per filled slot, each pod ad
            double share = shown == 0 ? 0 : 100.0 * s.wins(k) / shown;
            wins.add(String.format(Locale.ROOT, "%s %.1f%%", market.objectives().get(k), share));
        }
        b.append("wins by objective: ").append(String.join(", ", wins)).append('\n');
        Map<String, Long> errors = metrics.errors();
        if (errors.isEmpty()) {
            b.append("errors: none");
        } else {
            Map<String, String> first = metrics.firstErrors();
            List<String> lines = new ArrayList<>();
            errors.forEach((type, count) -> lines.add(String.format(Locale.ROOT, "  %s x%,d (first: %s)", type, count,
                    first.get(type))));
            b.append("errors:\n").append(String.join("\n", lines));
        }
        return b.toString();
    }

    private static String grouped(double value) {
        return String.format(Locale.ROOT, "%,.0f", value);
    }
}
