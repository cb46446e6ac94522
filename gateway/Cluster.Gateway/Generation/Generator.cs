using System.Runtime.CompilerServices;
using Cluster.Gateway.Nodes;
using Cluster.Protos.V1;
using Microsoft.Extensions.Logging;

namespace Cluster.Gateway.Generation;

/// <summary>Runs a validated request on the cluster and yields its output as it becomes certain.</summary>
public sealed class Generator(NodeRouter router, TimeProvider time, ILogger<Generator> logger)
{
    /// <summary>
    /// Deltas until <paramref name="output"/> has a finish reason. Leaving early (a stop string, the client gone)
    /// cancels the node's call, which frees the request's cache there. The first delta comes as soon as a node has
    /// taken the request, even when it is empty, so a caller knows the request was admitted.
    /// </summary>
    public async IAsyncEnumerable<OutputDelta> RunAsync(CompletionRequest request, OutputAssembler output, [EnumeratorCancellation] CancellationToken ct)
    {
        TokenGenerateRequest nodeRequest = ToNodeRequest(request);
        long start = time.GetTimestamp();
        TimeSpan firstToken = default;
        try
        {
            await foreach (TokenEvent e in router.GenerateAsync(nodeRequest, ct).ConfigureAwait(false))
            {
                bool first = output.CompletionTokens == 0;
                if (first) firstToken = time.GetElapsedTime(start);
                OutputDelta delta = output.Push(e);
                if (!delta.IsEmpty || first) yield return delta;
                if (output.FinishReason is not null) yield break;
            }
        }
        finally
        {
            if (logger.IsEnabled(LogLevel.Information))
                logger.LogInformation("request {Id}: {Prompt} prompt tokens, {Completion} completion tokens, {Finish}, first token {Ttft:F0} ms, total {Total:F0} ms",
                    nodeRequest.RequestId, request.PromptIds.Length, output.CompletionTokens, output.FinishReason ?? (ct.IsCancellationRequested ? "cancelled" : "failed"),
                    firstToken.TotalMilliseconds, time.GetElapsedTime(start).TotalMilliseconds);
        }
    }

    private static TokenGenerateRequest ToNodeRequest(CompletionRequest r)
    {
        SamplingParams sampling = r.Sampling.Clone();
        // Stop strings are matched here on the text; the node stops on token ids only.
        sampling.Stop.Clear();
        var request = new TokenGenerateRequest
        {
            RequestId = Guid.NewGuid().ToString("N"),
            Sampling = sampling,
            TopLogprobs = r.Logprobs ? (uint)r.TopLogprobs : 0,
        };
        foreach (int id in r.PromptIds) request.PromptTokenIds.Add((uint)id);
        return request;
    }
}
