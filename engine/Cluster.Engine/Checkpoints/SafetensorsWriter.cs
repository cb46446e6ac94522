using System.Text;
using System.Text.Json;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Checkpoints;

/// <summary>The header line of one tensor to be written.</summary>
public sealed record TensorHeader(string Name, DType DType, int[] Shape)
{
    public long ByteLength => Shape.Elements() * DType.Size();
}

/// <summary>
/// Streams one .safetensors file: the header (with every offset) is written first, then each tensor's bytes in the
/// order given, so a file of many GB never has to be in memory at once. The JSON header is padded with spaces so
/// the data section starts 8-byte aligned; tensors are contiguous (the format forbids holes).
/// </summary>
public sealed class SafetensorsWriter : IDisposable
{
    private readonly FileStream _stream;
    private readonly IReadOnlyList<TensorHeader> _tensors;
    private int _next;

    public string Path { get; }

    public SafetensorsWriter(string path, IReadOnlyList<TensorHeader> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        Path = path;
        _tensors = tensors;
        byte[] header = Header(tensors, metadata);
        _stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        _stream.Write(BitConverter.GetBytes((long)header.Length));
        _stream.Write(header);
    }

    /// <summary>Writes the next tensor's bytes; names and lengths must follow the header's order.</summary>
    public void Write(string name, ReadOnlySpan<byte> bytes)
    {
        if (_next >= _tensors.Count) throw new InvalidOperationException($"{Path}: tensor {name} is not in the header");
        TensorHeader t = _tensors[_next];
        if (t.Name != name) throw new InvalidOperationException($"{Path}: expected tensor {t.Name} next, got {name}");
        if (bytes.Length != t.ByteLength) throw new InvalidOperationException($"{Path}: tensor {name} has {bytes.Length} bytes, header says {t.ByteLength}");
        _stream.Write(bytes);
        _next++;
    }

    /// <summary>Flushes the file; fails if a tensor announced in the header was not written.</summary>
    public void Complete()
    {
        if (_next != _tensors.Count) throw new InvalidOperationException($"{Path}: {_tensors.Count - _next} tensors announced but not written");
        _stream.Flush(flushToDisk: false);
    }

    public void Dispose() => _stream.Dispose();

    private static byte[] Header(IReadOnlyList<TensorHeader> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal)) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long at = 0;
            foreach (TensorHeader t in tensors)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", t.DType.SafetensorsName());
                w.WriteStartArray("shape");
                foreach (int d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(at);
                w.WriteNumberValue(at + t.ByteLength);
                w.WriteEndArray();
                w.WriteEndObject();
                at += t.ByteLength;
            }
            w.WriteEndObject();
        }
        int pad = (int)((8 - ms.Length % 8) % 8);
        ms.Write(Encoding.ASCII.GetBytes(new string(' ', pad)));
        return ms.ToArray();
    }
}
