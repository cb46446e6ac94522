using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Cluster.Gateway.Tests;

/// <summary>
/// Clients that misbehave below the JSON: a sender that trickles its body (Kestrel's minimum data rate, 240 bytes/s
/// after a 5 s grace, ends it with 408 in OpenAI's shape), headers past Kestrel's 32 KB (431), a body past the
/// gateway's limit (413 in OpenAI's shape). None of them costs another client its answer.
/// </summary>
[Collection("cluster")]
public class HostileConnectionTests(ClusterFixture cluster)
{
    private const string Body = "{\"model\":\"tiny-test\",\"prompt\":[0,1],\"max_tokens\":1}";

    [Fact]
    public async Task A_sender_that_trickles_its_body_gets_408_and_others_are_served_meanwhile()
    {
        using var slow = await ConnectAsync();
        var stream = slow.GetStream();
        byte[] body = Encoding.ASCII.GetBytes(Body);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n"));
        var reply = ReadReplyAsync(stream);
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        int sent = 0;
        while (!reply.IsCompleted && DateTime.UtcNow < until && sent < body.Length - 1)
        {
            await stream.WriteAsync(body.AsMemory(sent++, 1));
            // Another client meanwhile is served at once.
            if (sent == 2)
            {
                var ok = await ApiClient.PostRawAsync(cluster.Http, "/v1/completions", Body);
                Assert.Equal(HttpStatusCode.OK, ok.Status);
            }
            await Task.WhenAny(reply, Task.Delay(1000));
        }
        Assert.True(reply.IsCompleted, "the trickling sender was never cut off");
        string text = await reply;
        Assert.StartsWith("HTTP/1.1 408", text);
        Assert.Contains("\"error\"", text);
        Assert.Equal(HttpStatusCode.OK, (await ApiClient.PostRawAsync(cluster.Http, "/v1/completions", Body)).Status);
    }

    [Fact]
    public async Task Headers_past_the_limit_are_431()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(Body, Encoding.UTF8, "application/json") };
        request.Headers.Add("x-padding", new string('a', 40 * 1024));
        using var response = await cluster.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await ApiClient.PostRawAsync(cluster.Http, "/v1/completions", Body)).Status);
    }

    [Fact]
    public async Task A_body_past_the_limit_is_413_in_openai_shape()
    {
        // Over a raw connection: the gateway answers as soon as the declared length is past its limit, and may close
        // while a client that insists on sending everything is still writing (a broken pipe that says nothing).
        using var client = await ConnectAsync();
        var stream = client.GetStream();
        int length = 2 << 20;
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"));
        await stream.WriteAsync(Encoding.ASCII.GetBytes("{\"model\":\"tiny-test\",\"max_tokens\":1,\"prompt\":\"" + new string('a', 64 * 1024)));
        string text = await ReadReplyAsync(stream).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.StartsWith("HTTP/1.1 413", text);
        Assert.Contains("\"error\"", text);
        Assert.Equal(HttpStatusCode.OK, (await ApiClient.PostRawAsync(cluster.Http, "/v1/completions", Body)).Status);
    }

    private async Task<TcpClient> ConnectAsync()
    {
        var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, cluster.Gateway.HttpPort);
        return client;
    }

    private static async Task<string> ReadReplyAsync(NetworkStream stream)
    {
        var buffer = new byte[8192];
        var text = new StringBuilder();
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer)) > 0)
            {
                text.Append(Encoding.ASCII.GetString(buffer, 0, n));
                if (text.ToString().Contains("}}")) break;
            }
        }
        catch (IOException) { }
        return text.ToString();
    }
}
