using System.Runtime.CompilerServices;
using Cluster.Gateway.Nodes;
using Cluster.Protos.V1;

namespace Cluster.Gateway.Generation;

/// <summary>Runs a validated request on the cluster and yields its output as it becomes certain.</summary>
public sealed class Generator(NodeRouter router)
{
    /// <summary>
    /// Deltas until <paramref name="output"/> has a finish reason. Leaving early (a stop string, the client gone)
    /// cancels the node's call, which frees the request's cache there. The first delta comes as soon as a node has
    /// taken the request, even when it is empty, so a caller knows the request was admitted.
    /// </summary>
    public async IAsyncEnumerable<OutputDelta> RunAsync(GenerationRequest request, OutputAssembler output, [EnumeratorCancellation] CancellationToken ct)
    {
        bool first = true;
        await foreach (TokenEvent e in router.GenerateAsync(ToNodeRequest(request), ct).ConfigureAwait(false))
        {
            OutputDelta delta = output.Push(e);
            if (!delta.IsEmpty || first) yield return delta;
            first = false;
            if (output.FinishReason is not null) yield break;
        }
    }

    private static TokenGenerateRequest ToNodeRequest(GenerationRequest r)
    {
        var request = new TokenGenerateRequest
        {
            RequestId = Guid.NewGuid().ToString("N"),
            MaxTokens = (uint)r.MaxTokens,
            Temperature = r.Temperature,
            TopP = r.TopP,
            TopK = (uint)r.TopK,
            TopLogprobs = r.Logprobs ? (uint)r.TopLogprobs : 0,
        };
        if (r.Seed is ulong seed) request.Seed = seed;
        foreach (int id in r.PromptIds) request.PromptTokenIds.Add((uint)id);
        return request;
    }
}
