using System.Text;
using Cluster.Gateway.Generation;
using Cluster.Gateway.Metrics;
using Cluster.Gateway.Security;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;

namespace Cluster.Gateway.Grpc;

/// <summary>
/// cluster.v1.Inference: the same generation as the HTTP API, over gRPC, with the same ranges
/// (<see cref="SamplingValidation"/>). Greedy unless a temperature is given (proto3 has no "unset" for it); without
/// max_tokens the gateway's default, capped by what the context leaves. The caller's key
/// (<see cref="ApiKeyInterceptor"/>) is charged through <see cref="MeteredGenerator"/>.
/// </summary>
[BindServiceMethod(typeof(InferenceService), nameof(BindService))]
public sealed class InferenceService(ServedModel model, MeteredGenerator generator, GatewayMetrics metrics) : Inference.InferenceBase
{
    private const string Api = "grpc";

    /// <summary>For server reflection, which finds a service's descriptor beside its bind method.</summary>
    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => Inference.Descriptor;

    /// <summary>With the project's marshallers (malformed requests are INTERNAL "Failed to parse message").</summary>
    public static void BindService(ServiceBinderBase binder, Inference.InferenceBase? service) =>
        Inference.BindService(new PooledMethodBinder(binder), service);

    public override Task<ListModelsResponse> ListModels(ListModelsRequest request, ServerCallContext context) =>
        Task.FromResult(new ListModelsResponse { Models = { new ModelInfo { Id = model.Id } } });

    public override async Task<GenerateResponse> Generate(GenerateRequest request, ServerCallContext context)
    {
        CompletionRequest completion = Checked(request);
        var output = new OutputAssembler(model, completion);
        var text = new StringBuilder();
        var reasoning = new StringBuilder();
        var response = new GenerateResponse();
        try
        {
            await foreach (OutputDelta delta in generator.RunAsync(ApiKeyInterceptor.AccountOf(context), Api, completion, output, context.CancellationToken).ConfigureAwait(false))
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
        response.Usage = Usage(completion, output);
        return response;
    }

    public override async Task GenerateStream(GenerateRequest request, IServerStreamWriter<GenerateChunk> responses, ServerCallContext context)
    {
        CompletionRequest completion = Checked(request);
        var output = new OutputAssembler(model, completion);
        try
        {
            await foreach (OutputDelta delta in generator.RunAsync(ApiKeyInterceptor.AccountOf(context), Api, completion, output, context.CancellationToken).ConfigureAwait(false))
            {
                if (delta.IsEmpty) continue;
                var chunk = new GenerateChunk { Text = delta.Text, ReasoningText = delta.Reasoning };
                foreach (int id in delta.TokenIds) chunk.TokenIds.Add((uint)id);
                await responses.WriteAsync(chunk, context.CancellationToken).ConfigureAwait(false);
            }
        }
        catch (GatewayException e) { throw ToRpc(e); }
        await responses.WriteAsync(new GenerateChunk { FinishReason = output.FinishReason!, Usage = Usage(completion, output) }, context.CancellationToken)
            .ConfigureAwait(false);
    }

    private CompletionRequest Checked(GenerateRequest request)
    {
        try { return Validate(request, model); }
        catch (RpcException e)
        {
            metrics.Request(Api, GatewayMetrics.Outcome(e.StatusCode == StatusCode.NotFound ? GatewayErrorKind.ModelNotFound : GatewayErrorKind.InvalidRequest));
            throw;
        }
    }

    /// <summary>The request as the gateway runs it, or the RpcException naming the field at fault.</summary>
    internal static CompletionRequest Validate(GenerateRequest r, ServedModel model)
    {
        try
        {
            if (r.Model.Length > 0 && r.Model != model.Id)
                throw new GatewayException(GatewayErrorKind.ModelNotFound, $"model '{r.Model}' does not exist (this server serves '{model.Id}')", "model");
            int given = (r.Prompt.Length > 0 ? 1 : 0) + (r.Messages.Count > 0 ? 1 : 0) + (r.PromptTokenIds.Count > 0 ? 1 : 0);
            if (given != 1)
                throw GatewayException.Invalid("prompt", $"exactly one of prompt, messages and prompt_token_ids must be given (got {given})");
            SamplingParams sampling = r.Sampling?.Clone() ?? new SamplingParams();
            SamplingValidation.Validate(sampling, model.VocabSize, "sampling.");

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
            sampling.MaxTokens = (uint)builder.MaxTokens(ids.Length, sampling.HasMaxTokens ? (int)sampling.MaxTokens : null, where);
            return new CompletionRequest
            {
                PromptIds = ids,
                Sampling = sampling,
                SplitReasoning = r.Messages.Count > 0,
                StartsInReasoning = thinking,
            };
        }
        catch (InvalidFieldException e) { throw ToRpc(GatewayException.Invalid(e.Field, e.Message)); }
        catch (GatewayException e) { throw ToRpc(e); }
    }

    private static Usage Usage(CompletionRequest request, OutputAssembler output) => new()
    {
        PromptTokens = (uint)request.PromptIds.Length,
        CompletionTokens = (uint)output.CompletionTokens,
        CachedPromptTokens = (uint)output.CachedPromptTokens,
    };

    /// <summary>
    /// The status of a gateway error; a rate limit's carries <see cref="RetryAfterTrailer"/> (whole seconds, as
    /// HTTP's Retry-After) and grpc-retry-pushback-ms, which a grpc client's retry policy waits for.
    /// </summary>
    private static RpcException ToRpc(GatewayException e)
    {
        var status = new Status(e.Kind switch
        {
            GatewayErrorKind.InvalidRequest => StatusCode.InvalidArgument,
            GatewayErrorKind.ModelNotFound => StatusCode.NotFound,
            GatewayErrorKind.Unauthenticated => StatusCode.Unauthenticated,
            GatewayErrorKind.RateLimited or GatewayErrorKind.QueueFull => StatusCode.ResourceExhausted,
            GatewayErrorKind.Unavailable => StatusCode.Unavailable,
            _ => StatusCode.Internal,
        }, e.Message);
        if (e.RetryAfter is not { } wait) return new RpcException(status);
        long seconds = KeyAccount.RetrySeconds(wait);
        var trailers = new Metadata
        {
            { RetryAfterTrailer, seconds.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            { "grpc-retry-pushback-ms", (seconds * 1000).ToString(System.Globalization.CultureInfo.InvariantCulture) },
        };
        return new RpcException(status, trailers);
    }

    /// <summary>The trailer of a RESOURCE_EXHAUSTED rate limit that says in how many seconds to retry.</summary>
    public const string RetryAfterTrailer = "retry-after";
}
