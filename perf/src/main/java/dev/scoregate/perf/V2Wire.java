package dev.scoregate.perf;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * Just enough of the KServe V2 (Open Inference Protocol) wire format for {@link GrpcBenchmark}: encodes a
 * {@code ModelInferRequest} with one FP32 input in {@code raw_input_contents} and finds {@code raw_output_contents}
 * in a {@code ModelInferResponse}. Hand-written protobuf (field numbers of {@code inference.GRPCInferenceService},
 * as in {@code gateway/grpc/protos/inference.proto}) so the benchmark needs neither protoc nor generated classes;
 * it does what generated code does: one byte[] per request, the tensor copied into it once.
 */
final class V2Wire {
    static final String SERVICE = "inference.GRPCInferenceService";
    static final String MODEL_INFER = SERVICE + "/ModelInfer";

    private static final int WIRE_VARINT = 0;
    private static final int WIRE_FIXED64 = 1;
    private static final int WIRE_BYTES = 2;
    private static final int WIRE_FIXED32 = 5;

    private V2Wire() {
    }

    /**
     * The request bytes: {@code model_name} (1), one {@code inputs} (5: name 1, datatype 2 "FP32", packed shape 3) and
     * its {@code raw_input_contents} (7), {@code rows x features} little-endian float32 read from {@code features}.
     */
    static byte[] inferRequest(String model, String input, ByteBuffer features, int rows, int featureCount) {
        byte[] name = model.getBytes(StandardCharsets.UTF_8);
        byte[] tensorName = input.getBytes(StandardCharsets.UTF_8);
        byte[] datatype = "FP32".getBytes(StandardCharsets.UTF_8);
        int shapeBytes = varintSize(rows) + varintSize(featureCount);
        int tensor = 1 + varintSize(tensorName.length) + tensorName.length
                + 1 + varintSize(datatype.length) + datatype.length
                + 1 + varintSize(shapeBytes) + shapeBytes;
        int raw = rows * featureCount * Float.BYTES;
        int total = 1 + varintSize(name.length) + name.length
                + 1 + varintSize(tensor) + tensor
                + 1 + varintSize(raw) + raw;
        ByteBuffer out = ByteBuffer.allocate(total).order(ByteOrder.LITTLE_ENDIAN);
        tag(out, 1, WIRE_BYTES);
        bytes(out, name);
        tag(out, 5, WIRE_BYTES);
        varint(out, tensor);
        tag(out, 1, WIRE_BYTES);
        bytes(out, tensorName);
        tag(out, 2, WIRE_BYTES);
        bytes(out, datatype);
        tag(out, 3, WIRE_BYTES);
        varint(out, shapeBytes);
        varint(out, rows);
        varint(out, featureCount);
        tag(out, 7, WIRE_BYTES);
        varint(out, raw);
        ByteBuffer src = features.duplicate().order(ByteOrder.nativeOrder());
        src.clear().limit(raw);
        if (ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN) {
            out.put(src);
        } else {
            while (src.hasRemaining()) {
                out.putFloat(src.getFloat());
            }
        }
        return out.array();
    }

    /** The first {@code raw_output_contents} (6) of a response, as a little-endian view; fails if there is none. */
    static ByteBuffer rawOutput(byte[] response) {
        ByteBuffer in = ByteBuffer.wrap(response);
        while (in.hasRemaining()) {
            long key = readVarint(in);
            int field = (int) (key >>> 3);
            int wire = (int) (key & 7);
            switch (wire) {
                case WIRE_VARINT -> readVarint(in);
                case WIRE_FIXED64 -> in.position(in.position() + 8);
                case WIRE_FIXED32 -> in.position(in.position() + 4);
                case WIRE_BYTES -> {
                    int length = (int) readVarint(in);
                    if (field == 6) {
                        return in.slice(in.position(), length).order(ByteOrder.LITTLE_ENDIAN);
                    }
                    in.position(in.position() + length);
                }
                default -> throw new IllegalStateException("wire type " + wire + " in a ModelInferResponse");
            }
        }
        throw new IllegalStateException("the response carries no raw_output_contents");
    }

    static byte[] readAll(InputStream stream) {
        try (stream) {
            return stream.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static InputStream stream(byte[] bytes) {
        return new ByteArrayInputStream(bytes);
    }

    private static void tag(ByteBuffer out, int field, int wire) {
        varint(out, (field << 3) | wire);
    }

    private static void bytes(ByteBuffer out, byte[] value) {
        varint(out, value.length);
        out.put(value);
    }

    private static void varint(ByteBuffer out, long value) {
        while ((value & ~0x7FL) != 0) {
            out.put((byte) ((value & 0x7F) | 0x80));
            value >>>= 7;
        }
        out.put((byte) value);
    }

    private static int varintSize(long value) {
        int n = 1;
        while ((value & ~0x7FL) != 0) {
            value >>>= 7;
            n++;
        }
        return n;
    }

    private static long readVarint(ByteBuffer in) {
        long value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            byte b = in.get();
            value |= (long) (b & 0x7F) << shift;
            if (b >= 0) {
                return value;
            }
        }
        throw new IllegalStateException("malformed varint");
    }
}
