using Cluster.Transport;

namespace Cluster.Cli.Commands;

/// <summary>
/// <c>--cluster-token-file FILE</c>, or the <c>CLUSTER_TOKEN</c> environment variable (what a Kubernetes Secret becomes):
/// the cluster's credential, which every role requires of callers of its internal services and puts on its own calls.
/// </summary>
public static class ClusterTokenArgs
{
    public const string Usage = "[--cluster-token-file FILE]";
    public const string Flag = "cluster-token-file";

    /// <summary>The token, or null when neither the flag nor the variable gives one; a one-line CLI error for a bad one.</summary>
    public static ClusterToken? Parse(CliArgs args)
    {
        try { return ClusterToken.Load(args.String(Flag)); }
        catch (Exception e) when (e is FileNotFoundException or FormatException or IOException or UnauthorizedAccessException)
        {
            throw new CliException($"--{Flag}: {e.Message}");
        }
    }

    /// <summary>
    /// Warns (stderr, once at start) when a role bound beyond loopback serves without a token: anything that reaches
    /// its port could then drive it.
    /// </summary>
    public static void WarnIfOpen(ClusterToken? token, string role, string host)
    {
        if (token is null && host is not ("127.0.0.1" or "::1" or "localhost"))
            Console.Error.WriteLine($"cluster serve {role}: warning: no cluster token (--{Flag} or {ClusterToken.EnvironmentVariable}); its internal services accept any caller that reaches {host}");
    }
}
