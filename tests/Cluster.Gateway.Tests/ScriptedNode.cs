using System.Collections.Concurrent;
using Cluster.Protos.V1;
using Cluster.Transport;
using Grpc.Core;
using Grpc.HealthCheck;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.Gateway.Tests;

/// <summary>
/// An attention node that plays scripts instead of running a model, for what a real one rarely does: reasoning
/// output, an EOS, failing after some tokens, refusing a request, holding one. The script is chosen by the prompt's
/// last id. It answers GetStats with <see cref="Stats"/>, records every Generate it gets, and when
/// <see cref="Full"/> refuses them all as a node whose cache has no room.
/// </summary>
public sealed class ScriptedNode : AttentionService.AttentionServiceBase, IAsyncDisposable
{
    /// <summary>Scripts: fail after 3 tokens; refuse as invalid; one token then wait for the caller to leave; wait
    /// before any token for the caller to leave; one token then wait for <see cref="OpenGate"/>.</summary>
    public const uint FailMidStream = 2, Refuse = 3, Hang = 5, HangBeforeFirst = 6, Held = 7;
    public const string Reasoning = "Let me think: 2+2.", Answer = "It is 4.";

    private readonly int[] _thinking;
    private readonly int _eos;
    private readonly ConcurrentQueue<TokenGenerateRequest> _received = new();
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private GrpcServer? _server;
    private AttentionStats _stats;
    private int _requests, _refused, _running;
    private volatile bool _full;

    private ScriptedNode(ServedModel model, AttentionStats stats)
    {
        _thinking = model.Tokenizer.Encode("<think>" + Reasoning + "</think>" + Answer);
        _eos = model.Tokenizer.EosId!.Value;
        _stats = stats;
    }

    private System.Net.IPAddress _address = System.Net.IPAddress.Loopback;

    public string Endpoint => new System.Net.IPEndPoint(_address, _server!.Port).ToString();
    /// <summary>The node's grpc.health.v1 answer: SERVING from the start; a test may take it back.</summary>
    public RoleHealth Health { get; private set; } = null!;
    /// <summary>Generate calls received so far, refused ones included.</summary>
    public int Requests => Volatile.Read(ref _requests);
    /// <summary>Generate calls refused with RESOURCE_EXHAUSTED.</summary>
    public int Refused => Volatile.Read(ref _refused);
    public IReadOnlyList<TokenGenerateRequest> Received => [.. _received];
    /// <summary>Refuse every Generate with RESOURCE_EXHAUSTED before any token.</summary>
    public bool Full { get => _full; set => _full = value; }
    /// <summary>When set, every Generate fails with UNAVAILABLE and this detail before any token, as a node that cannot serve.</summary>
    public string? UnavailableDetail { get; set; }
    /// <summary>When set, a Generate naming this prefill node fails with UNAVAILABLE as a transfer from it would.</summary>
    public string? UnreachablePrefill { get; set; }
    /// <summary>Reported on each request's first event.</summary>
    public uint CachedPromptTokens { get; set; }

    /// <summary>What GetStats answers (running is counted here).</summary>
    public AttentionStats Stats
    {
        get => Volatile.Read(ref _stats);
        set => Volatile.Write(ref _stats, value);
    }

    /// <summary>A node of <paramref name="role"/> with 16-token blocks, <paramref name="blocks"/> of them.</summary>
    /// <param name="listen">Where it listens (default: a free loopback port).</param>
    public static async Task<ScriptedNode> StartAsync(ServedModel model, string role = "both", uint blocks = 10_000, System.Net.IPEndPoint? listen = null)
    {
        var stats = new AttentionStats { NodeId = $"scripted-{role}", Role = NodeRoles.Parse(role), BlockSize = 16, BlocksTotal = blocks, BlocksAvailable = blocks };
        var node = new ScriptedNode(model, stats);
        var options = new GrpcServerOptions();
        if (listen is not null)
        {
            options.Address = listen.Address;
            options.Port = listen.Port;
            node._address = listen.Address;
        }
        node._server = await GrpcServer.StartAsync(options, b => b.Services.AddSingleton(node), app => app.MapGrpcService<ScriptedNode>());
        node.Health = new RoleHealth(node._server.Services.GetRequiredService<HealthServiceImpl>(), AttentionService.Descriptor.FullName);
        node.Health.MarkServing();
        return node;
    }

    /// <summary>Lets every request held by the <see cref="Held"/> script, now and later, finish.</summary>
    public void OpenGate() => _gate.TrySetResult();

    public override Task<AttentionStats> GetStats(GetStatsRequest request, ServerCallContext context)
    {
        AttentionStats stats = Stats.Clone();
        stats.Running = (uint)Volatile.Read(ref _running);
        return Task.FromResult(stats);
    }

    public override async Task Generate(TokenGenerateRequest request, IServerStreamWriter<TokenEvent> responses, ServerCallContext context)
    {
        Interlocked.Increment(ref _requests);
        _received.Enqueue(request);
        if (UnavailableDetail is { } detail) throw new RpcException(new Status(StatusCode.Unavailable, detail));
        if (UnreachablePrefill is { } prefill && request.PrefillNode == prefill)
            throw new RpcException(new Status(StatusCode.Unavailable, $"kv transfer from prefill node {prefill} failed: connection refused"));
        if (Full)
        {
            Interlocked.Increment(ref _refused);
            throw new RpcException(new Status(StatusCode.ResourceExhausted, "the scripted cache has no room for the request"));
        }
        Interlocked.Increment(ref _running);
        try { await PlayAsync(request, responses, context.CancellationToken); }
        finally { Interlocked.Decrement(ref _running); }
    }

    private async Task PlayAsync(TokenGenerateRequest request, IAsyncStreamWriter<TokenEvent> responses, CancellationToken ct)
    {
        uint last = request.PromptTokenIds[^1];
        TokenEvent First(int token) => new() { TokenId = (uint)token, Logprob = -1, PromptTokens = (uint)request.PromptTokenIds.Count, CachedPromptTokens = CachedPromptTokens };
        if (last == HangBeforeFirst) await Task.Delay(Timeout.Infinite, ct);
        if (last == Hang)
        {
            // One token, then nothing until the caller goes away: a request that stays in flight.
            await responses.WriteAsync(First(_thinking[0]), ct);
            await Task.Delay(Timeout.Infinite, ct);
        }
        if (last == Refuse) throw new RpcException(new Status(StatusCode.InvalidArgument, "prompt_token_ids: refused by the script"));
        int[] tokens = last == FailMidStream ? _thinking[..3] : [.. _thinking, _eos];
        for (int i = 0; i < tokens.Length; i++)
        {
            var e = i == 0 ? First(tokens[i]) : new TokenEvent { TokenId = (uint)tokens[i], Logprob = -1 };
            if (i == tokens.Length - 1 && last != FailMidStream) e.FinishReason = "stop";
            await responses.WriteAsync(e, ct);
            if (i == 0 && last == Held) await _gate.Task.WaitAsync(ct);
        }
        if (last == FailMidStream) throw new RpcException(new Status(StatusCode.Internal, "the script failed mid-stream"));
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
    }

    /// <summary>How many tokens the reasoning script sends, EOS included.</summary>
    public int ScriptLength => _thinking.Length + 1;
}
