using System.Runtime.InteropServices;
using Cluster.Engine.Config;
using Cluster.ExpertNode.Codec;
using Cluster.ExpertNode.Placement;
using Cluster.Protos.V1;
using Cluster.Transport;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace Cluster.ExpertNode.Host;

/// <summary>
/// cluster.v1.ExpertService: each Dispatch stream (one per attention node) is answered frame by frame, in order,
/// with the weighted partial sums of this node's experts as F32. F32 rather than BF16 so that the combine adds no
/// rounding of its own: the attention node's result differs from local experts only by the dispatch's rounding.
/// A frame that cannot be served gets a CombineFrame with <c>error</c> and the stream stays open. Dispatch frames
/// arrive in pooled buffers (<see cref="PooledMethods.Dispatch"/>), each valid until the next is read. Prepare and
/// Release are the expert side of a live plan change (<see cref="Control.PlanRollout"/>).
/// </summary>
[BindServiceMethod(typeof(ExpertService), nameof(BindService))]
public sealed class ExpertService(string nodeId, HostedExperts experts, ModelConfig config, string? planPath, int restarts, ILogger<ExpertService> logger, CancellationToken stopping,
    ExpertMetrics? metrics = null)
    : Protos.V1.ExpertService.ExpertServiceBase
{
    private readonly int _hidden = config.HiddenSize;

    /// <summary>For server reflection, which finds a service's descriptor beside its bind method.</summary>
    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => Protos.V1.ExpertService.Descriptor;

    public static void BindService(ServiceBinderBase binder, Protos.V1.ExpertService.ExpertServiceBase? service) =>
        Protos.V1.ExpertService.BindService(new PooledMethodBinder(binder), service);

    public override async Task Dispatch(IAsyncStreamReader<DispatchFrame> requestStream, IServerStreamWriter<CombineFrame> responseStream, ServerCallContext context)
    {
        logger.LogInformation("dispatch stream opened by {Peer}", context.Peer);
        var buffers = new StreamBuffers();
        using var frames = new PooledReader<DispatchFrame>(requestStream, DispatchFrameDecoder.Instance);
        // A dispatch stream never ends by itself: at shutdown it is ended at once, so that attention nodes move its
        // rows to replicas now instead of after the server's grace period.
        using var open = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, stopping);
        try
        {
            while (await frames.MoveNext(open.Token).ConfigureAwait(false))
            {
                // The reply wraps this stream's output buffer; WriteAsync has flushed it before the next frame reuses it.
                long received = System.Diagnostics.Stopwatch.GetTimestamp();
                CombineFrame reply = Serve(frames.Current, buffers);
                metrics?.Frame(System.Diagnostics.Stopwatch.GetElapsedTime(received));
                await responseStream.WriteAsync(reply, open.Token).ConfigureAwait(false);
            }
        }
        catch (Exception) when (stopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"expert node {nodeId} is shutting down"));
        }
        // Kestrel fails a pending read with IOException when the client resets the stream, and may cancel the token
        // only later (or not at all once the call is over): both mean the attention node went away.
        catch (Exception e) when (context.CancellationToken.IsCancellationRequested || e is IOException)
        {
            logger.LogInformation("dispatch stream from {Peer} closed", context.Peer);
        }
    }

    internal CombineFrame Serve(DispatchFrame frame, StreamBuffers buffers)
    {
        var reply = new CombineFrame { BatchId = frame.BatchId, Layer = frame.Layer, Rows = frame.Rows, Dtype = TensorDType.F32 };
        string? problem = Check(frame);
        if (problem is not null)
        {
            logger.LogWarning("refused frame {Batch} layer {Layer}: {Problem}", frame.BatchId, frame.Layer, problem);
            reply.Error = $"expert node {nodeId}: {problem}";
            return reply;
        }
        int rows = (int)frame.Rows, layer = (int)frame.Layer;
        if (rows == 0) return reply;
        Span<float> input = buffers.Rows(rows * _hidden);
        RowCodec.DecodeRows(frame.Dtype, frame.Activations.Span, frame.Scales.Span, rows, _hidden, input);
        byte[] output = buffers.Output(rows * _hidden * sizeof(float));
        experts.Run(layer, input, rows, MemoryMarshal.Cast<byte, int>(frame.ExpertIds.Span), MemoryMarshal.Cast<byte, float>(frame.Weights.Span),
            MemoryMarshal.Cast<byte, float>(output.AsSpan(0, rows * _hidden * sizeof(float))));
        reply.PartialSums = UnsafeByteOperations.UnsafeWrap(output.AsMemory(0, rows * _hidden * sizeof(float)));
        return reply;
    }

    /// <summary>Why a frame cannot be served, or null when it can.</summary>
    private string? Check(DispatchFrame f)
    {
        if (experts.Held(f.PlanVersion) is not { } held)
        {
            ulong[] versions = experts.Versions;
            return $"frame routed with plan version {f.PlanVersion} but this node holds version{(versions.Length > 1 ? "s" : "")} {string.Join(", ", versions)}";
        }
        if (!held.HostsLayer((int)f.Layer)) return $"layer {f.Layer} is not a MoE layer of the plan";
        if (f.Hidden != _hidden) return $"hidden {f.Hidden} but the model's hidden size is {_hidden}";
        if (f.Rows == 0) return null;
        if (f.Rows > int.MaxValue / Math.Max(1, _hidden) / 4) return $"{f.Rows} rows is too many";
        if (f.TopK == 0 || f.TopK > held.Plan.RoutedExperts) return $"top_k {f.TopK} out of range 1..{held.Plan.RoutedExperts}";
        int rows = (int)f.Rows, k = (int)f.TopK;
        if (f.Dtype is not (TensorDType.Bf16 or TensorDType.Fp8E4M3 or TensorDType.F32))
            return $"activations dtype {f.Dtype} is not supported (BF16, FP8_E4M3 or F32)";
        if (f.Activations.Length != RowCodec.Bytes(f.Dtype, rows * _hidden))
            return $"activations hold {f.Activations.Length} bytes but {rows} rows x {_hidden} {f.Dtype} need {RowCodec.Bytes(f.Dtype, rows * _hidden)}";
        int scaleBytes = f.Dtype == TensorDType.Fp8E4M3 ? rows * RowCodec.ScaleBlocks(_hidden) * sizeof(float) : 0;
        if (f.Scales.Length != scaleBytes) return $"scales hold {f.Scales.Length} bytes but {f.Dtype} rows need {scaleBytes}";
        if (f.ExpertIds.Length != rows * k * sizeof(int)) return $"expert_ids hold {f.ExpertIds.Length} bytes but {rows} rows x top_k {k} need {rows * k * sizeof(int)}";
        if (f.Weights.Length != rows * k * sizeof(float)) return $"weights hold {f.Weights.Length} bytes but {rows} rows x top_k {k} need {rows * k * sizeof(float)}";
        ReadOnlySpan<int> ids = MemoryMarshal.Cast<byte, int>(f.ExpertIds.Span);
        foreach (int e in ids)
            if (e >= 0 && !held.Hosts((int)f.Layer, e)) return $"layer {f.Layer}: expert {e} is not hosted here under plan version {f.PlanVersion}";
        foreach (float w in MemoryMarshal.Cast<byte, float>(f.Weights.Span))
            if (!float.IsFinite(w)) return "weights contain a non-finite value";
        return null;
    }

    public override Task<ExpertNodeInfo> GetInfo(GetExpertInfoRequest request, ServerCallContext context)
    {
        var info = new ExpertNodeInfo { NodeId = nodeId, PlanVersion = experts.Plan.Version, RowsServed = (ulong)experts.RowsServed, Restarts = (uint)restarts };
        info.HeldVersions.Add(experts.Versions);
        foreach ((int layer, int expert, long tokens) in experts.Slots())
        {
            info.Slots.Add(new ExpertSlot { Layer = (uint)layer, Expert = (uint)expert });
            info.SlotTokens.Add((ulong)tokens);
        }
        return Task.FromResult(info);
    }

    /// <summary>
    /// The whole of a prepare runs on a thread of its own, reading the plan included: on a pool thread its parsing,
    /// checks, loading and saving would hold back the Dispatch streams' continuations (the pool grows only slowly on
    /// a machine with few cores), and bench rebalance measured that as the step held during a prepare.
    /// </summary>
    public override Task<PreparePlanReply> Prepare(PreparePlanRequest request, ServerCallContext context) =>
        Task.Factory.StartNew(() => PrepareHere(request.PlanJson, context.CancellationToken), context.CancellationToken,
            TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static readonly TimeSpan YieldBetweenPieces = TimeSpan.FromMilliseconds(2);

    private PreparePlanReply PrepareHere(string json, CancellationToken cancel)
    {
        PlacementPlan plan;
        try
        {
            plan = PlacementPlan.Parse(json, "plan_json");
            plan.CheckFits(config, "plan_json");
            plan.NodeIndex(nodeId);
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, e.Message));
        }
        try
        {
            // The cores go back to the Dispatch streams between the pieces of a prepare (reading the plan, loading,
            // saving), so that a step that overlaps it waits for one piece at most.
            Thread.Sleep(YieldBetweenPieces);
            (int slots, long bytes) = experts.Prepare(plan, cancel);
            Thread.Sleep(YieldBetweenPieces);
            logger.LogInformation("plan version {Version} prepared: {Slots} slots loaded ({Bytes:N0} bytes)", plan.Version, slots, bytes);
            // A node restarted from here on starts from the plan that is taking over.
            if (planPath is not null) plan.SaveIfNewer(planPath);
            return new PreparePlanReply { Version = plan.Version, LoadedSlots = (uint)slots, LoadedBytes = (ulong)bytes };
        }
        catch (ArgumentException e) { throw new RpcException(new Status(StatusCode.FailedPrecondition, $"expert node {nodeId}: {e.Message}")); }
        catch (Exception e) when (e is IOException or InvalidDataException or FileNotFoundException)
        {
            throw new RpcException(new Status(StatusCode.Internal, $"expert node {nodeId} could not load plan version {plan.Version}: {e.Message}"));
        }
    }

    public override Task<ReleasePlanReply> Release(ReleasePlanRequest request, ServerCallContext context)
    {
        int dropped;
        if (request.AbandonVersion != 0)
        {
            dropped = experts.Abandon(request.AbandonVersion);
            // The prepare wrote the abandoned version to the plan file; a restart must find the one in use.
            PlacementPlan newest = experts.Newest;
            try
            {
                if (planPath is not null && newest.Version != request.AbandonVersion && File.Exists(planPath)
                    && PlacementPlan.Load(planPath).Version == request.AbandonVersion)
                    newest.Save(planPath);
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                logger.LogWarning("plan file {Path} not restored to version {Version}: {Reason}", planPath, newest.Version, e.Message);
            }
            logger.LogWarning("plan version {Version} abandoned (its rollout failed): {Slots} slots dropped, serving version {Newest}", request.AbandonVersion, dropped, newest.Version);
        }
        else
        {
            dropped = experts.Release(request.KeepFromVersion);
            if (dropped > 0) logger.LogInformation("plan versions below {Version} released: {Slots} slots dropped", request.KeepFromVersion, dropped);
        }
        var reply = new ReleasePlanReply { DroppedSlots = (uint)dropped };
        reply.HeldVersions.Add(experts.Versions);
        return Task.FromResult(reply);
    }

    /// <summary>Per-stream scratch that grows to the largest frame seen and is then reused.</summary>
    internal sealed class StreamBuffers
    {
        private float[] _rows = [];
        private byte[] _output = [];

        public Span<float> Rows(int count)
        {
            if (_rows.Length < count) _rows = new float[count];
            return _rows.AsSpan(0, count);
        }

        public byte[] Output(int bytes)
        {
            if (_output.Length < bytes) _output = new byte[bytes];
            return _output;
        }
    }
}
