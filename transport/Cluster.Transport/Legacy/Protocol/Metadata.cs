using System.Collections;
using System.Text;

namespace Cluster.Transport.Legacy;

/// <summary>
/// Custom headers or trailers of a call. Keys are lower-case; keys ending in "-bin" carry bytes,
/// base64-encoded on the wire, every other key an ASCII string.
/// </summary>
public sealed class Metadata : IEnumerable<Metadata.Entry>
{
    public const string BinarySuffix = "-bin";

    private readonly List<Entry> _entries = [];

    public int Count => _entries.Count;

    public void Add(string key, string value)
    {
        key = NormalizeKey(key);
        if (IsBinaryKey(key)) throw new ArgumentException($"metadata key '{key}' ends in -bin and needs a byte[] value", nameof(key));
        foreach (char c in value)
            if (c < 0x20 || c > 0x7E) throw new ArgumentException($"metadata value of '{key}' must be printable ASCII", nameof(value));
        _entries.Add(new Entry(key, value, null));
    }

    public void Add(string key, byte[] value)
    {
        key = NormalizeKey(key);
        if (!IsBinaryKey(key)) throw new ArgumentException($"metadata key '{key}' carries bytes and must end in -bin", nameof(key));
        _entries.Add(new Entry(key, null, value));
    }

    /// <summary>The last string value for the key, or null.</summary>
    public string? GetValue(string key)
    {
        for (int i = _entries.Count - 1; i >= 0; i--)
            if (_entries[i].Key == key) return _entries[i].Value;
        return null;
    }

    /// <summary>The last byte value for a -bin key, or null.</summary>
    public byte[]? GetBytes(string key)
    {
        for (int i = _entries.Count - 1; i >= 0; i--)
            if (_entries[i].Key == key) return _entries[i].ValueBytes;
        return null;
    }

    public IEnumerator<Entry> GetEnumerator() => _entries.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public static bool IsBinaryKey(string key) => key.EndsWith(BinarySuffix, StringComparison.Ordinal);

    /// <summary>The wire form of a value: base64 without padding for -bin keys (the spec's preferred form).</summary>
    public static string EncodeValue(Entry entry) =>
        entry.ValueBytes is { } bytes ? Convert.ToBase64String(bytes).TrimEnd('=') : entry.Value!;

    /// <summary>Adds a header as received: -bin values are base64 with or without padding.</summary>
    internal bool TryAddFromWire(string key, string value)
    {
        key = key.ToLowerInvariant();
        if (IsReserved(key)) return false;
        if (!IsBinaryKey(key)) { _entries.Add(new Entry(key, value, null)); return true; }
        // One header may hold several comma-separated values after proxies fold repeated keys.
        foreach (var part in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            _entries.Add(new Entry(key, null, DecodeBase64(key, part)));
        return true;
    }

    private static byte[] DecodeBase64(string key, string text)
    {
        int pad = (4 - text.Length % 4) % 4;
        if (pad == 3) throw new RpcException(StatusCode.Internal, $"metadata '{key}' is not valid base64");
        try { return Convert.FromBase64String(pad == 0 ? text : text + new string('=', pad)); }
        catch (FormatException) { throw new RpcException(StatusCode.Internal, $"metadata '{key}' is not valid base64"); }
    }

    /// <summary>Headers the protocol owns; they never surface as call metadata (grpc-status-details-bin does: it passes through).</summary>
    internal static bool IsReserved(string key) =>
        key.StartsWith(':') || (key.StartsWith("grpc-", StringComparison.Ordinal) && key != GrpcProtocol.StatusDetails) || key is "content-type" or "te" or "content-length"
            or "host" or "connection" or "transfer-encoding" or "user-agent" or "accept-encoding" or "date" or "server";

    private static string NormalizeKey(string key)
    {
        if (string.IsNullOrEmpty(key)) throw new ArgumentException("metadata key is empty", nameof(key));
        key = key.ToLowerInvariant();
        foreach (char c in key)
            if (!(c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_' or '.'))
                throw new ArgumentException($"metadata key '{key}' has an invalid character '{c}'", nameof(key));
        if (IsReserved(key)) throw new ArgumentException($"metadata key '{key}' is reserved by the protocol", nameof(key));
        return key;
    }

    public readonly record struct Entry(string Key, string? Value, byte[]? ValueBytes)
    {
        public bool IsBinary => ValueBytes is not null;
        public override string ToString() => IsBinary ? $"{Key}=[{ValueBytes!.Length} bytes]" : $"{Key}={Value}";
    }

    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (var e in _entries) sb.Append(sb.Length == 0 ? "" : ", ").Append(e);
        return sb.ToString();
    }
}
