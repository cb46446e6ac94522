using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Checkpoints;

/// <summary>A tensor's entry in a safetensors header: offsets are relative to the start of the data section.</summary>
public sealed record SafetensorsEntry(string Name, DType DType, int[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}

/// <summary>
/// One .safetensors file, memory-mapped read-only with a single view: the header is parsed and validated at open
/// (only its pages are touched); a tensor's pages are faulted in when its bytes are read. Weights handed out point
/// into the mapping and stay valid until the file is disposed.
/// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, "__metadata__"},
/// then the tensors' bytes, contiguous, covering the data section exactly (as the reference implementation requires).
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>The reference implementation's cap on the header size.</summary>
    private const long MaxHeaderBytes = 100_000_000;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly Dictionary<string, SafetensorsEntry> _entries;
    private bool _disposed;

    public string Path { get; }
    public long FileLength { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IReadOnlyCollection<SafetensorsEntry> Entries => _entries.Values;
    public long DataStart { get; }

    private SafetensorsFile(string path, long length, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePtr)
    {
        Path = path;
        FileLength = length;
        _map = map;
        _view = view;
        _base = basePtr;
        try
        {
            long n = *(long*)basePtr; // safetensors is little-endian, as is every platform .NET runs this on
            if (n <= 0 || n > MaxHeaderBytes) throw Bad($"header length {n} is not in 1..{MaxHeaderBytes}");
            if (n > length - 8) throw Bad($"header length {n} exceeds the file's {length - 8} bytes after the length field (truncated?)");
            DataStart = 8 + n;
            (_entries, Metadata) = ParseHeader(new ReadOnlySpan<byte>(basePtr + 8, (int)n), length - DataStart);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public static SafetensorsFile Open(string path)
    {
        long length;
        try { length = new FileInfo(path).Length; }
        catch (FileNotFoundException) { throw new FileNotFoundException($"{path}: file not found"); }
        if (length < 8) throw new InvalidDataException($"{path}: truncated ({length} bytes, no header length)");
        MemoryMappedFile map;
        try { map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read); }
        catch (FileNotFoundException) { throw new FileNotFoundException($"{path}: file not found"); }
        MemoryMappedViewAccessor view;
        try { view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read); }
        catch { map.Dispose(); throw; }
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        p += view.PointerOffset;
        return new SafetensorsFile(path, length, map, view, p);
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    public SafetensorsEntry Entry(string name) =>
        _entries.TryGetValue(name, out SafetensorsEntry? e) ? e : throw new InvalidDataException($"{Path}: no tensor {name}");

    /// <summary>The tensor in place (no copy). FP8 weights need their scales passed in.</summary>
    public Weight GetWeight(string name, Weight? scaleInv = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        SafetensorsEntry e = Entry(name);
        try { return new Weight(name, e.DType, e.Shape, _base + DataStart + e.Begin, scaleInv, this); }
        catch (InvalidDataException ex) { throw new InvalidDataException($"{Path}: {ex.Message}"); }
    }

    /// <summary>The tensor's bytes in place.</summary>
    public ReadOnlySpan<byte> Bytes(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        SafetensorsEntry e = Entry(name);
        return new ReadOnlySpan<byte>(_base + DataStart + e.Begin, checked((int)e.ByteLength));
    }

    private InvalidDataException Bad(string what) => new($"{Path}: {what}");

    private (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) ParseHeader(ReadOnlySpan<byte> json, long dataLength)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 8 }); }
        catch (JsonException e) { throw Bad($"header is not valid JSON ({e.Message})"); }
        catch (DecoderFallbackException) { throw Bad("header is not valid UTF-8"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad("header is not a JSON object");
            var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (JsonProperty p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__")
                {
                    if (p.Value.ValueKind != JsonValueKind.Object) throw Bad("__metadata__ is not an object");
                    foreach (JsonProperty m in p.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : throw Bad($"__metadata__ value {m.Name} is not a string");
                    continue;
                }
                SafetensorsEntry e = ParseEntry(p.Name, p.Value, dataLength);
                if (!entries.TryAdd(e.Name, e)) throw Bad($"tensor {e.Name} appears twice");
            }
            CheckCoverage(entries.Values, dataLength);
            return (entries, metadata);
        }
    }

    private SafetensorsEntry ParseEntry(string name, JsonElement v, long dataLength)
    {
        string t = $"tensor {name}";
        if (v.ValueKind != JsonValueKind.Object) throw Bad($"{t}: entry is not an object");
        if (!v.TryGetProperty("dtype", out JsonElement dt) || dt.ValueKind != JsonValueKind.String) throw Bad($"{t}: missing dtype");
        string dtypeName = dt.GetString()!;
        if (!DTypes.TryParseSafetensors(dtypeName, out DType dtype))
            throw Bad($"{t}: unsupported dtype \"{dtypeName}\" (F32, BF16, F16 and F8_E4M3 are supported)");
        if (!v.TryGetProperty("shape", out JsonElement sh) || sh.ValueKind != JsonValueKind.Array) throw Bad($"{t}: missing shape");
        var shape = new int[sh.GetArrayLength()];
        long elements = 1;
        int k = 0;
        foreach (JsonElement d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int x) || x < 0) throw Bad($"{t}: shape {sh.GetRawText()} is not a list of non-negative integers");
            shape[k++] = x;
            elements = checked(elements * x);
        }
        if (!v.TryGetProperty("data_offsets", out JsonElement off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Bad($"{t}: data_offsets must be [begin, end]");
        if (!off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw Bad($"{t}: data_offsets {off.GetRawText()} are not 0 <= begin <= end");
        if (end > dataLength) throw Bad($"{t}: data_offsets {off.GetRawText()} run past the data section's {dataLength} bytes (truncated?)");
        long expected = elements * dtype.Size();
        if (end - begin != expected)
            throw Bad($"{t}: data_offsets {off.GetRawText()} hold {end - begin} bytes but {dtypeName} [{string.Join(", ", shape)}] needs {expected}");
        return new SafetensorsEntry(name, dtype, shape, begin, end);
    }

    /// <summary>Tensors must tile the data section exactly: no overlaps, no holes, nothing after the last one.</summary>
    private void CheckCoverage(IEnumerable<SafetensorsEntry> entries, long dataLength)
    {
        var sorted = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        long at = 0;
        SafetensorsEntry? prev = null;
        foreach (SafetensorsEntry e in sorted)
        {
            if (e.Begin < at) throw Bad($"tensor {e.Name}: data_offsets [{e.Begin}, {e.End}] overlap tensor {prev!.Name} [{prev.Begin}, {prev.End}]");
            if (e.Begin > at) throw Bad($"tensor {e.Name}: data_offsets [{e.Begin}, {e.End}] leave a hole of {e.Begin - at} bytes after {(prev is null ? "the header" : "tensor " + prev.Name)}");
            at = e.End;
            prev = e;
        }
        if (at != dataLength) throw Bad($"data section has {dataLength} bytes but the tensors cover {at}");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_base != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
