using System.Runtime.CompilerServices;
using Cluster.Gateway.Metrics;
using Cluster.Gateway.Security;
using Microsoft.Extensions.Logging;

namespace Cluster.Gateway.Generation;

/// <summary>
/// <see cref="Generator"/>'s runs as both APIs serve them: admitted against the caller's key (its requests and
/// tokens per minute), the completion charged to it as it streams, the usage the response reports added to it, and
/// the request's latencies and outcome recorded in <see cref="GatewayMetrics"/>.
/// </summary>
public sealed class MeteredGenerator(Generator generator, GatewayMetrics metrics, TimeProvider time, ILogger<MeteredGenerator> logger)
{
    /// <summary>
    /// As <see cref="Generator.RunAsync"/>; the first move throws a <see cref="GatewayErrorKind.RateLimited"/>
    /// <see cref="GatewayException"/> when the key's limits refuse the request.
    /// </summary>
    /// <param name="api">"http" or "grpc": the requests counter's label.</param>
    public async IAsyncEnumerable<OutputDelta> RunAsync(KeyAccount account, string api, CompletionRequest request, OutputAssembler output,
        [EnumeratorCancellation] CancellationToken ct)
    {
        long start = time.GetTimestamp();
        try { account.Admit(request.PromptIds.Length); }
        catch (GatewayException e)
        {
            metrics.Request(api, GatewayMetrics.Outcome(e.Kind));
            logger.LogInformation("{Api} request refused: {Message}", api, e.Message);
            throw;
        }

        string? outcome = null;
        TimeSpan firstToken = default;
        int charged = 0;
        await using var run = generator.RunAsync(request, output, ct).GetAsyncEnumerator(ct);
        try
        {
            while (true)
            {
                bool more;
                try { more = await run.MoveNextAsync().ConfigureAwait(false); }
                catch (GatewayException e)
                {
                    outcome = GatewayMetrics.Outcome(e.Kind);
                    throw;
                }
                if (!more) break;
                if (charged == 0 && output.CompletionTokens > 0) firstToken = time.GetElapsedTime(start);
                account.ChargeCompletion(output.CompletionTokens - charged);
                charged = output.CompletionTokens;
                yield return run.Current;
            }
            outcome = GatewayMetrics.Ok;
        }
        finally
        {
            TimeSpan total = time.GetElapsedTime(start);
            int completion = output.CompletionTokens;
            account.ChargeCompletion(completion - charged);
            // What the response's usage reports; a request no node took has none.
            if (completion > 0) account.Usage.AddTokens(request.PromptIds.Length, output.CachedPromptTokens, completion);
            metrics.Request(api, outcome ?? (ct.IsCancellationRequested ? GatewayMetrics.Cancelled : GatewayMetrics.Outcome(GatewayErrorKind.Internal)));
            metrics.RequestDuration.Observe(total);
            if (completion > 0) metrics.TimeToFirstToken.Observe(firstToken);
            if (completion > 1) metrics.TimePerOutputToken.Observe((total - firstToken) / (completion - 1));
        }
    }
}
