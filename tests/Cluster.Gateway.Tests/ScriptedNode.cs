using Cluster.Transport.Services;
using Cluster.Gateway.Nodes;
using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Health;

namespace Cluster.Gateway.Tests;

/// <summary>
/// An attention node that plays scripts instead of running a model, for what a real one rarely does: reasoning
/// output, an EOS, failing after some tokens, refusing a request. The script is chosen by the prompt's last id.
/// </summary>
public sealed class ScriptedNode : IGrpcService, IAsyncDisposable
{
    public const uint FailMidStream = 2, Refuse = 3, Hang = 5;
    public const string Reasoning = "Let me think: 2+2.", Answer = "It is 4.";

    private readonly int[] _thinking;
    private readonly int _eos;
    private GrpcServer? _server;
    private int _requests;

    private ScriptedNode(ServedModel model)
    {
        _thinking = model.Tokenizer.Encode("<think>" + Reasoning + "</think>" + Answer);
        _eos = model.Tokenizer.EosId!.Value;
    }

    public string Endpoint => $"127.0.0.1:{_server!.Port}";
    /// <summary>Generate calls received so far.</summary>
    public int Requests => Volatile.Read(ref _requests);

    public static async Task<ScriptedNode> StartAsync(ServedModel model)
    {
        var node = new ScriptedNode(model);
        node._server = await GrpcServer.StartAsync(new GrpcServerOptions(), node, new HealthService());
        return node;
    }

    public void Bind(ServiceBinder binder) => binder.ServerStreaming(AttentionMethods.Generate, GenerateAsync);

    private async Task GenerateAsync(TokenGenerateRequest request, IAsyncStreamWriter<TokenEvent> responses, ServerCallContext context)
    {
        Interlocked.Increment(ref _requests);
        uint last = request.PromptTokenIds[^1];
        if (last == Hang)
        {
            // One token, then nothing until the caller goes away: a request that stays in flight.
            await responses.WriteAsync(new TokenEvent { TokenId = (uint)_thinking[0], PromptTokens = (uint)request.PromptTokenIds.Count }, context.CancellationToken);
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
        }
        if (last == Refuse) throw new RpcException(StatusCode.InvalidArgument, "prompt_token_ids: refused by the script");
        int[] tokens = last == FailMidStream ? _thinking[..3] : [.. _thinking, _eos];
        for (int i = 0; i < tokens.Length; i++)
        {
            var e = new TokenEvent { TokenId = (uint)tokens[i], Logprob = -1, PromptTokens = i == 0 ? (uint)request.PromptTokenIds.Count : 0 };
            if (i == tokens.Length - 1 && last != FailMidStream) e.FinishReason = "stop";
            await responses.WriteAsync(e, context.CancellationToken);
        }
        if (last == FailMidStream) throw new RpcException(StatusCode.Internal, "the script failed mid-stream");
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
    }

    /// <summary>How many tokens the reasoning script sends, EOS included.</summary>
    public int ScriptLength => _thinking.Length + 1;
}
