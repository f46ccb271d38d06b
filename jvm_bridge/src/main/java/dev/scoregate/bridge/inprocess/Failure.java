package dev.scoregate.bridge.inprocess;

import dev.scoregate.bridge.DeadlineExceededException;
import dev.scoregate.bridge.GatewayUnavailableException;
import dev.scoregate.bridge.InvalidInputException;
import dev.scoregate.bridge.ScoregateException;
import dev.scoregate.bridge.UnknownModelException;
import java.util.List;

/**
 * Why a request failed, turned into an exception only by the thread that reports it: a waiting caller builds its
 * own (so the stack trace is the caller's, and a failed batch costs the worker one object, not one exception per
 * request). {@code model} is the model as the request named it ({@code "ctr"} or {@code "ctr@7"}).
 */
@FunctionalInterface
interface Failure {

    ScoregateException toException(String model);

    /**
     * The mapping of {@link WorkerLane#fail}'s codes (the Python side's {@code error_code}) into the Java tree. The
     * message is Python's, kept verbatim: it already names the model, the input and the problem.
     */
    static Failure fromGateway(int code, String message, List<String> loaded) {
        String text = message == null || message.isBlank()
                ? "the gateway reported a failure (code " + code + ") without a message"
                : message;
        switch (code) {
            case WorkerLane.INVALID_INPUT:
                return model -> InvalidInputException.fromGateway(model, text);
            case WorkerLane.UNKNOWN_MODEL:
                return model -> UnknownModelException.fromGateway(model, text, loaded);
            case WorkerLane.DEADLINE_EXCEEDED:
                return model -> DeadlineExceededException.fromGateway(model, text);
            case WorkerLane.UNAVAILABLE:
                return model -> GatewayUnavailableException.fromGateway(model, text);
            default:
                return model -> new ScoregateException(model, text);
        }
    }
}
