package dev.scoregate.bridge.shm;

import dev.scoregate.bridge.DeadlineExceededException;
import dev.scoregate.bridge.GatewayUnavailableException;
import dev.scoregate.bridge.InvalidInputException;
import dev.scoregate.bridge.ModelId;
import dev.scoregate.bridge.RemoteGateway;
import dev.scoregate.bridge.ScoreRequest;
import dev.scoregate.bridge.ScoreResult;
import dev.scoregate.bridge.UnknownModelException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * One open session with the gateway: its ring, doorbells, model table and clock offset, and the request path over
 * them. Immutable apart from the ring; thread-safe. Once the ring has failed the session is dead for good: the
 * gateway client ({@link ShmGateway}) replaces it with a new one.
 */
final class ShmSession {
    private static final int CLOCK_SAMPLES = 5;
    private static final long SAME_CLOCK_SLACK_NANOS = 20_000;

    final String id;
    final ControlChannel channel;
    final SlotRing ring;
    /** Replaced whole when the gateway lists models deployed since the session opened ({@link #refreshed}). */
    volatile ModelTable table;
    private final Doorbell doorbell;
    /** Per model index: the last version the gateway named as scoring it, with its number. */
    private volatile AtomicReferenceArray<Served> lastServed;
    /** When the table was last asked for again ({@link System#nanoTime()}); at most once per {@link #REFRESH_NANOS}. */
    private long refreshedAt = Long.MIN_VALUE / 2;
    private static final long REFRESH_NANOS = 1_000_000_000L;

    /** A version number the gateway wrote and the id results carry for it. */
    private record Served(long number, ModelId id) {
    }

    ShmSession(String id, ControlChannel channel, SlotRing ring, ModelTable table, Doorbell doorbell) {
        this.id = id;
        this.channel = channel;
        this.ring = ring;
        this.table = table;
        this.doorbell = doorbell;
        this.lastServed = new AtomicReferenceArray<>(table.indexLimit());
    }

    /**
     * Opens a session over {@code channel}: asks for a ring, maps it, opens the doorbells and attaches, so the gateway
     * unlinks the files. On failure closes what it opened (not the channel) and throws.
     *
     * @throws GatewayUnavailableException if the gateway cannot be reached, refuses, or hands over a bad ring
     */
    static ShmSession open(ControlChannel channel, RemoteGateway.Options options) {
        String hello = ControlText.parse(channel.hello(options.clientName())).get("protocol");
        if (!"1".equals(hello)) {
            throw new GatewayUnavailableException("the gateway speaks control protocol " + hello
                    + "; this client speaks 1: upgrade one of them");
        }
        String request = ControlText.line("client", options.clientName()) + ControlText.line("slots", options.slots())
                + ControlText.line("max_rows", options.maxRows());
        long offset = clockOffset(channel);
        ControlText reply = ControlText.parse(channel.openSession(request));
        if (reply.get("error") != null) {
            throw new GatewayUnavailableException("the gateway refused a session: " + reply.get("error"));
        }
        String id = reply.require("session");
        long heartbeatTimeout = options.heartbeatTimeout().toNanos();
        Doorbell doorbell = null;
        try {
            ByteBuffer memory = map(Path.of(reply.require("path")), Long.parseLong(reply.require("size")));
            doorbell = FifoDoorbell.open(reply.all("bell"));
            SlotRing ring = new SlotRing(memory, doorbell, options.spinNanos(), options.maxParkNanos(), offset,
                    heartbeatTimeout);
            if (ring.layout().workers() != reply.all("bell").size()) {
                throw new IllegalStateException("the ring has " + ring.layout().workers() + " workers but the "
                        + "gateway sent " + reply.all("bell").size() + " doorbells");
            }
            ModelTable table = ModelTable.parse(reply.all("model"));
            channel.attachSession(id);
            return new ShmSession(id, channel, ring, table, doorbell);
        } catch (IOException | RuntimeException e) {
            if (doorbell != null) {
                doorbell.close();
            }
            try {
                channel.closeSession(id);
            } catch (RuntimeException ignored) {
                // best effort: the gateway's lease closes it anyway
            }
            if (e instanceof GatewayUnavailableException unavailable) {
                throw unavailable;
            }
            throw new GatewayUnavailableException(null, "could not attach to the gateway's shared memory: " + e, e);
        }
    }

    /**
     * The gateway's clock minus {@link System#nanoTime()}. The gateway reads its clock between our two readings, so
     * the midpoint of the fastest of a few round trips errs by at most half of it. On Linux both clocks are
     * {@code CLOCK_MONOTONIC}: an estimate within that error is the same clock, and the offset is exactly 0.
     */
    static long clockOffset(ControlChannel channel) {
        long best = Long.MAX_VALUE;
        long offset = 0;
        for (int i = 0; i < CLOCK_SAMPLES; i++) {
            long before = System.nanoTime();
            long gateway = Long.parseLong(channel.clock().trim());
            long after = System.nanoTime();
            if (after - before < best) {
                best = after - before;
                offset = gateway - (before + best / 2);
            }
        }
        return Math.abs(offset) <= best / 2 + SAME_CLOCK_SLACK_NANOS ? 0 : offset;
    }

    private static ByteBuffer map(Path path, long size) throws IOException {
        if (size <= 0 || size > Integer.MAX_VALUE) {
            throw new IOException("ring size " + size + " is not mappable as one buffer");
        }
        try (FileChannel file = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            if (file.size() < size) {
                throw new IOException(path + " holds " + file.size() + " bytes, the gateway announced " + size);
            }
            MappedByteBuffer mapped = file.map(FileChannel.MapMode.READ_WRITE, 0, size);
            return mapped; // the mapping outlives the channel and the file's name
        }
    }

    /** Scores {@code request} through the ring; see {@link RemoteGateway}'s contract. */
    ScoreResult score(ScoreRequest request) {
        ModelId named = request.model();
        String model = named.toString();
        // A pinned version goes to the gateway, which scores exactly it or answers that it does not serve: the table
        // lists the versions served at connect, and a hot swap may have replaced them since.
        long pinned = named.version() == null ? -1 : versionNumber(named);
        ModelTable current = table;
        ModelTable.Model m = find(current, named);
        if (m == null) { // a model deployed since the session opened?
            current = refreshed(current);
            m = find(current, named);
        }
        if (m == null) {
            throw new UnknownModelException(model, current.loaded());
        }
        if (m.width() == 0) {
            throw new InvalidInputException(model, "features", "the shared-memory transport serves models with one "
                    + "[batch, features] float32 input and one fixed-shape output; this one is " + m.signature());
        }
        RingLayout layout = ring.layout();
        int rows = request.rows();
        long featureBytes = (long) rows * request.featureCount() * Float.BYTES;
        if (rows > layout.maxRows() || featureBytes > layout.featureCapacity()) {
            throw new InvalidInputException(model, "rows", rows + " rows x " + request.featureCount()
                    + " features exceed a shared-memory slot (" + layout.maxRows() + " rows x " + layout.maxFeatures()
                    + " features); split the request or connect with a larger Options.maxRows");
        }
        long scoreBytes = (long) rows * m.width() * Float.BYTES;
        if (request.scoreBuffer().capacity() < scoreBytes) {
            throw new InvalidInputException(model, "scores", "score buffer holds " + request.scoreBuffer().capacity()
                    + " bytes but " + rows + " rows x " + m.width() + " outputs x 4 bytes needs " + scoreBytes);
        }
        String dead = ring.check();
        if (dead != null) {
            throw new GatewayUnavailableException(model, dead, null);
        }
        long remaining = request.remainingNanos(System.nanoTime());
        if (remaining <= 0) {
            throw DeadlineExceededException.overrun(model, -remaining, "before the request was sent");
        }
        int slot = ring.claim();
        if (slot < 0) {
            throw new GatewayUnavailableException(model, "overloaded: all " + layout.slots() + " shared-memory slots "
                    + "are in use; shed load or connect with more Options.slots", null);
        }
        int outcome;
        boolean published = false;
        try {
            ring.copyIn(slot, request.featureBuffer(), (int) featureBytes);
            // The routing key travels as its bucket (Routing.bucket, what the gateway's router computes from a key).
            int bucket = named.version() == null ? request.routingBucket() : -1;
            long s = ring.publish(slot, m.index(), rows, request.featureCount(), m.width(),
                    request.deadlineNanos() + ring.clockOffsetNanos(), bucket, pinned);
            published = true;
            outcome = ring.await(slot, s, request.deadlineNanos(), model, m.index(), rows);
        } catch (RuntimeException | Error e) {
            if (!published) {
                ring.release(slot); // the gateway never saw it; once published, await() abandons instead
            }
            throw e;
        }
        try {
            if (outcome == RingLayout.SCORED) {
                ring.copyOut(slot, request.scoreBuffer(), (int) scoreBytes);
                return ScoreResult.of(servedBy(m, ring.served(slot)), request);
            }
            throw GatewayErrors.fromGateway(ring.code(slot), model, ring.message(slot), table.loaded());
        } finally {
            ring.release(slot);
        }
    }

    private static ModelTable.Model find(ModelTable table, ModelId named) {
        ModelTable.Model m = table.find(named);
        return m != null || named.version() == null ? m : table.find(new ModelId(named.name(), null));
    }

    /**
     * The table with the models deployed since the session opened, asked of the gateway at most once a second (a
     * client naming a model that does not exist must not turn each call into a control call); {@code current} if
     * it was asked within the second, or the gateway cannot say.
     */
    private ModelTable refreshed(ModelTable current) {
        synchronized (this) {
            long now = System.nanoTime();
            if (table != current || now - refreshedAt < REFRESH_NANOS) {
                return table; // another thread refreshed it, or it was asked for just now
            }
            refreshedAt = now;
            try {
                ModelTable fresh = ModelTable.parse(ControlText.parse(channel.sessionModels(id)).all("model"));
                if (fresh.indexLimit() > lastServed.length()) {
                    lastServed = new AtomicReferenceArray<>(fresh.indexLimit());
                }
                table = fresh;
            } catch (RuntimeException e) {
                // the gateway cannot list them (gone, or older than this client): the request is refused as unknown
            }
            return table;
        }
    }

    /** A pinned version as the number the ring carries; versions are decimal numbers (the package format's). */
    private long versionNumber(ModelId named) {
        String version = named.version();
        try {
            long number = Long.parseLong(version);
            if (number >= 0 && Long.toString(number).equals(version)) {
                return number;
            }
        } catch (NumberFormatException e) {
            // falls through
        }
        throw new UnknownModelException(named.toString(), table.loaded());
    }

    /**
     * The version that scored: the table's (listed at connect) unless the gateway names another one, after a hot
     * swap. The last one named per model is kept, so results allocate nothing while the version stays the same.
     */
    private ModelId servedBy(ModelTable.Model m, long served) {
        if (served < 0) {
            return m.id();
        }
        AtomicReferenceArray<Served> cache = lastServed;
        boolean cached = m.index() < cache.length();
        Served last = cached ? cache.getPlain(m.index()) : null;
        if (last != null && last.number() == served) {
            return last.id();
        }
        String version = Long.toString(served);
        ModelId id = version.equals(m.id().version()) ? m.id() : new ModelId(m.id().name(), version);
        if (cached) {
            cache.setPlain(m.index(), new Served(served, id)); // a benign race: either thread's record is right
        }
        return id;
    }

    /** Closes the doorbells and the channel, not the gateway's session (see {@link ShmGateway}). */
    void closeQuietly() {
        doorbell.close();
        channel.close();
    }

    @Override
    public String toString() {
        return "ShmSession[" + id + ", " + ring + "]";
    }
}
