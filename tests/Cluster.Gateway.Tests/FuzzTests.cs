using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Cluster.Gateway.Tests;

/// <summary>
/// Thousands of mutations of valid requests against a running gateway: structural ones (a field removed, a value of
/// another JSON type, an extreme number, a huge or empty string, a nested object where a scalar goes) and byte-level
/// ones (a byte flipped, inserted or dropped, the body cut short). Whatever a mutation makes, the gateway answers
/// with 2xx or a 4xx in OpenAI's error shape, never a 5xx, and still serves a plain request at the end. The mutations
/// come from a fixed seed, so a failure names a body that reproduces it.
/// </summary>
[Collection("cluster")]
public class FuzzTests(ClusterFixture cluster, Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Mutations = 2000;
    private const int Parallel = 4;

    private static readonly string[] Seeds =
    [
        """{"model":"tiny-test","max_tokens":3,"temperature":0.7,"top_p":0.9,"seed":5,"stop":["x"],"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi there"}]}""",
        """{"model":"tiny-test","max_tokens":2,"stream":true,"stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":2,"messages":[{"role":"user","content":[{"type":"text","text":"hello"}]}]}""",
        """{"model":"tiny-test","max_tokens":2,"n":1,"presence_penalty":0,"frequency_penalty":0,"user":"u1","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}""",
    ];

    private static readonly string[] CompletionSeeds =
    [
        """{"model":"tiny-test","prompt":"The capital of France is","max_tokens":3,"temperature":0,"echo":false}""",
        """{"model":"tiny-test","prompt":[0,1,2,3],"max_tokens":2,"stream":true,"seed":1,"stop":"\n"}""",
    ];

    private static readonly JsonNode?[] Replacements =
    [
        null, true, false, 0, -1, 1e308, -1e308, 4294967296L, long.MaxValue, 0.5, "", "x", new string('a', 20000), "\u0000",
        "\uD83D\uDE00", new JsonArray(), new JsonArray(1, 2), new JsonObject(), new JsonObject { ["a"] = 1 },
        new JsonArray(new JsonObject { ["role"] = "user" }), new JsonArray(new JsonArray(new JsonArray())),
    ];

    [Fact]
    public async Task Mutated_requests_never_get_a_5xx_and_the_gateway_keeps_serving()
    {
        var rng = new Random(20261203);
        var bodies = new (string Path, byte[] Body)[Mutations];
        for (int i = 0; i < bodies.Length; i++)
        {
            bool chat = rng.Next(3) != 0;
            string seed = chat ? Seeds[rng.Next(Seeds.Length)] : CompletionSeeds[rng.Next(CompletionSeeds.Length)];
            bodies[i] = (chat ? "/v1/chat/completions" : "/v1/completions", rng.Next(2) == 0 ? Structural(seed, rng) : ByteLevel(seed, rng));
        }

        var failures = new List<string>();
        int next = -1, accepted = 0, refused = 0;
        async Task Worker()
        {
            while (Interlocked.Increment(ref next) is int i && i < bodies.Length)
            {
                var (path, body) = bodies[i];
                var (status, text) = await SendAsync(path, body);
                if ((int)status >= 200 && (int)status < 300) Interlocked.Increment(ref accepted);
                else if ((int)status >= 400 && (int)status < 500 && text.Contains("\"error\"") && text.Contains("\"message\"")) Interlocked.Increment(ref refused);
                else lock (failures) failures.Add($"#{i} {path} -> {(int)status} {Cut(text)} for body {Cut(Encoding.UTF8.GetString(body))}");
            }
        }
        var workers = new Task[Parallel];
        for (int w = 0; w < workers.Length; w++) workers[w] = Worker();
        await Task.WhenAll(workers);

        output.WriteLine($"{accepted} accepted, {refused} refused, {failures.Count} failed");
        Assert.True(failures.Count == 0, $"{failures.Count} of {Mutations} mutations were not 2xx or a 4xx in OpenAI's shape:\n" + string.Join("\n", failures.Take(20)));
        // A fuzzer that only ever produced valid, or only invalid, requests would prove little.
        Assert.True(accepted > Mutations / 20, $"only {accepted} mutations were accepted");
        Assert.True(refused > Mutations / 5, $"only {refused} mutations were refused");
        var ok = await ApiClient.PostRawAsync(cluster.Http, "/v1/completions", "{\"model\":\"tiny-test\",\"prompt\":[0,1],\"max_tokens\":1}");
        Assert.Equal(HttpStatusCode.OK, ok.Status);
        await cluster.WaitIdleAsync();
    }

    private async Task<(HttpStatusCode, string)> SendAsync(string path, byte[] body)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        // No answer within the limit is a failure of its own, reported with the body that caused it.
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        HttpResponseMessage response;
        string text;
        try
        {
            response = await cluster.Http.PostAsync(path, content, limit.Token);
            // A streamed reply is read to its end: a failure after the headers must show up too.
            text = await response.Content.ReadAsStringAsync(limit.Token);
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested)
        {
            return (HttpStatusCode.GatewayTimeout, "no complete answer within 45 s");
        }
        using var _ = response;
        if (response.IsSuccessStatusCode && text.Contains("data: {\"error\"")) return (HttpStatusCode.InternalServerError, text);
        return (response.StatusCode, text);
    }

    /// <summary>One to three edits of the parsed request: a field replaced, removed, or added, at any depth.</summary>
    private static byte[] Structural(string seed, Random rng)
    {
        JsonNode root = JsonNode.Parse(seed)!;
        int edits = 1 + rng.Next(3);
        for (int e = 0; e < edits; e++)
        {
            var (parent, key) = Pick(root, rng);
            JsonNode? replacement = Replacements[rng.Next(Replacements.Length)]?.DeepClone();
            switch (parent)
            {
                case JsonObject o when rng.Next(4) == 0: o.Remove(key!); break;
                case JsonObject o: o[key!] = replacement; break;
                case JsonArray a when rng.Next(4) == 0 && a.Count > 0: a.RemoveAt(int.Parse(key!)); break;
                case JsonArray a: a[int.Parse(key!)] = replacement; break;
            }
        }
        return Encoding.UTF8.GetBytes(root.ToJsonString());
    }

    /// <summary>A random member or element anywhere in the tree, as its container and key (index for arrays).</summary>
    private static (JsonNode Parent, string? Key) Pick(JsonNode root, Random rng)
    {
        JsonNode node = root;
        while (true)
        {
            switch (node)
            {
                case JsonObject o when o.Count > 0:
                {
                    string key = o.ElementAt(rng.Next(o.Count)).Key;
                    if (o[key] is JsonObject or JsonArray && rng.Next(2) == 0) { node = o[key]!; continue; }
                    return (o, key);
                }
                case JsonArray a when a.Count > 0:
                {
                    int i = rng.Next(a.Count);
                    if (a[i] is JsonObject or JsonArray && rng.Next(2) == 0) { node = a[i]!; continue; }
                    return (a, i.ToString());
                }
                default:
                    return (root, ((JsonObject)root).First().Key);
            }
        }
    }

    /// <summary>A byte flipped, inserted or dropped (one to four times), or the body cut short.</summary>
    private static byte[] ByteLevel(string seed, Random rng)
    {
        var bytes = new List<byte>(Encoding.UTF8.GetBytes(seed));
        if (rng.Next(5) == 0) return [.. bytes.Take(rng.Next(bytes.Count))];
        int edits = 1 + rng.Next(4);
        for (int e = 0; e < edits; e++)
        {
            int at = rng.Next(bytes.Count);
            switch (rng.Next(3))
            {
                case 0: bytes[at] = (byte)rng.Next(256); break;
                case 1: bytes.Insert(at, (byte)rng.Next(256)); break;
                default: bytes.RemoveAt(at); break;
            }
        }
        return [.. bytes];
    }

    private static string Cut(string s) => s.Length <= 300 ? s : s[..300] + "...";
}
