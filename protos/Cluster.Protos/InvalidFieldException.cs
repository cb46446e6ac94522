namespace Cluster.Protos.V1;

/// <summary>
/// A request field out of its range: <see cref="Field"/> names it as the caller's door spells it ("temperature" on
/// OpenAI's JSON, "sampling.temperature" on gRPC), and the message starts with that name. The HTTP door maps it to a
/// 400 in OpenAI's shape, the gRPC doors to INVALID_ARGUMENT.
/// </summary>
public sealed class InvalidFieldException(string field, string message) : Exception(message)
{
    public string Field { get; } = field;
}
