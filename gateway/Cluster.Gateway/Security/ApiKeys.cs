using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Cluster.Gateway.Security;

/// <summary>
/// The keys clients present (<c>Authorization: Bearer KEY</c> on HTTP, <c>authorization</c> metadata on gRPC), read
/// from a file an operator writes by hand, one key a line:
/// <code>
/// # name   key (or sha256:HEX of it)        limits, optional
/// alice    sk-alice-7a1f0c9e2b4d6f8a          rpm=60 tpm=200000
/// batch    sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
/// </code>
/// No keys: the gateway is open. Keys are kept as SHA-256 hashes and a presented key is compared with every one in
/// constant time, so neither the file's order nor where a guess differs shows in the answer's timing.
/// </summary>
public sealed class ApiKeys
{
    /// <summary>Where the gateway reads the keys file's content when no file is named: what a Kubernetes Secret turns into.</summary>
    public const string EnvironmentVariable = "CLUSTER_API_KEYS";
    private const int MinKeyLength = 16;
    private const string HashPrefix = "sha256:";

    public static readonly ApiKeys None = new([]);

    private ApiKeys(IReadOnlyList<ApiKey> keys) => Keys = keys;

    public IReadOnlyList<ApiKey> Keys { get; }
    /// <summary>No keys configured: every request is served, charged to <see cref="ApiKey.AnonymousName"/>.</summary>
    public bool IsOpen => Keys.Count == 0;

    /// <summary>From <paramref name="file"/> when given, else from <see cref="EnvironmentVariable"/>, else none.</summary>
    /// <exception cref="FormatException">One line: the source, the line number and what is wrong there.</exception>
    public static ApiKeys Load(string? file)
    {
        if (file is not null)
        {
            if (!File.Exists(file)) throw new FileNotFoundException($"API keys file '{file}' not found", file);
            return Parse(File.ReadAllText(file), file);
        }
        string? env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        return string.IsNullOrWhiteSpace(env) ? None : Parse(env, EnvironmentVariable);
    }

    /// <summary>The file's lines: <c>NAME KEY [rpm=N] [tpm=N]</c>; blank lines are skipped and a field starting with <c>#</c> begins a comment.</summary>
    public static ApiKeys Parse(string text, string source)
    {
        var keys = new List<ApiKey>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string[] fields = lines[i].Split([' ', '\t', '\r'], StringSplitOptions.RemoveEmptyEntries);
            // A comment starts at a field that begins with '#' (a key may hold one inside).
            int comment = Array.FindIndex(fields, f => f[0] == '#');
            if (comment >= 0) fields = fields[..comment];
            if (fields.Length == 0) continue;
            string where = $"{source}:{i + 1}";
            if (fields.Length < 2) throw new FormatException($"{where}: expected 'NAME KEY [rpm=N] [tpm=N]', got only '{fields[0]}'");
            string name = fields[0];
            if (!IsName(name)) throw new FormatException($"{where}: the name '{name}' may hold only letters, digits, '.', '_' and '-' (at most 64)");
            if (!names.Add(name)) throw new FormatException($"{where}: the name '{name}' is given twice");
            byte[] hash = Hash(fields[1], where);
            foreach (ApiKey other in keys)
                if (CryptographicOperations.FixedTimeEquals(other.Hash, hash)) throw new FormatException($"{where}: the key of '{name}' is also '{other.Name}''s");
            int? rpm = null, tpm = null;
            for (int f = 2; f < fields.Length; f++)
            {
                string[] pair = fields[f].Split('=', 2);
                if (pair.Length != 2 || !int.TryParse(pair[1], NumberStyles.None, CultureInfo.InvariantCulture, out int limit) || limit < 1)
                    throw new FormatException($"{where}: '{fields[f]}' is not rpm=N or tpm=N with N at least 1");
                switch (pair[0])
                {
                    case "rpm" when rpm is null: rpm = limit; break;
                    case "tpm" when tpm is null: tpm = limit; break;
                    case "rpm" or "tpm": throw new FormatException($"{where}: {pair[0]} is given twice");
                    default: throw new FormatException($"{where}: unknown limit '{pair[0]}' (rpm: requests per minute, tpm: tokens per minute)");
                }
            }
            keys.Add(new ApiKey(name, hash, rpm, tpm));
        }
        return new ApiKeys(keys);
    }

    /// <summary>The key <paramref name="presented"/> is, or null. Every key is compared, whichever matches.</summary>
    public ApiKey? Find(string? presented)
    {
        if (presented is null) return null;
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented), hash);
        ApiKey? found = null;
        foreach (ApiKey key in Keys)
            if (CryptographicOperations.FixedTimeEquals(key.Hash, hash)) found = key;
        return found;
    }

    /// <summary>The SHA-256 of a key given as itself (at least 16 visible ASCII characters) or as <c>sha256:HEX</c>.</summary>
    private static byte[] Hash(string key, string where)
    {
        if (key.StartsWith(HashPrefix, StringComparison.Ordinal))
        {
            string hex = key[HashPrefix.Length..];
            try
            {
                byte[] hash = Convert.FromHexString(hex);
                if (hash.Length == SHA256.HashSizeInBytes) return hash;
            }
            catch (FormatException) { }
            throw new FormatException($"{where}: '{HashPrefix}' must be followed by 64 hexadecimal digits (got {hex.Length} characters)");
        }
        if (key.Length < MinKeyLength) throw new FormatException($"{where}: the key must have at least {MinKeyLength} characters (has {key.Length})");
        foreach (char c in key)
            if (c <= ' ' || c > '~') throw new FormatException($"{where}: the key may hold only visible ASCII characters");
        return SHA256.HashData(Encoding.ASCII.GetBytes(key));
    }

    private static bool IsName(string name)
    {
        if (name.Length > 64) return false;
        foreach (char c in name)
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')) return false;
        return true;
    }
}
