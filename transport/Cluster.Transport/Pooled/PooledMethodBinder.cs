using Grpc.Core;

namespace Cluster.Transport;

/// <summary>
/// Passes a generated BindService's methods on to the real binder, each replaced by its pooled twin where it has
/// one. A service that reads pooled messages binds through it:
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
        inner.AddMethod(PooledMethods.For(method), handler);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(PooledMethods.For(method), handler);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(PooledMethods.For(method), handler);

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) =>
        inner.AddMethod(PooledMethods.For(method), handler);
}
