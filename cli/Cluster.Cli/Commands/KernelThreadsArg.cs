using Cluster.Engine.Kernels;

namespace Cluster.Cli.Commands;

/// <summary>
/// <c>--threads N</c> on the serving roles: the kernel threads of the node's CPU backend. By default one per core the
/// process may use (a pod's CPU limit included); <c>cluster up</c> gives each expert node its share of the machine.
/// </summary>
public static class KernelThreadsArg
{
    public const string Flag = "threads";
    public const string Usage = "[--threads N]";

    public static int? Parse(CliArgs args) => args.Has(Flag) ? args.Int(Flag, 0, 1, 1024) : null;

    public static void Apply(int? threads)
    {
        if (threads is { } n) CpuBackend.UseDefaultThreads(n);
    }
}
