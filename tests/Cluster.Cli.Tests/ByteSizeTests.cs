namespace Cluster.Cli.Tests;

/// <summary>Sizes as --kv-cache-bytes takes them: plain bytes or K/M/G/T and KiB/MiB/GiB/TiB, all powers of 1024.</summary>
public sealed class ByteSizeTests
{
    [Theory]
    [InlineData("0", 0L)]
    [InlineData("4096", 4096L)]
    [InlineData("64K", 64L << 10)]
    [InlineData("64k", 64L << 10)]
    [InlineData("64KiB", 64L << 10)]
    [InlineData("512M", 512L << 20)]
    [InlineData("512MiB", 512L << 20)]
    [InlineData("512mib", 512L << 20)]
    [InlineData("1G", 1L << 30)]
    [InlineData("1GiB", 1L << 30)]
    [InlineData("1.5G", 3L << 29)]
    [InlineData("0.5 GiB", 1L << 29)]
    [InlineData("2T", 2L << 40)]
    [InlineData(" 8M ", 8L << 20)]
    public void Parses(string text, long bytes)
    {
        Assert.True(ByteSize.TryParse(text, out long parsed), text);
        Assert.Equal(bytes, parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData("G")]
    [InlineData("-1")]
    [InlineData("1.5")]
    [InlineData("12X")]
    [InlineData("1GB")]
    [InlineData("1Gi")]
    [InlineData("1.2.3M")]
    [InlineData("1e9")]
    [InlineData("99999999999T")]
    [InlineData("99999999999999999999")]
    public void Refuses(string text) => Assert.False(ByteSize.TryParse(text, out _), text);
}
