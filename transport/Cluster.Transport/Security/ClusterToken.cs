using System.Security.Cryptography;
using System.Text;

namespace Cluster.Transport;

/// <summary>
/// The cluster's credential: a shared secret every role presents on its calls to another role and checks on the
/// calls it serves (<see cref="ClusterTokenInterceptor"/>), so that a process that can reach a node's port cannot
/// drive it. <c>cluster up</c> generates one per cluster; on Kubernetes it comes from a Secret. It travels in the
/// <see cref="MetadataKey"/> header, apart from <c>authorization</c>, which carries API keys on the public API.
/// </summary>
public sealed class ClusterToken
{
    public const string MetadataKey = "cluster-token";
    /// <summary>Where roles read the token when no file is named: what a Kubernetes Secret turns into.</summary>
    public const string EnvironmentVariable = "CLUSTER_TOKEN";
    private const int MinLength = 16;

    private readonly byte[] _bytes;

    private ClusterToken(string value)
    {
        Value = value;
        _bytes = Encoding.ASCII.GetBytes(value);
    }

    public string Value { get; }

    /// <summary>The TLS the token travels over between roles; null: cleartext h2c (a cluster on one host's loopback).</summary>
    public ClusterTls? Tls { get; private init; }

    /// <summary>The same token over <paramref name="tls"/>: internal listeners serve its certificate, channels check it.</summary>
    public ClusterToken WithTls(ClusterTls? tls) => new(Value) { Tls = tls };

    /// <summary>256 random bits, base64url: safe in a header, a file and an environment variable.</summary>
    public static ClusterToken Generate() => new(Base64Url(RandomNumberGenerator.GetBytes(32)));

    /// <summary>Checks the shape: at least 16 visible ASCII characters, none a space (a header value must survive as is).</summary>
    public static ClusterToken Parse(string value, string source)
    {
        value = value.Trim();
        if (value.Length < MinLength) throw new FormatException($"{source}: the cluster token must have at least {MinLength} characters (has {value.Length})");
        foreach (char c in value)
            if (c <= ' ' || c > '~') throw new FormatException($"{source}: the cluster token may hold only visible ASCII characters");
        return new ClusterToken(value);
    }

    /// <summary>From <paramref name="file"/> when given, else from <see cref="EnvironmentVariable"/>, else none.</summary>
    public static ClusterToken? Load(string? file)
    {
        if (file is not null)
        {
            if (!File.Exists(file)) throw new FileNotFoundException($"cluster token file '{file}' not found", file);
            return Parse(File.ReadAllText(file), file);
        }
        string? env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        return string.IsNullOrWhiteSpace(env) ? null : Parse(env, EnvironmentVariable);
    }

    /// <summary>Writes the token readable by its owner only, as ssh keys are kept.</summary>
    public void Save(string file) => OwnerOnlyFile.Write(file, Value + "\n");

    /// <summary>Compares in time independent of where the strings differ, so the token cannot be guessed byte by byte.</summary>
    public bool Matches(string? presented)
    {
        if (presented is null || presented.Length != _bytes.Length) return false;
        Span<byte> buffer = presented.Length <= 256 ? stackalloc byte[presented.Length] : new byte[presented.Length];
        if (Encoding.ASCII.GetBytes(presented, buffer) != buffer.Length) return false;
        return CryptographicOperations.FixedTimeEquals(buffer, _bytes);
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public override string ToString() => "cluster-token(***)";
}
