using System.Threading.Channels;
using Grpc.Health.V1;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cluster.Transport.Legacy.Health;

/// <summary>
/// The standard health service. Statuses are set per service name ("" is the whole server); Check answers
/// NOT_FOUND for a name never set, Watch streams SERVICE_UNKNOWN for it and then every change.
/// </summary>
public sealed class HealthService : IGrpcService
{
    private readonly object _gate = new();
    private readonly Dictionary<string, ServingStatus> _statuses = [];
    private readonly Dictionary<string, List<Channel<ServingStatus>>> _watchers = [];

    public HealthService() => SetStatus("", ServingStatus.Serving);

    public void SetStatus(string service, ServingStatus status)
    {
        lock (_gate)
        {
            _statuses[service] = status;
            if (_watchers.TryGetValue(service, out var list))
                foreach (var w in list) w.Writer.TryWrite(status);
        }
    }

    /// <summary>Marks every service NOT_SERVING, as a server does when it starts shutting down.</summary>
    public void SetAllNotServing()
    {
        lock (_gate)
            foreach (var name in _statuses.Keys.ToArray()) SetStatus(name, ServingStatus.NotServing);
    }

    public void Bind(ServiceBinder binder)
    {
        binder.Unary(HealthMethods.Check, CheckAsync);
        binder.ServerStreaming(HealthMethods.Watch, WatchAsync);
    }

    private Task<HealthCheckResponse> CheckAsync(HealthCheckRequest request, ServerCallContext context)
    {
        lock (_gate)
        {
            if (!_statuses.TryGetValue(request.Service, out var status))
                throw new RpcException(StatusCode.NotFound, $"Unknown service '{request.Service}'");
            return Task.FromResult(new HealthCheckResponse { Status = status });
        }
    }

    private async Task WatchAsync(HealthCheckRequest request, IAsyncStreamWriter<HealthCheckResponse> responses, ServerCallContext context)
    {
        // Only the latest status matters to a watcher, so a slow one skips intermediate states.
        var channel = Channel.CreateBounded<ServingStatus>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropOldest });
        lock (_gate)
        {
            channel.Writer.TryWrite(_statuses.TryGetValue(request.Service, out var s) ? s : ServingStatus.ServiceUnknown);
            if (!_watchers.TryGetValue(request.Service, out var list)) _watchers[request.Service] = list = [];
            list.Add(channel);
        }
        try
        {
            ServingStatus? last = null;
            await foreach (var status in channel.Reader.ReadAllAsync(context.CancellationToken).ConfigureAwait(false))
            {
                if (status == last) continue;
                last = status;
                await responses.WriteAsync(new HealthCheckResponse { Status = status }, context.CancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            lock (_gate) _watchers[request.Service].Remove(channel);
        }
    }
}
