using System.Buffers;
using System.Text;

namespace Cluster.Tokenizer;

/// <summary>
/// Turns ids arriving one at a time into text, emitting only whole characters: bytes of a UTF-8 sequence that a later
/// token may complete are held back. The concatenated output equals <see cref="Tokenizer.Decode"/> of all the ids.
/// One instance per stream; not thread-safe.
/// </summary>
public sealed class StreamingDetokenizer(Tokenizer tokenizer, bool skipSpecialTokens = false)
{
    private readonly byte[] _pending = new byte[4]; // an incomplete UTF-8 sequence is at most 3 bytes
    private int _pendingCount;
    private readonly StringBuilder _text = new();

    /// <summary>The text this token completes, possibly empty.</summary>
    public string Push(int id)
    {
        if (skipSpecialTokens && tokenizer.IsSpecial(id)) return "";
        byte[] bytes = tokenizer.TokenBytes(id);
        if (_pendingCount == 0) return DecodeComplete(bytes);
        byte[] joined = ArrayPool<byte>.Shared.Rent(_pendingCount + bytes.Length);
        try
        {
            _pending.AsSpan(0, _pendingCount).CopyTo(joined);
            bytes.CopyTo(joined, _pendingCount);
            return DecodeComplete(joined.AsSpan(0, _pendingCount + bytes.Length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(joined);
        }
    }

    /// <summary>Ends the stream: held bytes that never completed a character become U+FFFD.</summary>
    public string Flush()
    {
        string rest = _pendingCount == 0 ? "" : Encoding.UTF8.GetString(_pending, 0, _pendingCount);
        _pendingCount = 0;
        return rest;
    }

    private string DecodeComplete(ReadOnlySpan<byte> bytes)
    {
        _text.Clear();
        while (!bytes.IsEmpty)
        {
            OperationStatus status = Rune.DecodeFromUtf8(bytes, out Rune rune, out int consumed);
            if (status == OperationStatus.NeedMoreData)
            {
                // A valid but unfinished sequence at the end: keep it for the next token.
                bytes.CopyTo(_pending);
                _pendingCount = bytes.Length;
                return _text.ToString();
            }
            // Invalid data decodes to U+FFFD per maximal invalid subsequence, as Encoding.UTF8 does for Decode.
            _text.Append(status == OperationStatus.Done ? rune : Rune.ReplacementChar);
            bytes = bytes[consumed..];
        }
        _pendingCount = 0;
        return _text.ToString();
    }
}
