using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Cluster.AttentionNode.Transfer;

/// <summary>
/// The 64-bit checksum of a KV transfer: every slice's data bytes in the order sent, slice by slice (the slice
/// lengths take part, so both sides must append the same slices). It guards against corruption and lost or
/// reordered slices, not against an adversary: an xxHash64-style round per 8-byte word.
/// </summary>
public sealed class KvChecksum
{
    private const ulong Prime1 = 0x9E3779B185EBCA87UL, Prime2 = 0xC2B2AE3D27D4EB4FUL, Prime3 = 0x165667B19E3779F9UL;
    private ulong _state = Prime3;

    public void Append(ReadOnlySpan<byte> data)
    {
        ulong h = _state;
        ReadOnlySpan<ulong> words = MemoryMarshal.Cast<byte, ulong>(data);
        foreach (ulong w in words) h = Round(h, BitConverter.IsLittleEndian ? w : BinaryPrimitives.ReverseEndianness(w));
        ReadOnlySpan<byte> tail = data[(words.Length * sizeof(ulong))..];
        if (tail.Length > 0)
        {
            Span<byte> last = stackalloc byte[sizeof(ulong)];
            last.Clear();
            tail.CopyTo(last);
            h = Round(h, BinaryPrimitives.ReadUInt64LittleEndian(last));
        }
        _state = Round(h, (ulong)data.Length);
    }

    /// <summary>The checksum of everything appended so far.</summary>
    public ulong Value
    {
        get
        {
            ulong h = _state;
            h ^= h >> 33;
            h *= Prime2;
            h ^= h >> 29;
            h *= Prime3;
            return h ^ (h >> 32);
        }
    }

    private static ulong Round(ulong h, ulong word) => BitOperations.RotateLeft(h ^ (word * Prime2), 31) * Prime1;
}
