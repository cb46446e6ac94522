using Cluster.ExpertNode.Client;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Cluster.ExpertNode.Tests;

/// <summary>
/// Exchanges on one expert node's stream pipeline: a second frame goes out before the first one's combine comes
/// back (what lets two micro-batches' rows be on the wire at once), and the combines are matched in order.
/// </summary>
public class ExpertStreamPipelineTests
{
    [Fact]
    public async Task ASecondFrameIsSentBeforeTheFirstIsAnswered()
    {
        await using ExpertCluster cluster = await ExpertCluster.StartAsync(1, 0);
        await using var pairing = await GrpcServer.StartAsync(new GrpcServerOptions(),
            b => b.Services.AddSingleton(new PairingExpertNode(cluster.Plan.Nodes[0].Id, cluster.Plan.Version)), app => app.MapGrpcService<PairingExpertNode>());
        new RoleHealth(pairing.Services.GetRequiredService<Grpc.HealthCheck.HealthServiceImpl>(), Protos.V1.ExpertService.Descriptor.FullName).MarkServing();
        PlacementPlan plan = cluster.Plan.WithEndpoints([$"127.0.0.1:{pairing.Port}"]);
        // A stream that sent one frame at a time would wait for an answer the node gives only once it holds two.
        using ExpertStreams streams = await ExpertStreams.ConnectAsync(plan, TinyCheckpoint.Config, TimeSpan.FromSeconds(10), exchangeTimeout: TimeSpan.FromSeconds(5));
        Task<CombineFrame> first = streams.ExchangeAsync(0, Frame(1)), second = streams.ExchangeAsync(0, Frame(2));
        CombineFrame[] replies = await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([1UL, 2UL], [replies[0].BatchId, replies[1].BatchId]);
        foreach (CombineFrame r in replies) CombineFrameDecoder.Instance.Release(r);
    }

    private static DispatchFrame Frame(ulong batch) => new()
    {
        BatchId = batch,
        Layer = (uint)TinyCheckpoint.MoeLayers[0],
        Rows = 1,
        Hidden = (uint)TinyCheckpoint.Config.HiddenSize,
        Dtype = TensorDType.F32,
        Activations = ByteString.CopyFrom(new byte[TinyCheckpoint.Config.HiddenSize * 4]),
        TopK = 1,
        ExpertIds = ByteString.CopyFrom(new byte[4]),
        Weights = ByteString.CopyFrom(new byte[4]),
    };

    /// <summary>An expert node that answers only in pairs: it reads two frames, then sends both combines in order.</summary>
    private sealed class PairingExpertNode(string nodeId, ulong version) : Protos.V1.ExpertService.ExpertServiceBase
    {
        public override Task<ExpertNodeInfo> GetInfo(GetExpertInfoRequest request, ServerCallContext context) =>
            Task.FromResult(new ExpertNodeInfo { NodeId = nodeId, PlanVersion = version });

        public override async Task Dispatch(IAsyncStreamReader<DispatchFrame> requestStream, IServerStreamWriter<CombineFrame> responseStream, ServerCallContext context)
        {
            var held = new List<DispatchFrame>();
            try
            {
                while (await requestStream.MoveNext(context.CancellationToken))
                {
                    held.Add(requestStream.Current.Clone());
                    if (held.Count < 2) continue;
                    foreach (DispatchFrame f in held)
                        await responseStream.WriteAsync(new CombineFrame
                        {
                            BatchId = f.BatchId, Layer = f.Layer, Rows = f.Rows, Dtype = TensorDType.F32,
                            PartialSums = ByteString.CopyFrom(new byte[f.Rows * f.Hidden * 4]),
                        });
                    held.Clear();
                }
            }
            catch (Exception) when (context.CancellationToken.IsCancellationRequested) { }
        }
    }
}
