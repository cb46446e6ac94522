using System.Text.Json;
using Cluster.Gateway.Generation;
using Cluster.Gateway.Metrics;
using Cluster.Gateway.Security;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Cluster.Gateway.OpenAi;

/// <summary>
/// The flow both generation endpoints share: read and validate the body, get the request admitted by a node (errors
/// up to here are plain HTTP errors), then stream chunks or answer once. A client that goes away cancels the node's
/// call; a failure after streaming began is sent as an error event. The caller's key (<see cref="ApiKeyMiddleware"/>)
/// is charged through <see cref="MeteredGenerator"/>.
/// </summary>
public sealed class CompletionEndpoint(ServedModel model, MeteredGenerator generator, GatewayMetrics metrics, ILogger<CompletionEndpoint> logger)
{
    public Task ChatAsync(HttpContext http) =>
        HandleAsync(http, body => ApiRequest.ParseChat(body, model), r => new ChatFormat(model.Id, r.Completion.Logprobs));

    public Task CompletionsAsync(HttpContext http) =>
        HandleAsync(http, body => ApiRequest.ParseCompletion(body, model), r => new CompletionFormat(model.Id, r.Completion.Logprobs));

    private async Task HandleAsync(HttpContext http, Func<JsonElement, ApiRequest> parse, Func<ApiRequest, IResponseFormat> format)
    {
        CancellationToken ct = http.RequestAborted;
        ApiRequest request;
        try
        {
            using JsonDocument body = await JsonBody.ReadAsync(http.Request, ct).ConfigureAwait(false);
            request = parse(body.RootElement);
        }
        catch (GatewayException e)
        {
            metrics.Request(Api, GatewayMetrics.Outcome(e.Kind));
            await ApiErrors.WriteAsync(http, e).ConfigureAwait(false);
            return;
        }
        catch (BadHttpRequestException e)
        {
            metrics.Request(Api, GatewayMetrics.Outcome(GatewayErrorKind.InvalidRequest));
            await ApiErrors.WriteAsync(http, e.StatusCode, ApiErrors.Body(e.StatusCode, BodyError(e))).ConfigureAwait(false);
            return;
        }

        IResponseFormat shape = format(request);
        var output = new OutputAssembler(model, request.Completion);
        var sse = new SseWriter(http.Response);
        await using var run = generator.RunAsync(ApiKeyMiddleware.AccountOf(http), Api, request.Completion, output, ct).GetAsyncEnumerator(ct);
        try
        {
            bool more;
            try { more = await run.MoveNextAsync().ConfigureAwait(false); }
            catch (GatewayException e)
            {
                await ApiErrors.WriteAsync(http, e).ConfigureAwait(false);
                return;
            }
            if (request.Stream)
            {
                await sse.StartAsync(ct).ConfigureAwait(false);
                await shape.WriteStartAsync(sse, ct).ConfigureAwait(false);
                for (; more; more = await run.MoveNextAsync().ConfigureAwait(false))
                    await shape.WriteDeltaAsync(sse, run.Current, ct).ConfigureAwait(false);
                await shape.WriteFinishAsync(sse, output.FinishReason!, ct).ConfigureAwait(false);
                if (request.IncludeUsage) await shape.WriteUsageAsync(sse, Usage(request, output), ct).ConfigureAwait(false);
                await sse.DoneAsync(ct).ConfigureAwait(false);
            }
            else
            {
                for (; more; more = await run.MoveNextAsync().ConfigureAwait(false)) shape.Add(run.Current);
                await shape.WriteWholeAsync(http.Response, output.FinishReason!, Usage(request, output), ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            logger.LogInformation("client went away; generation cancelled after {Tokens} tokens", output.CompletionTokens);
        }
        catch (GatewayException e) when (!ct.IsCancellationRequested)
        {
            logger.LogWarning("generation failed: {Message}", e.Message);
            if (!sse.Started) await ApiErrors.WriteAsync(http, e).ConfigureAwait(false);
            else
            {
                await sse.WriteAsync(ApiErrors.Body(e), OpenAiJson.Web.ErrorBody, ct).ConfigureAwait(false);
                await sse.DoneAsync(ct).ConfigureAwait(false);
            }
        }
    }

    private const string Api = "http";

    private static string BodyError(BadHttpRequestException e) => e.StatusCode == StatusCodes.Status413PayloadTooLarge
        ? "the request body is too large" : "the request body could not be read: " + e.Message;

    private static UsageDto Usage(ApiRequest request, OutputAssembler output)
    {
        int prompt = request.Completion.PromptIds.Length;
        return new UsageDto
        {
            PromptTokens = prompt,
            CompletionTokens = output.CompletionTokens,
            TotalTokens = prompt + output.CompletionTokens,
            PromptTokensDetails = new PromptTokensDetails { CachedTokens = output.CachedPromptTokens },
            CachedPromptTokens = output.CachedPromptTokens,
        };
    }
}
