using System.Security.Cryptography.X509Certificates;
using Cluster.Protos.V1;
using Grpc.Core;

namespace Cluster.Transport.Tests;

/// <summary>
/// The cluster token over the cluster's TLS: a server with a certificate from the cluster CA serves callers that
/// check it against that CA and present the token; a cleartext caller, a caller trusting another CA, and a caller
/// over TLS without the token are refused; a directory that does not hold a matching CA, certificate and key is a
/// clear error naming the file.
/// </summary>
public sealed class ClusterTlsTests : IAsyncLifetime, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-tls-").FullName;
    private ClusterToken _token = null!;
    private GrpcServer _server = null!;

    public async Task InitializeAsync()
    {
        _token = ClusterToken.Generate().WithTls(ClusterTls.Generate(Path.Combine(_dir, "cluster")));
        _server = await TestServer.StartAsync(new GrpcServerOptions { Certificate = _token.Tls!.Certificate, ClusterToken = _token });
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    public void Dispose() => Directory.Delete(_dir, true);

    private string PlainAddress => $"http://127.0.0.1:{_server.Port}";

    private static Task<EchoReply> EchoAsync(PeerChannel peer) =>
        new Echo.EchoClient(peer.Invoker).UnaryAsync(new EchoRequest { Text = "hi" }, deadline: TestData.In(10)).ResponseAsync;

    [Fact]
    public async Task ACallerWithTheCaAndTheTokenIsServedAndAHostPortAddressMeansTls()
    {
        // host:port as plan files write it: inside a cluster with TLS the channel dials it with TLS.
        using var peer = PeerChannel.ForAddress(PlainAddress, new GrpcClientOptions { Resilience = null, ClusterToken = _token });
        Assert.Equal(Uri.UriSchemeHttps, peer.Address.Scheme);
        Assert.Equal("hi", (await EchoAsync(peer)).Text);
    }

    [Fact]
    public async Task ACleartextCallerIsRefused()
    {
        using var peer = PeerChannel.ForAddress(PlainAddress, new GrpcClientOptions { Resilience = null, ClusterToken = ClusterToken.Parse(_token.Value, "test") });
        var e = await Assert.ThrowsAsync<RpcException>(() => EchoAsync(peer));
        Assert.NotEqual(StatusCode.OK, e.StatusCode);
    }

    [Fact]
    public async Task ACallerTrustingAnotherCaRefusesTheServer()
    {
        ClusterToken other = ClusterToken.Parse(_token.Value, "test").WithTls(ClusterTls.Generate(Path.Combine(_dir, "other")));
        using var peer = PeerChannel.ForAddress(PlainAddress, new GrpcClientOptions { Resilience = null, ClusterToken = other });
        var e = await Assert.ThrowsAsync<RpcException>(() => EchoAsync(peer));
        // Grpc.Net.Client reports a failed handshake as INTERNAL with the handshake's error.
        Assert.Equal(StatusCode.Internal, e.StatusCode);
        Assert.Contains("SSL connection could not be established", e.Status.Detail);
    }

    [Fact]
    public async Task ACallerOverTlsWithoutTheTokenIsUnauthenticated()
    {
        using var peer = PeerChannel.ForAddress(_server.Address, new GrpcClientOptions { Resilience = null, ServerCertificateValidation = _token.Tls!.Validate });
        var e = await Assert.ThrowsAsync<RpcException>(() => EchoAsync(peer));
        Assert.Equal(StatusCode.Unauthenticated, e.StatusCode);
    }

    [Fact]
    public void ADirectoryWithoutAMatchingCaCertificateAndKeyIsAClearError()
    {
        string a = Path.Combine(_dir, "a"), b = Path.Combine(_dir, "b"), mixed = Path.Combine(_dir, "mixed");
        ClusterTls.Generate(a);
        ClusterTls.Generate(b);

        var missing = Assert.Throws<FileNotFoundException>(() => ClusterTls.Load(Path.Combine(_dir, "none")));
        Assert.Contains(ClusterTls.CaFile, missing.Message);

        // A certificate from another CA.
        Directory.CreateDirectory(mixed);
        File.Copy(Path.Combine(a, ClusterTls.CaFile), Path.Combine(mixed, ClusterTls.CaFile));
        File.Copy(Path.Combine(b, ClusterTls.CertificateFile), Path.Combine(mixed, ClusterTls.CertificateFile));
        File.Copy(Path.Combine(b, ClusterTls.KeyFile), Path.Combine(mixed, ClusterTls.KeyFile));
        var foreign = Assert.Throws<FormatException>(() => ClusterTls.Load(mixed));
        Assert.Contains("is not signed by", foreign.Message);

        // A key that is not the certificate's.
        File.Copy(Path.Combine(a, ClusterTls.CertificateFile), Path.Combine(mixed, ClusterTls.CertificateFile), overwrite: true);
        var key = Assert.Throws<FormatException>(() => ClusterTls.Load(mixed));
        Assert.Contains(ClusterTls.KeyFile, key.Message);
    }

    [Fact]
    public void TheGeneratedKeysAreTheOwnersAloneAndTheCertificateNamesLoopback()
    {
        ClusterTls tls = ClusterTls.Generate(Path.Combine(_dir, "g"), ["node-0.example"]);
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(tls.Directory, ClusterTls.KeyFile)));
        var names = tls.Certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Contains("node-0.example", names.EnumerateDnsNames());
        Assert.Contains(System.Net.IPAddress.Loopback, names.EnumerateIPAddresses());
        Assert.True(tls.Certificate.HasPrivateKey);
    }

    [Fact]
    public async Task ARenewedCertificateIsServedWithoutARestart()
    {
        string dir = Path.Combine(_dir, "renewing");
        ClusterTls tls = ClusterTls.Generate(dir);
        var token = ClusterToken.Generate().WithTls(tls);
        TimeSpan recheck = ClusterTls.RecheckInterval;
        ClusterTls.RecheckInterval = TimeSpan.Zero;
        try
        {
            await using GrpcServer server = await TestServer.StartAsync(new GrpcServerOptions { ClusterToken = token });
            string first = await ServedThumbprintAsync(server, token);
            Assert.Equal(tls.Certificate.Thumbprint, first);

            // What cert-manager does before the certificate expires: a new key and certificate from the same CA.
            string renewed = Renew(dir);
            string second = await ServedThumbprintAsync(server, token);
            Assert.NotEqual(first, second);
            Assert.Equal(renewed, second);
        }
        finally { ClusterTls.RecheckInterval = recheck; }
    }

    /// <summary>The thumbprint of the certificate a fresh connection to <paramref name="server"/> was served, after a call it accepted.</summary>
    private static async Task<string> ServedThumbprintAsync(GrpcServer server, ClusterToken token)
    {
        string? served = null;
        using var peer = PeerChannel.ForAddress($"http://127.0.0.1:{server.Port}", new GrpcClientOptions
        {
            Resilience = null,
            ClusterToken = token,
            ServerCertificateValidation = (sender, certificate, chain, errors) =>
            {
                served = certificate is null ? null : X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()).Thumbprint;
                return token.Tls!.Validate(sender, certificate, chain, errors);
            },
        });
        Assert.Equal("hi", (await EchoAsync(peer)).Text);
        return served!;
    }

    /// <summary>Writes a new key and certificate signed by the directory's CA over tls.key and tls.crt; returns its thumbprint.</summary>
    private static string Renew(string dir)
    {
        using X509Certificate2 ca = X509Certificate2.CreateFromPemFile(Path.Combine(dir, ClusterTls.CaFile), Path.Combine(dir, "ca.key"));
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=cluster node (renewed)", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.1")], false));
        DateTimeOffset now = DateTimeOffset.UtcNow.AddMinutes(-5);
        using X509Certificate2 leaf = request.Create(ca, now, now.AddDays(90), System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        File.WriteAllText(Path.Combine(dir, ClusterTls.KeyFile), key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(Path.Combine(dir, ClusterTls.CertificateFile), leaf.ExportCertificatePem());
        return leaf.Thumbprint;
    }
}
