using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Cluster.Transport;
using Grpc.Health.V1;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;
using Grpc.Core;

namespace Cluster.Gateway.Tests;

/// <summary>The gateway's two listeners: TLS with HTTP/1.1 and h2 when given a certificate, and health on the gRPC port.</summary>
[Collection("cluster")]
public class ListenerTests(ClusterFixture cluster)
{
    [Fact]
    public async Task With_a_certificate_the_http_port_speaks_tls_with_http11_and_h2()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using X509Certificate2 cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));

        await using GatewayHost gateway = await GatewayHost.StartAsync(new GatewayOptions
        {
            ModelDir = TestModel.Dir, AttentionNodes = [cluster.NodeEndpoint], ModelId = "tiny-test", Certificate = cert,
        });
        using var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, c, _, _) => c is not null && c.GetCertHashString() == cert.GetCertHashString();
        using var http = new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{gateway.HttpPort}") };
        foreach (Version version in new[] { HttpVersion.Version11, HttpVersion.Version20 })
        {
            using var get = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
            using var response = await http.SendAsync(get);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(version, response.Version);
        }
        var reply = await ApiClient.PostAsync(http, "/v1/completions", new { model = "tiny-test", prompt = new[] { 0, 1 }, max_tokens = 2 });
        Assert.Equal(HttpStatusCode.OK, reply.Status);

        // Cleartext is refused on a TLS port.
        using var plain = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway.HttpPort}") };
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => plain.GetAsync("/healthz"));
    }

    [Fact]
    public async Task The_grpc_port_answers_health_checks_and_unimplemented_methods()
    {
        var health = await new Health.HealthClient(cluster.Grpc.Invoker).CheckAsync(new HealthCheckRequest());
        Assert.Equal(ServingStatus.Serving, health.Status);
        health = await new Health.HealthClient(cluster.Grpc.Invoker).CheckAsync(new HealthCheckRequest { Service = "cluster.v1.Inference" });
        Assert.Equal(ServingStatus.Serving, health.Status);
        var e = await Assert.ThrowsAsync<RpcException>(() => new Protos.V1.Echo.EchoClient(cluster.Grpc.Invoker).UnaryAsync(new Protos.V1.EchoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unimplemented, e.StatusCode);
    }

    [Fact]
    public async Task The_http_port_does_not_serve_grpc_and_the_grpc_port_not_http11()
    {
        // HTTP/1.1 only on the OpenAI port: a gRPC client (HTTP/2 prior knowledge) cannot talk to it.
        using (var channel = PeerChannel.ForAddress($"http://127.0.0.1:{cluster.Gateway.HttpPort}", new GrpcClientOptions { Resilience = null }))
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => new Protos.V1.Inference.InferenceClient(channel.Invoker).ListModelsAsync(new Protos.V1.ListModelsRequest()).ResponseAsync);
            Assert.NotEqual(StatusCode.OK, e.StatusCode);
        }
        // HTTP/2 only on the gRPC port: an HTTP/1.1 request gets no answer from the API.
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{cluster.Gateway.GrpcPort}") };
        try
        {
            using var response = await http.GetAsync("/v1/models");
            Assert.False(response.IsSuccessStatusCode, $"HTTP/1.1 on the gRPC port got {(int)response.StatusCode}");
        }
        catch (HttpRequestException) { }
    }
}
