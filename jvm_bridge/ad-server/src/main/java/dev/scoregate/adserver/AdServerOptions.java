package dev.scoregate.adserver;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;

/**
 * What the reference ad server runs; {@link #parse} reads it from the command line. Defaults are in {@link #USAGE}.
 *
 * @param export         the feature export directory (written by {@code python -m models.demo build})
 * @param duration       how long to run
 * @param threads        Java request threads
 * @param candidates     candidate ads drawn per request (fewer when the context's eligible pool is smaller)
 * @param models         full-scoring models; the first of each task prices the bids, any further one is scored as a
 *                       shadow (its scores are not used)
 * @param earlyRanker    the early-ranking model that cuts the candidates to {@code earlyKeep}, or null for none
 * @param earlyKeep      candidates the early ranker keeps (by its score)
 * @param reserve        reserve price, eCPM in USD
 * @param unsafeAbove    a candidate whose brand-safety score (p(unsafe)) exceeds this does not bid
 * @param timeout        each request's deadline, shared by all its model calls
 * @param parallel       score the full-scoring models concurrently ({@code scoreAsync}) rather than one by one
 * @param seed           seeds request thread {@code t} with {@code seed + t}
 * @param members        feature cache members ("host:port"); empty: candidate rows come from the export
 * @param clusterName    the feature cache's cluster name
 * @param verifyFeatures with {@code members}: compare every row read from the cache with the export's
 */
public record AdServerOptions(Path export, Duration duration, int threads, int candidates, List<String> models,
                              String earlyRanker, int earlyKeep, float reserve, float unsafeAbove, Duration timeout,
                              boolean parallel, long seed, List<String> members, String clusterName,
                              boolean verifyFeatures) {

    public static final String USAGE = String.join("\n",
            "usage: AdServerMain [options]   (run it inside 'python -m gateway serve ... --jvm-main', which registers "
                    + "the gateway)",
            "  --export DIR            feature export of the demo marketplace (default build/demo/export)",
            "  --duration S            seconds to run (default 20)",
            "  --threads T             Java request threads (default 4)",
            "  --candidates N          candidate ads per request (default 200)",
            "  --models A,B,...        full-scoring models (default pctr_gbdt,pcompletion_gbdt,pconversion_gbdt,"
                    + "brand_safety_gbdt)",
            "  --early-ranker NAME     early ranker on 16 features, or 'none' (default early_rank_pctr_lr)",
            "  --early-keep K          candidates the early ranker keeps (default 50)",
            "  --reserve USD           reserve price, eCPM (default 1.0)",
            "  --unsafe-above P        brand-safety filter: no bid above this p(unsafe) (default 0.3)",
            "  --timeout-ms MS         deadline of a request, all its model calls included (default 50)",
            "  --fanout MODE           parallel (scoreAsync, default) or sequential full scoring",
            "  --seed N                request seed (default 1)",
            "  --members H:P,...       read candidate features from this Hazelcast feature cache (loaded by the "
                    + "Python side, cache/ingest.py) instead of the export (default: the export)",
            "  --cluster-name NAME     the feature cache's cluster name (default scoregate)",
            "  --verify-features B     true: count rows read from the cache that differ from the export's "
                    + "(default false)");

    /** Options without a feature cache (rows from the export). */
    public AdServerOptions(Path export, Duration duration, int threads, int candidates, List<String> models,
                           String earlyRanker, int earlyKeep, float reserve, float unsafeAbove, Duration timeout,
                           boolean parallel, long seed) {
        this(export, duration, threads, candidates, models, earlyRanker, earlyKeep, reserve, unsafeAbove, timeout,
                parallel, seed, List.of(), "scoregate", false);
    }

    public AdServerOptions {
        models = List.copyOf(models);
        members = List.copyOf(members);
        if (threads <= 0 || candidates <= 0 || earlyKeep <= 0 || models.isEmpty()) {
            throw new IllegalArgumentException("threads, candidates and early-keep must be > 0, and at least one model "
                    + "is needed");
        }
        if (duration.isNegative() || duration.isZero() || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("duration and timeout must be positive");
        }
        if (!(reserve >= 0) || !(unsafeAbove >= 0 && unsafeAbove <= 1)) {
            throw new IllegalArgumentException("reserve must be >= 0 and unsafe-above in [0, 1]");
        }
    }

    /** The defaults of {@link #USAGE}. */
    public static AdServerOptions defaults() {
        return new AdServerOptions(Path.of("build/demo/export"), Duration.ofSeconds(20), 4, 200,
                List.of("pctr_gbdt", "pcompletion_gbdt", "pconversion_gbdt", "brand_safety_gbdt"),
                "early_rank_pctr_lr", 50, 1.0f, 0.3f, Duration.ofMillis(50), true, 1);
    }

    /**
     * Parses {@code --name value} pairs over the defaults.
     *
     * @throws IllegalArgumentException on an unknown option, a missing or malformed value; the message ends with
     *                                  {@link #USAGE}
     */
    public static AdServerOptions parse(String... args) {
        AdServerOptions o = defaults();
        Path export = o.export;
        Duration duration = o.duration;
        int threads = o.threads;
        int candidates = o.candidates;
        List<String> models = o.models;
        String early = o.earlyRanker;
        int keep = o.earlyKeep;
        float reserve = o.reserve;
        float unsafe = o.unsafeAbove;
        Duration timeout = o.timeout;
        boolean parallel = o.parallel;
        long seed = o.seed;
        List<String> members = o.members;
        String clusterName = o.clusterName;
        boolean verify = o.verifyFeatures;
        try {
            for (int i = 0; i < args.length; i++) {
                String name = args[i];
                if (name.equals("--help") || name.equals("-h")) {
                    throw new IllegalArgumentException("help");
                }
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(name + " needs a value");
                }
                String value = args[++i];
                switch (name) {
                    case "--export" -> export = Path.of(value);
                    case "--duration" -> duration = Duration.ofNanos(Math.round(Double.parseDouble(value) * 1e9));
                    case "--threads" -> threads = Integer.parseInt(value);
                    case "--candidates" -> candidates = Integer.parseInt(value);
                    case "--models" -> models = Arrays.stream(value.split(",")).map(String::strip)
                            .filter(s -> !s.isEmpty()).toList();
                    case "--early-ranker" -> early = value.equals("none") ? null : value;
                    case "--early-keep" -> keep = Integer.parseInt(value);
                    case "--reserve" -> reserve = Float.parseFloat(value);
                    case "--unsafe-above" -> unsafe = Float.parseFloat(value);
                    case "--timeout-ms" -> timeout = Duration.ofNanos(Math.round(Double.parseDouble(value) * 1e6));
                    case "--fanout" -> parallel = switch (value) {
                        case "parallel" -> true;
                        case "sequential" -> false;
                        default -> throw new IllegalArgumentException("--fanout is parallel or sequential");
                    };
                    case "--seed" -> seed = Long.parseLong(value);
                    case "--members" -> members = Arrays.stream(value.split(",")).map(String::strip)
                            .filter(s -> !s.isEmpty()).toList();
                    case "--cluster-name" -> clusterName = value;
                    case "--verify-features" -> verify = switch (value) {
                        case "true" -> true;
                        case "false" -> false;
                        default -> throw new IllegalArgumentException("--verify-features is true or false");
                    };
                    default -> throw new IllegalArgumentException("unknown option " + name);
                }
            }
            return new AdServerOptions(export, duration, threads, candidates, models, early, keep, reserve, unsafe,
                    timeout, parallel, seed, members, clusterName, verify);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("not a number: " + e.getMessage() + "\n" + USAGE, e);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(e.getMessage() + "\n" + USAGE, e);
        }
    }
}
