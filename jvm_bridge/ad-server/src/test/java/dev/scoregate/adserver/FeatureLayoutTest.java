package dev.scoregate.adserver;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Feature assembly against the hand-made {@link TinyExport}: every value lands where the global order says. */
class FeatureLayoutTest {
    @TempDir
    Path dir;

    private Marketplace market;

    @BeforeEach
    void open() throws IOException {
        market = Marketplace.open(TinyExport.write(dir));
    }

    private static FloatBuffer slot(int floats) {
        return ByteBuffer.allocateDirect(floats * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
    }

    @Test
    void fullRowsAreUserThenAdThenContextBitForBit() {
        FeatureLayout layout = market.layout(new int[] {0, 1, 2, 3, 4, 5, 6});
        assertEquals(7, layout.width());
        assertEquals(3, layout.runs()); // one bulk copy per block
        int context = 3;
        int user = market.requestUser(context);
        int[] ads = {5, 0, 2};
        FloatBuffer target = slot(3 * 7 + 5);
        target.position(4); // ignored, and left as found
        layout.write(target, user, context, ads, ads.length);
        assertEquals(4, target.position());
        for (int r = 0; r < ads.length; r++) {
            for (int c = 0; c < 7; c++) {
                float want = TinyExport.feature(c, TinyExport.REQUEST_USER[context], ads[r], context);
                assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(target.get(r * 7 + c)),
                        "row " + r + " column " + c);
            }
        }
    }

    @Test
    void aModelsColumnsInItsOwnOrder() {
        int[] columns = market.model("early").columns(); // {4, 0, 1, 6, 3}: scattered and out of order
        FeatureLayout layout = market.layout(columns);
        assertEquals(4, layout.runs()); // {4} {0,1} {6} {3}
        int[] ads = {1, 4};
        FloatBuffer target = slot(ads.length * columns.length);
        layout.write(target, 1, 2, ads, ads.length);
        for (int r = 0; r < ads.length; r++) {
            for (int i = 0; i < columns.length; i++) {
                assertEquals(TinyExport.feature(columns[i], 1, ads[r], 2), target.get(r * columns.length + i));
            }
        }
        FeatureLayout safety = market.layout(market.model("safety").columns());
        assertEquals(2, safety.runs()); // the ad block, then the context block
    }

    @Test
    void onlyTheRequestedRowsAreWritten() {
        FeatureLayout layout = market.layout(new int[] {3, 4});
        FloatBuffer target = slot(8);
        for (int i = 0; i < 8; i++) {
            target.put(i, -1f);
        }
        layout.write(target, 0, 0, new int[] {2, 3, 4}, 2);
        assertArrayEquals(new float[] {3000, 3001, 4000, 4001, -1, -1, -1, -1}, floats(target));
    }

    @Test
    void rejectsIdsOutsideTheBlocksAndTooSmallTargets() {
        FeatureLayout layout = market.layout(new int[] {0, 5});
        assertThrows(IndexOutOfBoundsException.class, () -> layout.write(slot(4), 0, 0, new int[] {6}, 1));
        assertThrows(IndexOutOfBoundsException.class, () -> layout.write(slot(4), 3, 0, new int[] {0}, 1));
        assertThrows(IndexOutOfBoundsException.class, () -> layout.write(slot(4), 0, 4, new int[] {0}, 1));
        assertThrows(IndexOutOfBoundsException.class, () -> layout.write(slot(3), 0, 0, new int[] {0, 1}, 2));
        FloatBuffer limited = slot(8);
        limited.limit(3); // absolute bulk puts stop at the limit
        assertThrows(IndexOutOfBoundsException.class, () -> layout.write(limited, 0, 0, new int[] {0, 1}, 2));
        assertThrows(IllegalArgumentException.class, () -> market.layout(new int[] {7}));
        assertThrows(IllegalArgumentException.class, () -> market.layout(new int[0]));
    }

    @Test
    void theMarketplaceReadsAttributesPricingAndEligibility() {
        assertEquals(3, market.users());
        assertEquals(6, market.ads());
        assertEquals(4, market.contexts());
        assertEquals(7, market.featureCount());
        assertEquals(2, market.requestUser(0));
        assertEquals(1, market.contextDevice(1));
        assertEquals(3, market.adObjective(1));
        assertEquals(30f, market.adBid(1));
        assertEquals(BidUnit.CPC, market.unitOf(0));
        assertEquals(BidUnit.CPCM, market.unitOf(3));
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5}, market.eligibleAds(0));
        assertArrayEquals(new int[] {1, 4}, market.eligibleAds(1));
        int[] pool = market.eligibleAds(1);
        pool[0] = 99; // a copy: the caller may shuffle it
        assertArrayEquals(new int[] {1, 4}, market.eligibleAds(1));
        assertEquals("brand_safety", market.model("safety").task());
        assertThrows(IllegalArgumentException.class, () -> market.model("nope"));
    }

    @Test
    void refusesAnotherFormatAndFilesOfTheWrongSize() throws IOException {
        Path index = dir.resolve("index.json");
        String good = Files.readString(index);
        Files.writeString(index, good.replace("scoregate.export/1", "scoregate.export/2"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Marketplace.open(dir)).getMessage()
                .contains("format"));
        Files.writeString(index, good);
        Files.write(dir.resolve("ad_bid.f32"), new byte[20]);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Marketplace.open(dir)).getMessage()
                .contains("ad_bid.f32 holds 20 bytes"));
        Files.delete(index);
        assertThrows(IOException.class, () -> Marketplace.open(dir));
    }

    private static float[] floats(FloatBuffer b) {
        float[] out = new float[b.capacity()];
        b.get(0, out);
        return out;
    }
}
