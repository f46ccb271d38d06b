package dev.scoregate.adserver;

import dev.scoregate.bridge.FeatureArena;
import dev.scoregate.bridge.ModelGateway;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import dev.scoregate.bridge.ScoregateException;
import dev.scoregate.bridge.inprocess.InProcessGateway;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * The request path of the reference ad server: synthetic ad requests from the exported marketplace, scored through
 * a {@link ModelGateway}, priced and auctioned. {@link AdServerMain} runs it from threads and reports.
 *
 * <p>One request, in order:
 * <ol>
 *   <li>Pick a pooled request context (hence its user and device) and draw {@code candidates} distinct ads among the
 *       ads eligible for that device (a CTV pod shows video ads only): a partial Fisher-Yates shuffle over the
 *       thread's own copy of the pool, no allocation.</li>
 *   <li>Early ranking (optional): write the candidates' rows of the early ranker's 16 columns into a slot of its own
 *       arena, score, keep the {@code earlyKeep} best ({@link Ranking#topK}).</li>
 *   <li>Full scoring: for each full-scoring model, write the survivors' rows of that model's columns into a slot of
 *       the model's arena and score them; all models at once with {@code scoreAsync} (fan-out) or one by one. Each
 *       model has its own slot, so its scores stay in the slot until the request releases it.</li>
 *   <li>Price: each survivor's eCPM from its bid and its objective's {@link BidUnit}; a brand-safety score above
 *       the threshold removes it.</li>
 *   <li>{@link Auction}: second price with a reserve.</li>
 * </ol>
 * All model calls of a request share its deadline. A {@link ScoregateException} fails that request (it is counted by
 * type and the thread goes on with the next one); anything else is a bug and ends the thread.
 *
 * <p>Arenas: one per model, one slot per request thread, {@code rows x model columns} each; from
 * {@link InProcessGateway#newArena} when the gateway is in process (lone requests are then scored in place).
 */
public final class AdServer {
    private static final String[] TASKS = {"pctr", "pconversion", "pcompletion", "brand_safety"};
    private static final int CLICK = 0;
    private static final int CONVERSION = 1;
    private static final int COMPLETION = 2;
    private static final int SAFETY = 3;

    private final ModelGateway gateway;
    private final Marketplace market;
    private final AdServerOptions options;
    private final Metrics metrics;
    private final String[] models;
    private final FeatureLayout[] layouts;
    private final FeatureArena[] arenas;
    /** Index into {@link #models} of the model that prices each task ({@link #TASKS} order), or -1. */
    private final int[] pricer = {-1, -1, -1, -1};
    private final FeatureLayout earlyLayout;
    private final FeatureArena earlyArena;
    private final int fullRows;
    /** The feature cache, or null: rows then come from the export. */
    private final ClusterFeatures features;
    private final ClusterFeatures.Gather[] gathers;
    private final ClusterFeatures.Gather earlyGather;

    /**
     * Checks the options against the export and the gateway, and allocates the arenas.
     *
     * @throws IllegalArgumentException if a model is unknown to the export or the gateway, is not a ranking model,
     *                                  or the gateway's model takes another number of features than the export lists
     */
    public AdServer(ModelGateway gateway, Marketplace market, AdServerOptions options, Metrics metrics) {
        this(gateway, market, options, metrics, null);
    }

    /**
     * As {@link #AdServer(ModelGateway, Marketplace, AdServerOptions, Metrics)}, reading the candidates' rows from
     * the feature cache through {@code features} when it is not null (the export then supplies only the pooled
     * request contexts, the ads' bids and attributes).
     */
    public AdServer(ModelGateway gateway, Marketplace market, AdServerOptions options, Metrics metrics,
                    ClusterFeatures features) {
        this.features = features;
        this.gateway = gateway;
        this.market = market;
        this.options = options;
        this.metrics = metrics;
        this.models = options.models().toArray(new String[0]);
        boolean early = options.earlyRanker() != null && options.candidates() > options.earlyKeep();
        this.fullRows = early ? options.earlyKeep() : options.candidates();
        this.layouts = new FeatureLayout[models.length];
        this.arenas = new FeatureArena[models.length];
        for (int j = 0; j < models.length; j++) {
            Marketplace.ModelInfo info = checked(models[j]);
            if (info.stage().equals("early_ranking")) {
                throw new IllegalArgumentException("model '" + models[j] + "' is an early ranker; pass it as "
                        + "--early-ranker");
            }
            for (int t = 0; t < TASKS.length; t++) {
                if (TASKS[t].equals(info.task()) && pricer[t] < 0) {
                    pricer[t] = j;
                }
            }
            layouts[j] = market.layout(info.columns());
            arenas[j] = arena(fullRows, layouts[j].width());
        }
        if (early) {
            earlyLayout = market.layout(checked(options.earlyRanker()).columns());
            earlyArena = arena(options.candidates(), earlyLayout.width());
        } else {
            earlyLayout = null;
            earlyArena = null;
        }
        if (features != null) {
            int width = market.featureCount();
            gathers = new ClusterFeatures.Gather[models.length];
            for (int j = 0; j < models.length; j++) {
                gathers[j] = new ClusterFeatures.Gather(layouts[j].columns(), width);
            }
            earlyGather = early ? new ClusterFeatures.Gather(earlyLayout.columns(), width) : null;
        } else {
            gathers = null;
            earlyGather = null;
        }
    }

    private Marketplace.ModelInfo checked(String name) {
        Marketplace.ModelInfo info = market.model(name);
        if (!gateway.models().contains(name)) {
            throw new IllegalArgumentException("the gateway does not serve model '" + name + "'; it serves "
                    + gateway.models());
        }
        if (gateway instanceof InProcessGateway inProcess) {
            var spec = inProcess.spec(name);
            if (spec.features() != info.columns().length || spec.outputWidth() != 1) {
                throw new IllegalArgumentException("model '" + name + "' takes " + spec.features() + " features and "
                        + "gives " + spec.outputWidth() + " outputs per row; the export lists " + info.columns().length
                        + " columns and the ad server needs one score per row");
            }
        }
        return info;
    }

    private FeatureArena arena(int rows, int features) {
        return gateway instanceof InProcessGateway inProcess
                ? inProcess.newArena(options.threads(), rows, features)
                : FeatureArena.allocate(options.threads(), rows, features);
    }

    /** The task each full-scoring model prices ({@code pctr}, ...), or {@code shadow}. */
    public List<String> roles() {
        List<String> roles = new ArrayList<>();
        for (int j = 0; j < models.length; j++) {
            String role = "shadow";
            for (int t = 0; t < TASKS.length; t++) {
                if (pricer[t] == j) {
                    role = TASKS[t];
                }
            }
            roles.add(role);
        }
        return roles;
    }

    /** Rows each full-scoring call carries: the early ranker's cut, or all candidates. */
    public int fullRows() {
        return fullRows;
    }

    public boolean earlyRanking() {
        return earlyLayout != null;
    }

    /** A request loop for one thread (its own random stream, scratch arrays and metrics recorder). */
    public Worker newWorker(int thread) {
        return new Worker(options.seed() + thread, metrics.newRecorder());
    }

    /** One request thread's state. Not thread-safe: one thread runs it. */
    public final class Worker {
        private final SplittableRandom random;
        private final Metrics.Recorder recorder;
        private final int[][] pools;
        private final int[] candidates;
        private final float[] earlyScores;
        private final int[] order;
        private final int[] survivors;
        private final float[] ecpm;
        private final FeatureArena.Slot[] slots;
        private final ScoreResult[] results;
        private final List<CompletableFuture<ScoreResult>> futures;
        private final Auction.Outcome outcome = new Auction.Outcome();
        private final Auction.PodOutcome pod = new Auction.PodOutcome();
        private final float[] creativeSeconds;
        private final int[] categories;
        private final int[] objectivesOf;
        private final int[] podOrder;
        private final ClusterFeatures.Rows rows;
        private int calls;

        private Worker(long seed, Metrics.Recorder recorder) {
            this.random = new SplittableRandom(seed);
            this.recorder = recorder;
            this.pools = new int[market.devices().size()][];
            for (int d = 0; d < pools.length; d++) {
                pools[d] = market.eligibleAds(d);
            }
            int n = options.candidates();
            this.candidates = new int[n];
            this.earlyScores = new float[n];
            this.order = new int[n];
            this.survivors = new int[n];
            this.ecpm = new float[n];
            this.creativeSeconds = new float[n];
            this.categories = new int[n];
            this.objectivesOf = new int[n];
            this.podOrder = new int[n];
            this.slots = new FeatureArena.Slot[models.length];
            this.results = new ScoreResult[models.length];
            this.futures = new ArrayList<>(models.length);
            this.rows = features == null ? null : features.newRows(n);
        }

        /** Serves requests until {@code System.nanoTime()} reaches {@code endNanos}. */
        public void runUntil(long endNanos) {
            while (System.nanoTime() < endNanos) {
                serveOne();
            }
        }

        /** Serves one request and records it; a {@link ScoregateException} is recorded, not thrown. */
        public void serveOne() {
            long start = System.nanoTime();
            calls = 0;
            try {
                serve(start);
            } catch (ScoregateException e) {
                recorder.failed(e, calls);
            }
        }

        private void serve(long start) {
            int context = random.nextInt(market.contexts());
            int user = market.requestUser(context);
            int[] pool = pools[market.contextDevice(context)];
            int n = Math.min(options.candidates(), pool.length);
            for (int i = 0; i < n; i++) { // partial Fisher-Yates: the last n entries become a uniform sample
                int last = pool.length - 1 - i;
                int pick = random.nextInt(last + 1);
                int ad = pool[pick];
                pool[pick] = pool[last];
                pool[last] = ad;
                candidates[i] = ad;
            }
            long deadline = start + options.timeout().toNanos();
            if (rows != null) { // the candidates' full rows from the feature cache, within the request's deadline
                rows.hydrate(user, context, candidates, n, deadline - System.nanoTime());
            }
            int[] ads = candidates;
            int[] picked = null; // with early ranking: the candidate index of each survivor
            int m = n;
            if (earlyLayout != null && n > fullRows) {
                try (FeatureArena.Slot slot = earlyArena.acquire()) {
                    if (rows != null) {
                        earlyGather.write(slot.features(), rows.rows(), null, n);
                    } else {
                        earlyLayout.write(slot.features(), user, context, candidates, n);
                    }
                    ScoreResult r = gateway.score(slot.request(n).model(options.earlyRanker())
                            .deadlineNanos(deadline).routingKey(user).build());
                    calls++;
                    for (int i = 0; i < n; i++) {
                        earlyScores[i] = r.score(i);
                    }
                }
                m = Ranking.topK(earlyScores, n, fullRows, order);
                for (int i = 0; i < m; i++) {
                    survivors[i] = candidates[order[i]];
                }
                ads = survivors;
                picked = order;
            }
            int unsafe = 0;
            try {
                for (int j = 0; j < models.length; j++) {
                    slots[j] = arenas[j].acquire();
                    if (rows != null) {
                        gathers[j].write(slots[j].features(), rows.rows(), picked, m);
                    } else {
                        layouts[j].write(slots[j].features(), user, context, ads, m);
                    }
                }
                scoreAll(m, deadline, user);
                unsafe = price(ads, m);
            } finally {
                for (int j = 0; j < slots.length; j++) {
                    if (slots[j] != null) {
                        slots[j].release();
                        slots[j] = null;
                    }
                    results[j] = null;
                }
            }
            float podSeconds = market.contextPodSeconds(context);
            if (podSeconds > 0) { // a CTV ad break: the same fill and prices as the Python pipeline's
                for (int i = 0; i < m; i++) {
                    creativeSeconds[i] = market.adCreativeSeconds(ads[i]);
                    categories[i] = market.adCategory(ads[i]);
                    objectivesOf[i] = market.adObjective(ads[i]);
                }
                Auction.fillPod(ecpm, m, creativeSeconds, categories, podSeconds, market.contextSlots(context),
                        options.reserve(), true, podOrder, pod);
                recorder.servedPod(System.nanoTime() - start, calls, m, unsafe, pod, ecpm, objectivesOf);
                return;
            }
            Auction.run(ecpm, m, options.reserve(), outcome);
            int winner = outcome.winner();
            int objective = winner < 0 ? 0 : market.adObjective(ads[winner]);
            float winning = winner < 0 ? Float.NaN : ecpm[winner];
            recorder.served(System.nanoTime() - start, calls, m, unsafe, outcome, objective, winning);
        }

        /** The user is each request's routing key: during a canary, a user sees one version of a model. */
        private void scoreAll(int rows, long deadline, int user) {
            if (!options.parallel()) {
                for (int j = 0; j < models.length; j++) {
                    results[j] = gateway.score(request(j, rows, deadline, user));
                    calls++;
                }
                return;
            }
            // Every call submitted is waited for before the slots are released, even after one failed: a slot stays
            // leased until its call completed (FeatureArena contract). Then the first failure is rethrown.
            futures.clear();
            RuntimeException failure = null;
            for (int j = 0; j < models.length && failure == null; j++) {
                try {
                    futures.add(gateway.scoreAsync(request(j, rows, deadline, user)));
                } catch (ScoregateException e) { // a request that does not build
                    failure = e;
                }
            }
            for (int j = 0; j < futures.size(); j++) {
                try {
                    results[j] = futures.get(j).join();
                    calls++;
                } catch (CompletionException e) {
                    RuntimeException cause = e.getCause() instanceof ScoregateException s ? s : e;
                    failure = failure == null ? cause : failure;
                }
            }
            if (failure != null) {
                throw failure;
            }
        }

        private ScoreRequest request(int j, int rows, long deadline, int user) {
            return slots[j].request(rows).model(models[j]).deadlineNanos(deadline).routingKey(user).build();
        }

        /** Fills {@code ecpm[0..m)}; returns how many candidates brand safety removed. */
        private int price(int[] ads, int m) {
            ScoreResult click = result(CLICK);
            ScoreResult conversion = result(CONVERSION);
            ScoreResult completion = result(COMPLETION);
            ScoreResult safety = result(SAFETY);
            float unsafeAbove = options.unsafeAbove();
            int unsafe = 0;
            for (int i = 0; i < m; i++) {
                int ad = ads[i];
                if (safety != null && safety.score(i) > unsafeAbove) {
                    ecpm[i] = Float.NaN;
                    unsafe++;
                    continue;
                }
                float pClick = click == null ? Float.NaN : click.score(i);
                float pConversion = conversion == null ? Float.NaN : conversion.score(i);
                float pCompletion = completion == null ? Float.NaN : completion.score(i);
                BidUnit unit = market.unitOf(market.adObjective(ad));
                ecpm[i] = unit.ecpm(market.adBid(ad), pClick, pConversion, pCompletion);
            }
            return unsafe;
        }

        private ScoreResult result(int task) {
            return pricer[task] < 0 ? null : results[pricer[task]];
        }
    }
}
