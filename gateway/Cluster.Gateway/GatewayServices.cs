using Cluster.Gateway.Generation;
using Cluster.Gateway.Grpc;
using Cluster.Gateway.Metrics;
using Cluster.Gateway.Nodes;
using Cluster.Gateway.Nodes.Policies;
using Cluster.Gateway.OpenAi;
using Cluster.Gateway.Security;
using Cluster.Transport.Discovery;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Cluster.Gateway;

/// <summary>
/// The gateway's services, composed as in an ASP.NET Core app: its settings as options objects (validated when first
/// read, at start), the clock as a <see cref="TimeProvider"/>, one placement policy per role, and the singletons that
/// route and run requests, and the keys' accounts and the metrics both doors charge. <see cref="GatewayHost"/> builds them into the HTTP port's container and shares them with
/// the gRPC port's; a caller may replace any before the gateway starts (a test's FakeTimeProvider, another policy).
/// </summary>
public static class GatewayServices
{
    public static IServiceCollection AddGateway(this IServiceCollection services, GatewayOptions options)
    {
        services.AddOptions<AdmissionOptions>()
            .Configure(a =>
            {
                a.MaxInFlightPerNode = options.MaxQueue;
                a.MaxQueued = options.MaxQueuedRequests;
            })
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddOptions<NodeProbeOptions>()
            .Configure(p =>
            {
                p.StatsInterval = options.StatsInterval;
                p.Timeout = options.HealthTimeout;
                p.ClusterToken = options.ClusterToken;
            })
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddOptions<MigrationOptions>().Configure(m => m.MaxMigrations = options.MaxMigrations).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton(TimeProvider.System);

        services.AddSingleton<IPlacementPolicy, BothPolicy>();
        services.AddSingleton<IPlacementPolicy, PrefillPolicy>();
        services.AddSingleton<IPlacementPolicy, DecodePolicy>();
        services.AddSingleton<Admission>();
        services.AddSingleton<StatsPoller>();
        services.AddSingleton(_ => options.Discovery ?? StaticPools(options));
        services.AddSingleton<NodeCallMetrics>();
        services.AddSingleton<NodeMembership>();
        services.AddSingleton<Readiness>();
        services.AddSingleton<NodeRouter>();

        services.AddSingleton(_ => ServedModel.Load(options.ModelDir, options.ModelId, options.MaxModelLen, options.DefaultMaxTokens));
        services.AddSingleton(options);
        services.AddSingleton(options.ApiKeys);
        services.AddSingleton<KeyAccounts>();
        services.AddSingleton<ApiKeyMiddleware>();
        services.AddSingleton<GatewayMetrics>();
        services.AddSingleton<Generator>();
        services.AddSingleton<MeteredGenerator>();
        services.AddSingleton<CompletionEndpoint>();
        services.AddSingleton<InferenceService>();
        return services;
    }

    private static GatewayDiscovery StaticPools(GatewayOptions options) => new()
    {
        Attention = options.AttentionNodes.Count > 0 ? new StaticDiscovery(options.AttentionNodes) : null,
        Prefill = options.PrefillNodes.Count > 0 ? new StaticDiscovery(options.PrefillNodes) : null,
        Decode = options.DecodeNodes.Count > 0 ? new StaticDiscovery(options.DecodeNodes) : null,
    };
}
