package dev.scoregate.adserver;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * How one model's input row is assembled from the three feature blocks: the user's, the ad's and the context's, in
 * the global feature order (user block, then ad block, then context block; see {@code models/demo/export.py}). A
 * model takes some of those global columns in some order; the layout compiles that list once into <em>runs</em>,
 * maximal stretches that are contiguous in both one block and the row, and per row copies each run with one bulk
 * {@link FloatBuffer#put(int, FloatBuffer, int, int)}. A full 64-feature row is three runs; the early ranker's 16
 * scattered columns are eleven.
 *
 * <p>No cross features exist in the demo marketplace, so this is the whole recipe: row {@code r} of a request equals
 * {@code candidate_matrix(world, user, context, ads)[r, columns]} bit for bit (the integration test checks it).
 *
 * <p>Immutable and thread-safe: the blocks are read with absolute, position-independent bulk copies.
 */
public final class FeatureLayout {
    /** The feature blocks, in global column order. */
    public enum Block {
        USER, AD, CONTEXT
    }

    private static final int USER = Block.USER.ordinal();
    private static final int AD = Block.AD.ordinal();
    private static final int CONTEXT = Block.CONTEXT.ordinal();

    private final int[] columns;
    private final FloatBuffer[] runSource;
    private final int[] runBlock;
    private final int[] runSourceWidth;
    private final int[] runSourceColumn;
    private final int[] runRowColumn;
    private final int[] runLength;
    private final int[] rowsOfBlock;

    /**
     * @param columns     the model's input columns, as global feature indices, in input order
     * @param blocks      the three blocks ({@link Block} order), each {@code rows x width} float32, row-major
     * @param widths      the blocks' widths; block {@code b} holds global columns
     *                    {@code [sum(widths[0..b)), sum(widths[0..b]))}
     * @throws IllegalArgumentException if a column is outside the blocks or a block's size is not rows x width
     */
    public FeatureLayout(int[] columns, FloatBuffer[] blocks, int[] widths) {
        Block[] kinds = Block.values();
        if (blocks.length != kinds.length || widths.length != kinds.length) {
            throw new IllegalArgumentException("need " + kinds.length + " blocks and widths (user, ad, context)");
        }
        if (columns.length == 0) {
            throw new IllegalArgumentException("a layout needs at least one column");
        }
        this.columns = columns.clone();
        this.rowsOfBlock = new int[kinds.length];
        int[] first = new int[kinds.length + 1];
        for (int b = 0; b < kinds.length; b++) {
            if (widths[b] <= 0 || blocks[b].capacity() % widths[b] != 0) {
                throw new IllegalArgumentException(kinds[b] + " block holds " + blocks[b].capacity()
                        + " floats, not a whole number of rows of " + widths[b]);
            }
            rowsOfBlock[b] = blocks[b].capacity() / widths[b];
            first[b + 1] = first[b] + widths[b];
        }
        List<int[]> runs = new ArrayList<>(); // {block, sourceColumn, rowColumn, length}
        for (int i = 0; i < columns.length; i++) {
            int global = columns[i];
            if (global < 0 || global >= first[kinds.length]) {
                throw new IllegalArgumentException("column " + global + " is outside the " + first[kinds.length]
                        + " features of the blocks");
            }
            int block = 0;
            while (global >= first[block + 1]) {
                block++;
            }
            int local = global - first[block];
            int[] last = runs.isEmpty() ? null : runs.get(runs.size() - 1);
            if (last != null && last[0] == block && last[1] + last[3] == local && last[2] + last[3] == i) {
                last[3]++;
            } else {
                runs.add(new int[] {block, local, i, 1});
            }
        }
        int n = runs.size();
        runSource = new FloatBuffer[n];
        runBlock = new int[n];
        runSourceWidth = new int[n];
        runSourceColumn = new int[n];
        runRowColumn = new int[n];
        runLength = new int[n];
        for (int k = 0; k < n; k++) {
            int[] run = runs.get(k);
            runBlock[k] = run[0];
            runSource[k] = blocks[run[0]];
            runSourceWidth[k] = widths[run[0]];
            runSourceColumn[k] = run[1];
            runRowColumn[k] = run[2];
            runLength[k] = run[3];
        }
    }

    /** Features per row. */
    public int width() {
        return columns.length;
    }

    /** The global columns, in row order (a copy). */
    public int[] columns() {
        return columns.clone();
    }

    /** Bulk copies per row. */
    public int runs() {
        return runLength.length;
    }

    /**
     * Writes the rows of one request into {@code target} from absolute index 0: row {@code r} (of {@code n}) is the
     * features of user {@code user}, ad {@code ads[r]} and pooled context {@code context}. Allocates nothing.
     *
     * @param target a float view of an arena slot's features ({@code Slot.features()}, whose limit is its capacity),
     *               or any buffer whose limit is at least {@code n * width()}; its position is neither used nor
     *               changed (absolute bulk puts do check the limit)
     * @throws IndexOutOfBoundsException if an id is outside its block or {@code target}'s limit is too small
     */
    public void write(FloatBuffer target, int user, int context, int[] ads, int n) {
        int width = columns.length;
        if (n < 0 || n > ads.length || (long) n * width > target.limit()) {
            throw new IndexOutOfBoundsException(n + " rows of " + width + " features do not fit the " + target.limit()
                    + " floats below the target's limit, or exceed the " + ads.length + " ads given");
        }
        Objects.checkIndex(user, rowsOfBlock[USER]);
        Objects.checkIndex(context, rowsOfBlock[CONTEXT]);
        int adRows = rowsOfBlock[AD];
        int runs = runLength.length;
        for (int r = 0; r < n; r++) {
            int ad = Objects.checkIndex(ads[r], adRows);
            int base = r * width;
            for (int k = 0; k < runs; k++) {
                int block = runBlock[k];
                int row = block == AD ? ad : block == USER ? user : context;
                target.put(base + runRowColumn[k], runSource[k], row * runSourceWidth[k] + runSourceColumn[k],
                        runLength[k]);
            }
        }
    }

    @Override
    public String toString() {
        return "FeatureLayout[" + columns.length + " columns in " + runLength.length + " runs: "
                + Arrays.toString(columns) + "]";
    }
}
