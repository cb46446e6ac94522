using Grpc.Core;

namespace Cluster.Transport;

/// <summary>
/// Passes a generated BindService's methods on to the real binder with the project's marshallers: each method's
/// pooled twin where it has one, else the generated marshallers with a request that does not parse reported as
/// INTERNAL "Failed to parse message". Every service of the project binds through it:
/// <code>
/// [BindServiceMethod(typeof(MyService), nameof(BindService))]
/// public sealed class MyService : Generated.GeneratedBase
/// {
///     public static ServiceDescriptor Descriptor => Generated.Descriptor;   // for server reflection
///     public static void BindService(ServiceBinderBase binder, Generated.GeneratedBase? service) => Generated.BindService(new PooledMethodBinder(binder), service);
/// }
/// </code>
/// The second parameter must be the generated base's type: Grpc.AspNetCore finds the handlers as overrides of it.
/// </summary>
public sealed class PooledMethodBinder(ServiceBinderBase inner) : ServiceBinderBase
{
    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(PooledMethods.ForServer(method), handler);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(PooledMethods.ForServer(method), handler);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(PooledMethods.ForServer(method), handler);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(PooledMethods.ForServer(method), handler);
}
