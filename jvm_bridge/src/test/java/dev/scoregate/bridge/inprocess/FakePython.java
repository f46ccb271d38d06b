package dev.scoregate.bridge.inprocess;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;

/**
 * Plays the Python side: reads only the control block and the buffers it names, like {@code jvm_bridge/inprocess.py}.
 * The "model": output {@code j} of a row is the sum of the row's features plus {@code j}.
 */
final class FakePython {
    private FakePython() {
    }

    /** Control words 0..7 of the batch just taken. */
    static long[] control(WorkerLane lane) {
        ByteBuffer control = lane.control();
        long[] words = new long[8];
        for (int i = 0; i < words.length; i++) {
            words[i] = control.getLong(i * Long.BYTES);
        }
        return words;
    }

    /** Scores the batch just taken in the buffer control names; returns the control words it used. */
    static long[] score(InProcessGateway gateway, WorkerLane lane) {
        long[] c = control(lane);
        ByteBuffer buffer = c[2] == WorkerLane.STAGING ? lane.staging() : gateway.arena((int) c[2]);
        int rows = (int) c[1];
        int features = (int) c[6];
        int width = (int) c[7];
        for (int r = 0; r < rows; r++) {
            float sum = 0;
            for (int f = 0; f < features; f++) {
                sum += buffer.getFloat((int) c[3] + (r * features + f) * Float.BYTES);
            }
            for (int j = 0; j < width; j++) {
                buffer.putFloat((int) c[4] + (r * width + j) * Float.BYTES, sum + j);
            }
        }
        return c;
    }

    /** What {@link #score} gives for row {@code row} of a request whose features are {@code base, base+1, ...}. */
    static float expected(float base, int row, int features, int output) {
        float sum = 0;
        for (int f = 0; f < features; f++) {
            sum += base + row * features + f;
        }
        return sum + output;
    }

    static ByteBuffer direct(int floats) {
        return ByteBuffer.allocateDirect(floats * Float.BYTES).order(ByteOrder.nativeOrder());
    }

    /** Features {@code base, base+1, ...} row-major, as {@link #expected} assumes. */
    static ByteBuffer features(float base, int rows, int features) {
        ByteBuffer buffer = direct(rows * features);
        for (int i = 0; i < rows * features; i++) {
            buffer.putFloat(i * Float.BYTES, base + i);
        }
        return buffer;
    }

    /** A worker thread looping take -> score -> complete until the gateway closes. */
    static final class Worker extends Thread {
        private final InProcessGateway gateway;
        private final WorkerLane lane;
        final Queue<long[]> batches = new ConcurrentLinkedQueue<>();
        volatile Throwable error;

        Worker(InProcessGateway gateway, int lane) {
            super("fake-python-" + lane);
            setDaemon(true);
            this.gateway = gateway;
            this.lane = gateway.lane(lane);
        }

        static Worker start(InProcessGateway gateway, int lane) {
            Worker worker = new Worker(gateway, lane);
            worker.start();
            return worker;
        }

        @Override
        public void run() {
            try {
                while (true) {
                    int n = lane.take(TimeUnit.SECONDS.toNanos(1));
                    if (n < 0) {
                        return;
                    }
                    if (n > 0) {
                        batches.add(score(gateway, lane));
                        lane.complete();
                    }
                }
            } catch (Throwable t) {
                error = t;
            }
        }
    }
}
