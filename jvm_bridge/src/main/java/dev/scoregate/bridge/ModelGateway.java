package dev.scoregate.bridge;

import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Scores feature matrices with named models. The one seam between an ad server and Scoregate: the in-process JPype
 * host implements it in Python ({@code @JImplements}), the Py4J client forwards it to a Python process, and tests
 * implement it directly. Whatever the transport, the caller sees the same contract.
 *
 * <h2>Contract</h2>
 * <ol>
 *   <li>Implementations are thread-safe: many request threads call one instance concurrently.</li>
 *   <li>Errors are {@link ScoregateException}s only: {@link UnknownModelException}, {@link InvalidInputException},
 *       {@link DeadlineExceededException}, {@link GatewayUnavailableException}, or the base class for a failure
 *       inside the model. A transport maps its own errors ({@code JException}, {@code Py4JJavaError}) into these.</li>
 *   <li>On success, {@code request.rows()} scores have been written to {@code request.scoreBuffer()}; on failure the
 *       score buffer's contents are unspecified.</li>
 *   <li>A call whose deadline has passed before scoring starts fails with {@link DeadlineExceededException}
 *       rather than scoring late.</li>
 *   <li>Buffer ownership is as described on {@link ScoreRequest}: untouched by the caller until the call returns
 *       or the future completes, unreferenced by the gateway after.</li>
 * </ol>
 */
public interface ModelGateway {

    /**
     * Scores {@code request} on the calling thread.
     *
     * @throws ScoregateException or one of its subclasses; nothing else on purpose
     */
    ScoreResult score(ScoreRequest request);

    /**
     * Scores {@code request} without blocking the caller. Failures complete the future exceptionally with a
     * {@link ScoregateException}; this method itself does not throw for a bad request.
     */
    CompletableFuture<ScoreResult> scoreAsync(ScoreRequest request);

    /**
     * The names of the models this gateway serves right now, without versions (each accepted by
     * {@link ScoreRequest.Builder#model(String)}). A snapshot; order unspecified.
     */
    List<String> models();
}
