package dev.scoregate.bridge;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * The stable bucket of a request's routing key, as the Python gateway computes it ({@code models.rollout.bucket}):
 * the first 8 bytes of the key's SHA-256, read little-endian as an unsigned number, modulo {@link #BUCKETS}. The same
 * key lands in the same bucket in every process, language and transport, so a canary is sticky per key wherever the
 * request enters: a rollout sends the keys whose bucket is below {@code canary% x 100} to its candidate.
 *
 * <p>A key is bytes: a {@code String} key is its UTF-8 encoding, a {@code long} key its decimal digits (so the user id
 * {@code 42} and the string {@code "42"} route alike, as over gRPC).
 */
public final class Routing {
    /** Buckets of the key space; a canary of {@code p} % takes the buckets below {@code round(p * 100)}. */
    public static final int BUCKETS = 10_000;

    private static final ThreadLocal<MessageDigest> SHA256 = ThreadLocal.withInitial(() -> {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    });

    private Routing() {
    }

    /** The bucket of {@code key}, in {@code [0, BUCKETS)}. */
    public static int bucket(byte[] key) {
        byte[] digest = SHA256.get().digest(key);
        long first = 0;
        for (int i = 7; i >= 0; i--) {
            first = (first << 8) | (digest[i] & 0xFF);
        }
        return (int) Long.remainderUnsigned(first, BUCKETS);
    }

    /** The bytes of a {@code String} key: UTF-8. */
    public static byte[] key(String key) {
        return key.getBytes(StandardCharsets.UTF_8);
    }

    /** The bytes of a {@code long} key: its decimal digits. */
    public static byte[] key(long key) {
        return Long.toString(key).getBytes(StandardCharsets.US_ASCII);
    }
}
