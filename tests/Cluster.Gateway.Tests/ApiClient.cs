using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Cluster.Gateway.Tests;

/// <summary>Small helpers for driving the gateway's HTTP API the way a client does.</summary>
public static class ApiClient
{
    public sealed record Reply(HttpStatusCode Status, JsonElement Body, string Text);

    public static async Task<Reply> PostAsync(HttpClient http, string path, object body) =>
        await PostRawAsync(http, path, JsonSerializer.Serialize(body));

    public static async Task<Reply> PostRawAsync(HttpClient http, string path, string json)
    {
        using var response = await http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        return new Reply(response.StatusCode, text.Length > 0 && text[0] == '{' ? JsonDocument.Parse(text).RootElement : default, text);
    }

    /// <summary>Posts a streaming request and returns each event's data, [DONE] included.</summary>
    public static async Task<List<string>> StreamAsync(HttpClient http, string path, object body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json") };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = new List<string>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        await foreach (string data in ReadEventsAsync(reader)) events.Add(data);
        return events;
    }

    public static async IAsyncEnumerable<string> ReadEventsAsync(StreamReader reader)
    {
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.Length == 0) continue;
            Assert.StartsWith("data: ", line);
            // Every event is followed by a blank line.
            Assert.Equal("", await reader.ReadLineAsync());
            yield return line["data: ".Length..];
        }
    }

    /// <summary>Asserts OpenAI's error shape and returns the error object.</summary>
    public static JsonElement AssertError(Reply reply, HttpStatusCode status, string? param = null)
    {
        Assert.True(status == reply.Status, $"expected {(int)status}, got {(int)reply.Status}: {reply.Text}");
        JsonElement error = reply.Body.GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.Equal(JsonValueKind.String, error.GetProperty("type").ValueKind);
        Assert.True(error.TryGetProperty("code", out _));
        JsonElement p = error.GetProperty("param");
        if (param is null) Assert.Equal(JsonValueKind.Null, p.ValueKind);
        else Assert.Equal(param, p.GetString());
        return error;
    }

    /// <summary>A loopback port nothing listens on.</summary>
    public static int DeadPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public static string Content(JsonElement chatCompletion) =>
        chatCompletion.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
}
