using System.Text.Json;
using Cluster.Tests;

namespace Cluster.Gateway.Tests;

/// <summary>The official openai npm client against the gateway: streaming, whole answers, the model list and errors.</summary>
[Collection("cluster")]
public class OpenAiClientTests(ClusterFixture cluster)
{
    [Fact]
    public async Task The_openai_client_streams_a_chat_completion()
    {
        string script = Path.Combine(AppContext.BaseDirectory, "node", "openai_client.js");
        string input = JsonSerializer.Serialize(new { baseURL = $"http://127.0.0.1:{cluster.Gateway.HttpPort}/v1", model = cluster.ModelId, question = "Why is the sky blue?", maxTokens = 12 });
        string stdout = await Task.Run(() => Repo.RunNode(script, input, timeoutMs: 120_000));
        JsonElement seen = JsonDocument.Parse(stdout).RootElement;

        JsonElement streamed = seen.GetProperty("streamed");
        Assert.Equal("assistant", streamed.GetProperty("role").GetString());
        Assert.Equal("length", streamed.GetProperty("finishReason").GetString());
        Assert.Equal(12, streamed.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.True(streamed.GetProperty("chunks").GetInt32() >= 3);
        string content = streamed.GetProperty("content").GetString()!;
        Assert.NotEmpty(content);

        JsonElement whole = seen.GetProperty("whole");
        Assert.Equal(content, whole.GetProperty("content").GetString());
        Assert.Equal(streamed.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), whole.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        Assert.Equal([cluster.ModelId], seen.GetProperty("models").EnumerateArray().Select(m => m.GetString()));

        JsonElement error = seen.GetProperty("error");
        Assert.Equal(404, error.GetProperty("status").GetInt32());
        Assert.True(error.GetProperty("isNotFound").GetBoolean());
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
        Assert.Equal("model", error.GetProperty("param").GetString());
    }
}
