using Cluster.AttentionNode.Scheduling;
using Cluster.Engine.Config;
using Cluster.Engine.Sampling;
using Cluster.Protos.V1;
using Grpc.Core;

namespace Cluster.AttentionNode;

/// <summary>
/// Turns a TokenGenerateRequest into a <see cref="GenerationRequest"/>, or INVALID_ARGUMENT naming the field: the
/// sampling parameters by the ranges every door shares (<see cref="SamplingValidation"/>), the token ids and the
/// length by the model's vocabulary and context.
/// </summary>
public static class RequestValidation
{
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
        SamplingParams s = request.Sampling ?? new SamplingParams();
        try
        {
            SamplingValidation.Validate(s, vocab, "sampling.");
            SamplingValidation.TopLogprobs(request.TopLogprobs, "top_logprobs");
        }
        catch (InvalidFieldException e) { throw Invalid(e.Message); }
        if (s.Stop.Count > 0) throw Invalid("sampling.stop: stop strings are matched by the gateway; an attention node stops on stop_token_ids");
        int maxTokens = s.HasMaxTokens ? (int)s.MaxTokens : context - prompt.Length;
        if ((long)prompt.Length + maxTokens > context)
            throw Invalid($"sampling.max_tokens: prompt ({prompt.Length} tokens) + max_tokens {maxTokens} exceeds the context of {context}");
        var stops = new int[request.StopTokenIds.Count];
        for (int i = 0; i < stops.Length; i++)
        {
            uint id = request.StopTokenIds[i];
            if (id >= (uint)vocab) throw Invalid($"stop_token_ids[{i}]: token id {id} out of range 0..{vocab - 1}");
            stops[i] = (int)id;
        }
        // The sampled tokens are the prompt's last ones: at least one token of the client's prompt comes before them.
        if (request.SampledTokens >= prompt.Length)
            throw Invalid($"sampled_tokens: {request.SampledTokens} sampled tokens in a prompt of {prompt.Length} (at most {prompt.Length - 1})");
        var sampling = new SamplingOptions(
            Temperature: s.Temperature,
            TopP: s.HasTopP ? s.TopP : 1,
            TopK: (int)s.TopK,
            Seed: s.HasSeed ? s.Seed : (ulong)Random.Shared.NextInt64(),
            TopLogprobs: (int)request.TopLogprobs);
        string id2 = request.RequestId.Length > 0 ? request.RequestId : fallbackId;
        return new GenerationRequest(id2, prompt, maxTokens, sampling, stops, (int)request.SampledTokens);
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}
