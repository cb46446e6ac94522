using System.Globalization;

namespace Cluster.Transport.Discovery;

/// <summary>
/// A role registered with its local Consul agent, with a GRPC check on its grpc.health.v1 service: the agent lists it
/// as passing only while the role answers SERVING, and drops it once it has been critical for
/// <see cref="ConsulServiceSettings.DeregisterCriticalAfter"/> (a role that died without deregistering). Disposing
/// deregisters it, so the gateway stops routing to a role that shuts down without waiting for a failed check.
/// </summary>
public sealed class ConsulRegistration : IAsyncDisposable
{
    private readonly ConsulAgent _agent;

    private ConsulRegistration(ConsulAgent agent, string id)
    {
        _agent = agent;
        Id = id;
    }

    public string Id { get; }

    public static async Task<ConsulRegistration> RegisterAsync(ConsulAgent agent, ConsulServiceSettings settings, CancellationToken ct)
    {
        Uri address = PeerAddress.Parse(settings.Advertise, $"service {settings.Id}: the advertised address");
        string host = address.Host.Trim('[', ']');
        await agent.RegisterAsync(new ConsulServiceDefinition
        {
            Id = settings.Id,
            Name = settings.Name,
            Address = host,
            Port = address.Port,
            Meta = new Dictionary<string, string>(settings.Meta),
            Check = new ConsulCheckDefinition
            {
                Name = $"{settings.Name} gRPC health",
                Grpc = $"{address.Host}:{address.Port}",
                Interval = Duration(settings.CheckInterval),
                Timeout = Duration(settings.CheckTimeout),
                DeregisterCriticalServiceAfter = Duration(settings.DeregisterCriticalAfter),
            },
        }, ct).ConfigureAwait(false);
        return new ConsulRegistration(agent, settings.Id);
    }

    /// <summary>A duration as Consul's Go-style strings read it ("1500ms").</summary>
    private static string Duration(TimeSpan t) => ((long)t.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) + "ms";

    public async ValueTask DisposeAsync()
    {
        // A role shutting down has seconds, not minutes: an agent that does not answer soon is left to the critical check.
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _agent.DeregisterAsync(Id, bound.Token).ConfigureAwait(false);
    }
}
