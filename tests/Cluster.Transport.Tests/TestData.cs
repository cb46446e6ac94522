using Google.Protobuf;

namespace Cluster.Transport.Tests;

/// <summary>Deadlines and payloads the tests share.</summary>
public static class TestData
{
    /// <summary>A deadline that bounds a call on a loaded machine without ever being what a test measures.</summary>
    public static DateTime In(double seconds) => DateTime.UtcNow.AddSeconds(seconds);

    /// <summary>n bytes where byte i is i*7 mod 256: a payload whose corruption or truncation a comparison shows.</summary>
    public static ByteString Pattern(int n)
    {
        var bytes = new byte[n];
        for (int i = 0; i < n; i++) bytes[i] = (byte)(i * 7);
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }
}
