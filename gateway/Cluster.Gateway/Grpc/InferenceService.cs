using System.Text;
using Cluster.Gateway.Generation;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.Gateway.Grpc;

/// <summary>
/// cluster.v1.Inference: the same generation as the HTTP API, over gRPC. Greedy unless a temperature is given
/// (proto3 has no "unset" for it); max_tokens 0 means the gateway's default, capped by what the context leaves.
/// </summary>
[BindServiceMethod(typeof(InferenceService), nameof(BindService))]
public sealed class InferenceService(ServedModel model, Generator generator) : Inference.InferenceBase
{
    /// <summary>For server reflection, which finds a service's descriptor beside its bind method.</summary>
    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => Inference.Descriptor;

    /// <summary>With the project's marshallers (malformed requests are INTERNAL "Failed to parse message").</summary>
    public static void BindService(ServiceBinderBase binder, Inference.InferenceBase? service) =>
        Inference.BindService(new PooledMethodBinder(binder), service);

    public override Task<ListModelsResponse> ListModels(ListModelsRequest request, ServerCallContext context) =>
        Task.FromResult(new ListModelsResponse { Models = { new ModelInfo { Id = model.Id } } });

    public override async Task<GenerateResponse> Generate(GenerateRequest request, ServerCallContext context)
    {
        GenerationRequest generation = Validate(request);
        var output = new OutputAssembler(model, generation);
        var text = new StringBuilder();
        var reasoning = new StringBuilder();
        var response = new GenerateResponse();
        try
        {
            await foreach (OutputDelta delta in generator.RunAsync(generation, output, context.CancellationToken).ConfigureAwait(false))
            {
                text.Append(delta.Text);
                reasoning.Append(delta.Reasoning);
                foreach (int id in delta.TokenIds) response.TokenIds.Add((uint)id);
            }
        }
        catch (GatewayException e) { throw ToRpc(e); }
        response.Text = text.ToString();
        response.ReasoningText = reasoning.ToString();
        response.FinishReason = output.FinishReason!;
        response.Usage = Usage(generation, output);
        return response;
    }

    public override async Task GenerateStream(GenerateRequest request, IServerStreamWriter<GenerateChunk> responses, ServerCallContext context)
    {
        GenerationRequest generation = Validate(request);
        var output = new OutputAssembler(model, generation);
        try
        {
            await foreach (OutputDelta delta in generator.RunAsync(generation, output, context.CancellationToken).ConfigureAwait(false))
            {
                if (delta.IsEmpty) continue;
                var chunk = new GenerateChunk { Text = delta.Text, ReasoningText = delta.Reasoning };
                foreach (int id in delta.TokenIds) chunk.TokenIds.Add((uint)id);
                await responses.WriteAsync(chunk, context.CancellationToken).ConfigureAwait(false);
            }
        }
        catch (GatewayException e) { throw ToRpc(e); }
        await responses.WriteAsync(new GenerateChunk { FinishReason = output.FinishReason!, Usage = Usage(generation, output) }, context.CancellationToken)
            .ConfigureAwait(false);
    }

    private GenerationRequest Validate(GenerateRequest r)
    {
        try
        {
            if (r.Model.Length > 0 && r.Model != model.Id)
                throw new GatewayException(GatewayErrorKind.ModelNotFound, $"model '{r.Model}' does not exist (this server serves '{model.Id}')", "model");
            int given = (r.Prompt.Length > 0 ? 1 : 0) + (r.Messages.Count > 0 ? 1 : 0) + (r.PromptTokenIds.Count > 0 ? 1 : 0);
            if (given != 1)
                throw GatewayException.Invalid("prompt", $"exactly one of prompt, messages and prompt_token_ids must be given (got {given})");
            SamplingParams s = r.Sampling ?? new SamplingParams();
            if (!(s.Temperature >= 0 && s.Temperature <= 2))
                throw GatewayException.Invalid("sampling.temperature", $"sampling.temperature must be between 0 and 2 (got {s.Temperature})");
            if (!(s.TopP >= 0 && s.TopP <= 1))
                throw GatewayException.Invalid("sampling.top_p", $"sampling.top_p must be between 0 and 1, 0 meaning off (got {s.TopP})");
            if (s.Stop.Count > 4) throw GatewayException.Invalid("sampling.stop", $"sampling.stop may hold at most 4 strings (got {s.Stop.Count})");
            foreach (string stop in s.Stop)
                if (stop.Length == 0) throw GatewayException.Invalid("sampling.stop", "sampling.stop must not hold empty strings");
            if (s.MaxTokens > int.MaxValue) throw GatewayException.Invalid("sampling.max_tokens", $"sampling.max_tokens is too large ({s.MaxTokens})");

            var builder = new PromptBuilder(model);
            int[] ids;
            bool thinking = false;
            if (r.Messages.Count > 0)
            {
                var messages = new List<Cluster.Tokenizer.ChatMessage>(r.Messages.Count);
                foreach (ChatMessage m in r.Messages) messages.Add(new Cluster.Tokenizer.ChatMessage(m.Role, m.Content));
                (ids, thinking) = builder.FromMessages(messages, "messages");
            }
            else if (r.Prompt.Length > 0) ids = builder.FromText(r.Prompt, "prompt");
            else
            {
                var list = new List<long>(r.PromptTokenIds.Count);
                foreach (uint id in r.PromptTokenIds) list.Add(id);
                ids = builder.FromIds(list, "prompt_token_ids");
            }
            string where = r.Messages.Count > 0 ? "messages" : r.Prompt.Length > 0 ? "prompt" : "prompt_token_ids";
            return new GenerationRequest
            {
                PromptIds = ids,
                MaxTokens = builder.MaxTokens(ids.Length, s.MaxTokens > 0 ? (int)s.MaxTokens : null, where),
                Temperature = s.Temperature,
                TopP = s.TopP > 0 ? s.TopP : 1,
                TopK = (int)Math.Min(s.TopK, (uint)model.VocabSize),
                Seed = s.HasSeed ? s.Seed : null,
                Stops = [.. s.Stop],
                SplitReasoning = r.Messages.Count > 0,
                StartsInReasoning = thinking,
            };
        }
        catch (GatewayException e) { throw ToRpc(e); }
    }

    private static Usage Usage(GenerationRequest request, OutputAssembler output) => new()
    {
        PromptTokens = (uint)request.PromptIds.Length,
        CompletionTokens = (uint)output.CompletionTokens,
        CachedPromptTokens = (uint)output.CachedPromptTokens,
    };

    private static RpcException ToRpc(GatewayException e) => new(new Status(e.Kind switch
    {
        GatewayErrorKind.InvalidRequest => StatusCode.InvalidArgument,
        GatewayErrorKind.ModelNotFound => StatusCode.NotFound,
        GatewayErrorKind.QueueFull => StatusCode.ResourceExhausted,
        GatewayErrorKind.Unavailable => StatusCode.Unavailable,
        _ => StatusCode.Internal,
    }, e.Message));
}
