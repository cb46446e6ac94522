using Cluster.Protos.V1;
using Google.Protobuf.Reflection;

namespace Cluster.Transport;

/// <summary>
/// The methods a client may retry: those the protos declare free of side effects (`idempotency_level =
/// NO_SIDE_EFFECTS` or IDEMPOTENT), plus the standard health check. Keyed by full name, "/package.Service/Method".
/// </summary>
public static class IdempotentMethods
{
    public static readonly IReadOnlySet<string> All = Collect(
        AttentionReflection.Descriptor, ExpertsReflection.Descriptor, InferenceReflection.Descriptor);

    private static HashSet<string> Collect(params FileDescriptor[] files)
    {
        var names = new HashSet<string>(StringComparer.Ordinal) { "/grpc.health.v1.Health/Check" };
        foreach (var file in files)
            foreach (var service in file.Services)
                foreach (var method in service.Methods)
                    if (method.GetOptions()?.IdempotencyLevel is MethodOptions.Types.IdempotencyLevel.NoSideEffects or MethodOptions.Types.IdempotencyLevel.Idempotent)
                        names.Add("/" + service.FullName + "/" + method.Name);
        return names;
    }
}
