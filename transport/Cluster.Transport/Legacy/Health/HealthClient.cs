using Grpc.Health.V1;

namespace Cluster.Transport.Legacy.Health;

/// <summary>Typed calls to a peer's health service.</summary>
public sealed class HealthClient(GrpcChannel channel)
{
    public Task<HealthCheckResponse> CheckAsync(string service = "", CallOptions? options = null) =>
        channel.UnaryAsync(HealthMethods.Check, new HealthCheckRequest { Service = service }, options);

    public GrpcCall<HealthCheckRequest, HealthCheckResponse> Watch(string service = "", CallOptions? options = null) =>
        channel.ServerStreaming(HealthMethods.Watch, new HealthCheckRequest { Service = service }, options);
}
