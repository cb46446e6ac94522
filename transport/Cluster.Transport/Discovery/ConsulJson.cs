using System.Text.Json.Serialization;

namespace Cluster.Transport.Discovery;

/// <summary>The body of PUT /v1/agent/service/register, in the agent API's field names.</summary>
public sealed class ConsulServiceDefinition
{
    [JsonPropertyName("ID")] public required string Id { get; init; }
    [JsonPropertyName("Name")] public required string Name { get; init; }
    [JsonPropertyName("Address")] public required string Address { get; init; }
    [JsonPropertyName("Port")] public required int Port { get; init; }
    [JsonPropertyName("Meta")] public Dictionary<string, string> Meta { get; init; } = [];
    [JsonPropertyName("Check")] public required ConsulCheckDefinition Check { get; init; }
}

/// <summary>A GRPC check: the agent calls grpc.health.v1 Check on "host:port" every interval; SERVING passes.</summary>
public sealed class ConsulCheckDefinition
{
    [JsonPropertyName("Name")] public required string Name { get; init; }
    [JsonPropertyName("GRPC")] public required string Grpc { get; init; }
    [JsonPropertyName("Interval")] public required string Interval { get; init; }
    [JsonPropertyName("Timeout")] public string? Timeout { get; init; }
    [JsonPropertyName("DeregisterCriticalServiceAfter")] public string? DeregisterCriticalServiceAfter { get; init; }
}

/// <summary>One entry of GET /v1/health/service/&lt;name&gt;: the node the service runs on and the service instance.</summary>
public sealed class ConsulHealthEntry
{
    [JsonPropertyName("Node")] public ConsulNode? Node { get; init; }
    [JsonPropertyName("Service")] public required ConsulServiceInstance Service { get; init; }
}

public sealed class ConsulNode
{
    [JsonPropertyName("Node")] public string Name { get; init; } = "";
    [JsonPropertyName("Address")] public string Address { get; init; } = "";
}

public sealed class ConsulServiceInstance
{
    [JsonPropertyName("ID")] public required string Id { get; init; }
    [JsonPropertyName("Service")] public string Name { get; init; } = "";
    /// <summary>Empty when the service was registered without one: the node's address is meant then.</summary>
    [JsonPropertyName("Address")] public string Address { get; init; } = "";
    [JsonPropertyName("Port")] public int Port { get; init; }
    [JsonPropertyName("Meta")] public Dictionary<string, string>? Meta { get; init; }
}

[JsonSerializable(typeof(ConsulServiceDefinition))]
[JsonSerializable(typeof(List<ConsulHealthEntry>))]
public sealed partial class ConsulJson : JsonSerializerContext;
