using Cluster.Transport;

namespace Cluster.Cli.Commands;

/// <summary>
/// <c>--cluster-token-file FILE</c>, or the <c>CLUSTER_TOKEN</c> environment variable (what a Kubernetes Secret becomes):
/// the cluster's credential, which every role requires of callers of its internal services and puts on its own calls;
/// for the roles, <c>--cluster-tls-dir DIR</c> or <c>CLUSTER_TLS_DIR</c> (ca.crt, tls.crt, tls.key) makes it travel over TLS.
/// </summary>
public static class ClusterTokenArgs
{
    public const string Usage = "[--cluster-token-file FILE]";
    public const string Flag = "cluster-token-file";
    public const string RoleUsage = "[--cluster-token-file FILE] [--cluster-tls-dir DIR]";
    public const string TlsFlag = "cluster-tls-dir";

    /// <summary>The token, or null when neither the flag nor the variable gives one; a one-line CLI error for a bad one.</summary>
    public static ClusterToken? Parse(CliArgs args) => Read(Flag, () => ClusterToken.Load(args.String(Flag)));

    /// <summary>Reads a credential's files; a file missing, unreadable or malformed is a one-line CLI error naming <paramref name="flag"/>.</summary>
    public static T Read<T>(string flag, Func<T> read)
    {
        try { return read(); }
        catch (Exception e) when (e is FileNotFoundException or FormatException or IOException or UnauthorizedAccessException)
        {
            throw new CliException($"--{flag}: {e.Message}");
        }
    }

    /// <summary>
    /// A role's credential: the token, over the cluster's TLS when a directory is given. TLS without a token is
    /// refused: it would hide the calls but let any caller make them.
    /// </summary>
    public static ClusterToken? ParseForRole(CliArgs args)
    {
        ClusterToken? token = Parse(args);
        ClusterTls? tls = Read(TlsFlag, () => ClusterTls.Load(args.String(TlsFlag)));
        if (tls is null) return token;
        if (token is null)
            throw new CliException($"--{TlsFlag} ({tls.Directory}) needs the cluster token too (--{Flag} or {ClusterToken.EnvironmentVariable}): TLS alone admits any caller");
        return token.WithTls(tls);
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
