using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Cluster.Protos.V1;
using Cluster.Transport;
using Cluster.Transport.Legacy;
using Cluster.Transport.Legacy.Health;
using Cluster.Transport.Legacy.Services;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace Cluster.Transport.Legacy.Tests;

/// <summary>gRPC over TLS: HTTP/2 chosen by ALPN, the client trusting exactly the server's self-signed certificate.</summary>
public class TlsTests
{
    [Fact]
    public async Task AllCallTypesOverTls()
    {
        using var certificate = SelfSigned();
        await using var server = await GrpcServer.StartAsync(new GrpcServerOptions { Certificate = certificate }, new EchoService(), new HealthService());
        Assert.Equal("https", server.Address.Scheme);
        using var channel = GrpcChannel.ForAddress(server.Address, new GrpcChannelOptions
        {
            ServerCertificateValidation = (_, cert, _, _) => cert is not null && cert.GetCertHashString() == certificate.GetCertHashString(),
        });
        var options = new CallOptions { Timeout = TimeSpan.FromSeconds(10) };
        Assert.Equal("tls", (await channel.UnaryAsync(EchoMethods.Unary, new EchoRequest { Text = "tls" }, options)).Text);
        Assert.Equal(ServingStatus.Serving, (await new HealthClient(channel).CheckAsync("", options)).Status);
        using var call = channel.DuplexStreaming(EchoMethods.Bidi, options);
        await call.RequestStream.WriteAsync(new EchoRequest { Text = "b" });
        Assert.True(await call.ResponseStream.MoveNext());
        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext());
    }

    [Fact]
    public async Task GrpcJsClientOverTls()
    {
        using var certificate = SelfSigned();
        await using var server = await GrpcServer.StartAsync(new GrpcServerOptions { Certificate = certificate }, new EchoService(), new HealthService());
        string input = System.Text.Json.JsonSerializer.Serialize(new { target = $"localhost:{server.Port}", ca = certificate.ExportCertificatePem() });
        string output = await Task.Run(() => Cluster.Tests.Repo.RunNode(Path.Combine(Cluster.Tests.Repo.Root, "tests/Cluster.Transport.Tests/node/tls_client.js"), input, timeoutMs: 60_000));
        Assert.Equal("{\"echo\":\"over tls\",\"health\":\"SERVING\"}", output.Trim());
    }

    [Fact]
    public async Task Http11RequestToAGrpcMethodIsUpgradeRequired()
    {
        using var certificate = SelfSigned();
        await using var server = await GrpcServer.StartAsync(new GrpcServerOptions { Certificate = certificate }, new EchoService());
        using var http = new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true } });
        var content = new ByteArrayContent([0, 0, 0, 0, 0]);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server.Address, EchoMethods.Unary.FullName)) { Version = HttpVersion.Version11, Content = content };
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.UpgradeRequired, response.StatusCode);
        Assert.Equal("13", response.Headers.GetValues("grpc-status").Single());
    }

    [Fact]
    public async Task UntrustedCertificateIsUnavailable()
    {
        using var certificate = SelfSigned();
        await using var server = await GrpcServer.StartAsync(new GrpcServerOptions { Certificate = certificate }, new EchoService());
        using var channel = GrpcChannel.ForAddress(server.Address, new GrpcChannelOptions { Resilience = null });
        var e = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(EchoMethods.Unary, new EchoRequest(), new CallOptions { Timeout = TimeSpan.FromSeconds(10) }));
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
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
