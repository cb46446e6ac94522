namespace Cluster.Transport.Tests;

/// <summary>The one endpoint parser: what operators and plan files may write for a peer, and what they may not.</summary>
public class PeerAddressTests
{
    [Theory]
    [InlineData("127.0.0.1:5001", "http://127.0.0.1:5001/")]
    [InlineData("expert-3.experts.svc:50051", "http://expert-3.experts.svc:50051/")]
    [InlineData("[::1]:7000", "http://[::1]:7000/")]
    [InlineData("http://10.0.0.2:80", "http://10.0.0.2/")]
    [InlineData("https://10.0.0.2:443", "https://10.0.0.2/")]
    [InlineData("https://node:8443", "https://node:8443/")]
    [InlineData("https://node:8443/", "https://node:8443/")]
    public void Accepts(string endpoint, string expected)
    {
        Assert.True(PeerAddress.TryParse(endpoint, out Uri? address));
        Assert.Equal(expected, address.AbsoluteUri);
    }

    [Theory]
    [InlineData("")]
    [InlineData("nohost")]
    [InlineData("host:")]
    [InlineData("host:0")]
    [InlineData("host:65536")]
    [InlineData("http://host")]
    [InlineData("https://host")]
    [InlineData("http://host:1/path")]
    [InlineData("http://host:1/?q=1")]
    [InlineData("http://user@host:1")]
    [InlineData("ftp://host:21")]
    public void RejectsNamingTheField(string endpoint)
    {
        Assert.False(PeerAddress.TryParse(endpoint, out _));
        var e = Assert.Throws<FormatException>(() => PeerAddress.Parse(endpoint, "--attention-nodes"));
        Assert.Equal($"--attention-nodes: '{endpoint}' is not host:port", e.Message);
    }
}
