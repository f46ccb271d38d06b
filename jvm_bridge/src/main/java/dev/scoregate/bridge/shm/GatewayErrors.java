package dev.scoregate.bridge.shm;

import dev.scoregate.bridge.DeadlineExceededException;
import dev.scoregate.bridge.GatewayUnavailableException;
import dev.scoregate.bridge.InvalidInputException;
import dev.scoregate.bridge.ScoregateException;
import dev.scoregate.bridge.UnknownModelException;
import java.util.List;

/**
 * The gateway's error codes (Python {@code jvm_bridge.inprocess.error_code}, the same numbers as the in-process
 * transport's {@code WorkerLane.fail}) mapped into the Java tree, the gateway's message kept verbatim.
 */
final class GatewayErrors {
    static final int INVALID_INPUT = 1;
    static final int UNKNOWN_MODEL = 2;
    static final int DEADLINE_EXCEEDED = 3;
    static final int UNAVAILABLE = 4;

    private GatewayErrors() {
    }

    static ScoregateException fromGateway(int code, String model, String message, List<String> loaded) {
        String text = message == null || message.isBlank()
                ? "the gateway reported a failure (code " + code + ") without a message"
                : message;
        switch (code) {
            case INVALID_INPUT:
                return InvalidInputException.fromGateway(model, text);
            case UNKNOWN_MODEL:
                return UnknownModelException.fromGateway(model, text, loaded);
            case DEADLINE_EXCEEDED:
                return DeadlineExceededException.fromGateway(model, text);
            case UNAVAILABLE:
                return GatewayUnavailableException.fromGateway(model, text);
            default:
                return new ScoregateException(model, text);
        }
    }
}
