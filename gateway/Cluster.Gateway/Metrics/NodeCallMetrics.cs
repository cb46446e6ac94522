using Cluster.Transport;
using System.Collections.Concurrent;
using Cluster.Protos.V1;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Cluster.Gateway.Metrics;

/// <summary>
/// The gateway's calls to each attention node, by method and the status they ended with: the errors by node. A
/// client interceptor on each node's AttentionService client (<see cref="For"/>) counts a unary call when its
/// answer or error arrives, and a Generate stream when its last token (the one with a finish reason) arrives — the
/// gateway stops reading there — when it fails, or when it is dropped before (CANCELLED, as the node sees it).
/// </summary>
public sealed class NodeCallMetrics
{
    private readonly ConcurrentDictionary<(string Node, string Method, StatusCode Code), Counter> _calls = new();

    /// <summary>The interceptor for the calls to <paramref name="node"/> (its endpoint, the series' label).</summary>
    public Interceptor For(string node) => new Counting(this, node);

    public void Write(TextWriter output)
    {
        PrometheusText.Family(output, "cluster_gateway_node_calls_total", "counter", "The gateway's calls to attention nodes, by node, method and status code.");
        foreach (var ((node, method, code), counter) in _calls)
            PrometheusText.Sample(output, "cluster_gateway_node_calls_total",
                PrometheusText.Label("node", node) + "," + PrometheusText.Label("method", method) + "," + PrometheusText.Label("code", code.ToString()),
                Volatile.Read(ref counter.Value));
    }

    private void Record(string node, string method, StatusCode code) =>
        Interlocked.Increment(ref _calls.GetOrAdd((node, method, code), static _ => new Counter()).Value);

    private sealed class Counter
    {
        public long Value;
    }

    private sealed class Counting(NodeCallMetrics metrics, string node) : Interceptor
    {
        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request,
            ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
        {
            AsyncUnaryCall<TResponse> call = continuation(request, context);
            return new AsyncUnaryCall<TResponse>(Observe(call.ResponseAsync, context.Method.Name), call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, call.Dispose);
        }

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(TRequest request,
            ClientInterceptorContext<TRequest, TResponse> context, AsyncServerStreamingCallContinuation<TRequest, TResponse> continuation)
        {
            AsyncServerStreamingCall<TResponse> call = continuation(request, context);
            var reader = new Reader<TResponse>(call.ResponseStream, code => metrics.Record(node, context.Method.Name, code));
            return new AsyncServerStreamingCall<TResponse>(reader, call.ResponseHeadersAsync, call.GetStatus, call.GetTrailers, () =>
            {
                reader.Dropped();
                call.Dispose();
            });
        }

        private async Task<TResponse> Observe<TResponse>(Task<TResponse> response, string method)
        {
            try
            {
                TResponse r = await response.ConfigureAwait(false);
                metrics.Record(node, method, StatusCode.OK);
                return r;
            }
            catch (RpcException e)
            {
                metrics.Record(node, method, e.StatusCode);
                throw;
            }
        }
    }

    /// <summary>A call's response stream that reports, once, how the call ended.</summary>
    private sealed class Reader<T>(IAsyncStreamReader<T> inner, Action<StatusCode> ended) : IAsyncStreamReader<T>
    {
        private int _ended;

        public T Current => inner.Current;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            try
            {
                bool more = await inner.MoveNext(cancellationToken).ConfigureAwait(false);
                if (!more || inner.Current is TokenEvent { FinishReason.Length: > 0 }) End(StatusCode.OK);
                return more;
            }
            catch (RpcException e)
            {
                End(e.StatusCode);
                throw;
            }
            catch (OperationCanceledException)
            {
                End(StatusCode.Cancelled);
                throw;
            }
        }

        public void Dropped() => End(StatusCode.Cancelled);

        private void End(StatusCode code)
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0) ended(code);
        }
    }
}
