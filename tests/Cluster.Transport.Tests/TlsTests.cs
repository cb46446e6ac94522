using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Cluster.Protos.V1;
using Cluster.Tests;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.HealthCheck;
using Microsoft.Extensions.DependencyInjection;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cluster.Transport.Tests;

/// <summary>Our server on TLS with a self-signed certificate (h2 by ALPN), and a PeerChannel that trusts exactly that certificate.</summary>
public sealed class TlsServer : IAsyncLifetime
{
    public X509Certificate2 Certificate { get; } = SelfSigned();
    public GrpcServer Server { get; private set; } = null!;
    public PeerChannel Peer { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await TestServer.StartAsync(new GrpcServerOptions { Certificate = Certificate });
        new RoleHealth(Server.Services.GetRequiredService<HealthServiceImpl>()).MarkServing();
        string hash = Certificate.GetCertHashString();
        Peer = PeerChannel.ForAddress(Server.Address, new GrpcClientOptions
        {
            ServerCertificateValidation = (_, cert, _, _) => cert is not null && cert.GetCertHashString() == hash,
        });
    }

    public async Task DisposeAsync()
    {
        Peer.Dispose();
        await Server.DisposeAsync();
        Certificate.Dispose();
    }

    private static X509Certificate2 SelfSigned()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        // Kestrel needs the key in a form SslStream can use on every platform: round-trip through PKCS#12.
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pfx), null);
    }
}

/// <summary>gRPC over TLS: every call type with our client, grpc-js's client, and what an untrusted or HTTP/1.1 client gets.</summary>
public class TlsTests(TlsServer tls) : EchoCallTypeTests, IClassFixture<TlsServer>
{
    protected override Echo.EchoClient Echo => new(tls.Peer.Invoker);

    [Fact]
    public async Task TheServerSpeaksTlsAndHealthAnswersOverIt()
    {
        Assert.Equal("https", tls.Server.Address.Scheme);
        var health = new Health.HealthClient(tls.Peer.Invoker);
        Assert.Equal(ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest(), deadline: TestData.In(10))).Status);
    }

    /// <summary>
    /// grpc-dotnet 2.85 reports a failed TLS handshake as INTERNAL ("Error starting gRPC call ... The SSL connection
    /// could not be established"), not UNAVAILABLE as the old layer and grpc-core do; it is no transient failure, so
    /// resilience rightly never retries it.
    /// </summary>
    [Fact]
    public async Task UntrustedCertificateFailsTheCallAsInternal()
    {
        using var peer = PeerChannel.ForAddress(tls.Server.Address, new GrpcClientOptions { Resilience = null });
        var e = await Assert.ThrowsAsync<RpcException>(() => new Echo.EchoClient(peer.Invoker).UnaryAsync(new EchoRequest(), deadline: TestData.In(20)).ResponseAsync);
        Assert.Equal(StatusCode.Internal, e.StatusCode);
        Assert.Contains("The SSL connection could not be established", e.Status.Detail);
        Assert.IsType<System.Security.Authentication.AuthenticationException>(e.Status.DebugException?.InnerException);
    }

    [Fact]
    public async Task GrpcJsClientOverTls()
    {
        string input = System.Text.Json.JsonSerializer.Serialize(new { target = $"localhost:{tls.Server.Port}", ca = tls.Certificate.ExportCertificatePem() });
        string output = await Task.Run(() => Repo.RunNode(Path.Combine(Repo.Root, "tests/Cluster.Transport.Tests/node/tls_client.js"), input, timeoutMs: 60_000));
        Assert.Equal("{\"echo\":\"over tls\",\"health\":\"SERVING\"}", output.Trim());
    }

    /// <summary>grpc-dotnet refuses gRPC over HTTP/1.1 (the TLS listener offers it by ALPN for other endpoints) with 426 and INTERNAL.</summary>
    [Fact]
    public async Task Http11RequestToAGrpcMethodIsUpgradeRequired()
    {
        using var http = new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true } });
        var content = new ByteArrayContent([0, 0, 0, 0, 0]);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(tls.Server.Address, TestServer.UnaryMethod)) { Version = HttpVersion.Version11, Content = content };
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.UpgradeRequired, response.StatusCode);
        Assert.Equal("13", response.Headers.GetValues("grpc-status").Single());
    }
}
