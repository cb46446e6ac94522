using System.Diagnostics.CodeAnalysis;

namespace Cluster.Transport;

/// <summary>
/// A peer's gRPC address as operators and plan files write it: "host:port" (cleartext HTTP/2), or an http:// or
/// https:// address with an explicit port and no path. The one parser every role uses for the peers it dials.
/// </summary>
public static class PeerAddress
{
    public static bool TryParse(string endpoint, [NotNullWhen(true)] out Uri? address)
    {
        string text = endpoint.Contains("://", StringComparison.Ordinal) ? endpoint : "http://" + endpoint;
        if (Uri.TryCreate(text, UriKind.Absolute, out address) && (address.Scheme == Uri.UriSchemeHttp || address.Scheme == Uri.UriSchemeHttps)
            && HasExplicitPort(text) && address.Port > 0 && address.AbsolutePath == "/" && address.Query.Length == 0 && address.UserInfo.Length == 0)
            return true;
        address = null;
        return false;
    }

    /// <summary>Whether the authority ends in ":digits": Uri forgets a port equal to the scheme's default.</summary>
    private static bool HasExplicitPort(string text)
    {
        int start = text.IndexOf("://", StringComparison.Ordinal) + 3;
        int end = text.IndexOf('/', start);
        ReadOnlySpan<char> authority = end < 0 ? text.AsSpan(start) : text.AsSpan(start, end - start);
        int colon = authority.LastIndexOf(':');
        return colon >= 0 && colon > authority.LastIndexOf(']') && colon < authority.Length - 1 && int.TryParse(authority[(colon + 1)..], out _);
    }

    /// <summary>The address, or a FormatException naming <paramref name="what"/> (the option or field it came from).</summary>
    public static Uri Parse(string endpoint, string what) =>
        TryParse(endpoint, out Uri? address) ? address : throw new FormatException($"{what}: '{endpoint}' is not host:port");
}
