using System.Buffers;

namespace Cluster.Transport;

/// <summary>
/// Decodes a message type whose large bytes fields land in pooled buffers instead of fresh arrays (a 1 MB field
/// would otherwise cost a zeroed large-object allocation per message on each side). A decoded message is valid until
/// it is given back to <see cref="Release"/>; <see cref="PooledReader{T}"/> does that when it reads the next one.
/// </summary>
public interface IPooledDecoder<T> where T : class
{
    /// <summary>The message in <paramref name="payload"/> (one whole uncompressed protobuf message).</summary>
    T Decode(in ReadOnlySequence<byte> payload);

    /// <summary>Returns the message's pooled buffers; the message must not be used afterwards.</summary>
    void Release(T message);
}
