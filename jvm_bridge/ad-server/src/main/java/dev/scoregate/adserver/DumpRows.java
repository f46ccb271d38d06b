package dev.scoregate.adserver;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Writes the rows the ad server would score for one request, so that a test in another language can compare them
 * with its own: {@code DumpRows <export-dir> <model|all> <context> <out-file> <ad id>...} assembles, with
 * {@link FeatureLayout}, the rows of pooled context {@code context} (and its user) for the given ads, in the columns
 * of {@code model} (as the export lists them) or all features, and writes them to {@code out-file} as raw
 * little-endian float32, row-major. Runs without a gateway ({@code java -cp <jar> dev.scoregate.adserver.DumpRows}).
 */
public final class DumpRows {
    private DumpRows() {
    }

    public static void main(String[] args) throws IOException {
        if (args.length < 5) {
            throw new IllegalArgumentException("usage: DumpRows <export-dir> <model|all> <context> <out-file> <ad>...");
        }
        Marketplace market = Marketplace.open(Path.of(args[0]));
        int[] columns;
        if (args[1].equals("all")) {
            columns = new int[market.featureCount()];
            for (int i = 0; i < columns.length; i++) {
                columns[i] = i;
            }
        } else {
            columns = market.model(args[1]).columns();
        }
        int context = Integer.parseInt(args[2]);
        int[] ads = new int[args.length - 4];
        for (int i = 0; i < ads.length; i++) {
            ads[i] = Integer.parseInt(args[4 + i]);
        }
        FeatureLayout layout = market.layout(columns);
        ByteBuffer rows = ByteBuffer.allocateDirect(ads.length * layout.width() * Float.BYTES)
                .order(ByteOrder.LITTLE_ENDIAN);
        layout.write(rows.asFloatBuffer(), market.requestUser(context), context, ads, ads.length);
        try (FileChannel out = FileChannel.open(Path.of(args[3]), StandardOpenOption.CREATE,
                StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
            while (rows.hasRemaining()) {
                out.write(rows);
            }
        }
        System.out.println(ads.length + " rows x " + layout.width() + " features (" + layout.runs() + " runs)");
    }
}
