using Cluster.AttentionNode.Scheduling;
using Cluster.Engine.Config;
using Cluster.Engine.Sampling;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.AttentionNode;

/// <summary>Turns a TokenGenerateRequest into a <see cref="GenerationRequest"/>, or INVALID_ARGUMENT naming the field.</summary>
public static class RequestValidation
{
    public const int MaxTopLogprobs = 20;

    public static GenerationRequest Validate(TokenGenerateRequest request, ModelConfig config, string fallbackId)
    {
        int vocab = config.VocabSize, context = config.MaxPositionEmbeddings;
        if (request.PromptTokenIds.Count == 0) throw Invalid("prompt_token_ids: the prompt is empty");
        var prompt = new int[request.PromptTokenIds.Count];
        for (int i = 0; i < prompt.Length; i++)
        {
            uint id = request.PromptTokenIds[i];
            if (id >= (uint)vocab) throw Invalid($"prompt_token_ids[{i}]: token id {id} out of range 0..{vocab - 1}");
            prompt[i] = (int)id;
        }
        if (prompt.Length >= context) throw Invalid($"prompt_token_ids: {prompt.Length} tokens leave no room in the context of {context}");
        // 0 means as many as the context leaves.
        int maxTokens = request.MaxTokens == 0 ? context - prompt.Length : request.MaxTokens > (uint)context ? context + 1 : (int)request.MaxTokens;
        if (prompt.Length + maxTokens > context)
            throw Invalid($"max_tokens: prompt ({prompt.Length} tokens) + max_tokens {request.MaxTokens} exceeds the context of {context}");
        if (!float.IsFinite(request.Temperature) || request.Temperature < 0 || request.Temperature > 100) throw Invalid($"temperature must be in [0, 100] (got {request.Temperature})");
        if (!float.IsFinite(request.TopP) || request.TopP < 0 || request.TopP > 1) throw Invalid($"top_p must be in [0, 1] (got {request.TopP})");
        if (request.TopK > (uint)vocab) throw Invalid($"top_k {request.TopK} exceeds the vocabulary of {vocab}");
        if (request.TopLogprobs > MaxTopLogprobs) throw Invalid($"top_logprobs must be in 0..{MaxTopLogprobs} (got {request.TopLogprobs})");
        var stops = new int[request.StopTokenIds.Count];
        for (int i = 0; i < stops.Length; i++)
        {
            uint id = request.StopTokenIds[i];
            if (id >= (uint)vocab) throw Invalid($"stop_token_ids[{i}]: token id {id} out of range 0..{vocab - 1}");
            stops[i] = (int)id;
        }
        var sampling = new SamplingOptions(
            Temperature: request.Temperature,
            TopP: request.TopP == 0 ? 1 : request.TopP,
            TopK: (int)request.TopK,
            Seed: request.HasSeed ? request.Seed : (ulong)Random.Shared.NextInt64(),
            TopLogprobs: (int)request.TopLogprobs);
        string id2 = request.RequestId.Length > 0 ? request.RequestId : fallbackId;
        return new GenerationRequest(id2, prompt, maxTokens, sampling, stops);
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}
