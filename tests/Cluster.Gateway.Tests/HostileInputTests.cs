using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using static Cluster.Gateway.Tests.ApiClient;

namespace Cluster.Gateway.Tests;

/// <summary>Bodies that are not well-formed UTF-8 JSON, or that stretch the parser, are 400s in OpenAI's shape.</summary>
[Collection("cluster")]
public class HostileInputTests(ClusterFixture cluster)
{
    private const string Before = "{\"model\":\"tiny-test\",\"max_tokens\":2,\"messages\":[{\"role\":\"user\",\"content\":\"";
    private const string After = "\"}]}";

    private static byte[] ChatWithContentBytes(params byte[] content) =>
        [.. Encoding.ASCII.GetBytes(Before), .. content, .. Encoding.ASCII.GetBytes(After)];

    public static TheoryData<string, byte[]> Bodies() => new()
    {
        { "invalid UTF-8 continuation", ChatWithContentBytes(0x68, 0xC3, 0x28, 0x69) },
        { "a stray 0xFF byte", ChatWithContentBytes(0xFF) },
        { "a truncated 3-byte sequence", ChatWithContentBytes(0xE2, 0x82) },
        { "an overlong encoding of '/'", ChatWithContentBytes(0xC0, 0xAF) },
        { "an encoded surrogate", ChatWithContentBytes(0xED, 0xA0, 0x80) },
        { "a lone high surrogate escape", Encoding.ASCII.GetBytes(Before + "\\ud800" + After) },
        { "a lone low surrogate escape", Encoding.ASCII.GetBytes(Before + "x\\udc00y" + After) },
        { "a reversed surrogate pair", Encoding.ASCII.GetBytes(Before + "\\udc00\\ud800" + After) },
        { "invalid UTF-8 in a property name", [.. "{\"model\":\"tiny-test\",\""u8.ToArray(), 0xFE, .. "\":1,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"u8.ToArray()] },
        { "a lone surrogate in the model", Encoding.ASCII.GetBytes("{\"model\":\"\\ud800\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}") },
        { "a lone surrogate in a role", Encoding.ASCII.GetBytes("{\"model\":\"tiny-test\",\"messages\":[{\"role\":\"\\udfff\",\"content\":\"hi\"}]}") },
        { "a lone surrogate in stop", Encoding.ASCII.GetBytes("{\"model\":\"tiny-test\",\"stop\":[\"\\ud800\"],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}") },
        { "duplicate keys", Encoding.ASCII.GetBytes("{\"model\":\"tiny-test\",\"model\":\"other\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}") },
        { "nesting deeper than the limit", Encoding.ASCII.GetBytes("{\"model\":\"tiny-test\",\"x\":" + new string('[', 200) + new string(']', 200) + ",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}") },
        { "a huge max_tokens", Encoding.ASCII.GetBytes("{\"model\":\"tiny-test\",\"max_tokens\":1e400,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}") },
        { "a huge temperature", Encoding.ASCII.GetBytes("{\"model\":\"tiny-test\",\"temperature\":1e400,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}") },
        { "a 400-digit seed", Encoding.ASCII.GetBytes("{\"model\":\"tiny-test\",\"seed\":" + new string('9', 400) + ",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}") },
        { "a NUL byte outside a string", [.. "{\"model\":\"tiny-test\","u8.ToArray(), 0x00, .. "\"messages\":[]}"u8.ToArray()] },
        { "a UTF-8 byte order mark then garbage", [0xEF, 0xBB, 0xBF, 0xFF, 0xFE] },
    };

    [Theory]
    [MemberData(nameof(Bodies))]
    public async Task Malformed_bodies_are_400_in_openai_shape(string what, byte[] body)
    {
        foreach (string path in new[] { "/v1/chat/completions", "/v1/completions" })
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using var response = await cluster.Http.PostAsync(path, content);
            string text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{what} on {path}: {(int)response.StatusCode} {text}");
            JsonElement error = JsonDocument.Parse(text).RootElement.GetProperty("error");
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        }
        // The gateway still serves a well-formed request afterwards.
        var ok = await PostRawAsync(cluster.Http, "/v1/completions", "{\"model\":\"tiny-test\",\"prompt\":[0,1],\"max_tokens\":1}");
        Assert.Equal(HttpStatusCode.OK, ok.Status);
    }

    [Fact]
    public async Task A_valid_surrogate_pair_and_multibyte_text_are_accepted()
    {
        var reply = await PostRawAsync(cluster.Http, "/v1/chat/completions",
            "{\"model\":\"tiny-test\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"caf\u00e9 \\ud83d\\ude00 \u4e2d\"}]}");
        Assert.True(reply.Status == HttpStatusCode.OK, reply.Text);
    }
}
