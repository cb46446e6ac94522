using Microsoft.Extensions.Hosting;

namespace Cluster.ExpertNode.Host;

/// <summary>
/// A host lifetime that leaves SIGINT/SIGTERM to whoever started the node (the CLI cancels RunAsync), instead of
/// the default console lifetime stopping the server behind the caller's back.
/// </summary>
internal sealed class CallerLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
