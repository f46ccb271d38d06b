package dev.scoregate.bridge.shm;

import java.io.FileOutputStream;
import java.io.IOException;
import java.util.List;

/**
 * The gateway's doorbells: one FIFO per worker, created by the gateway next to the ring. Ringing writes one byte;
 * the worker drains them when it wakes.
 *
 * <p>Written through {@link FileOutputStream}, not a {@code FileChannel}: a channel is closed for everyone when a
 * thread that writes to it is interrupted, and request threads are the caller's, interrupted at will. Once the
 * gateway process is gone a write fails with {@code EPIPE} (the JVM ignores {@code SIGPIPE}).
 */
final class FifoDoorbell implements Doorbell {
    private final FileOutputStream[] bells;

    private FifoDoorbell(FileOutputStream[] bells) {
        this.bells = bells;
    }

    /**
     * Opens the FIFOs for writing. The gateway holds them open for reading, so this does not block.
     *
     * @throws IOException if one cannot be opened; those already open are closed
     */
    static FifoDoorbell open(List<String> paths) throws IOException {
        FileOutputStream[] bells = new FileOutputStream[paths.size()];
        try {
            for (int i = 0; i < bells.length; i++) {
                bells[i] = new FileOutputStream(paths.get(i));
            }
        } catch (IOException e) {
            closeAll(bells);
            throw e;
        }
        return new FifoDoorbell(bells);
    }

    @Override
    public void ring(int worker) throws IOException {
        bells[worker].write(1);
    }

    @Override
    public void close() {
        closeAll(bells);
    }

    private static void closeAll(FileOutputStream[] bells) {
        for (FileOutputStream bell : bells) {
            if (bell != null) {
                try {
                    bell.close();
                } catch (IOException ignored) {
                    // closing a pipe end cannot lose data we care about
                }
            }
        }
    }
}
