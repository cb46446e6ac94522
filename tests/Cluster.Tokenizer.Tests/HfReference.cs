using System.Text.Json;
using System.Text.Json.Nodes;
using Cluster.Tests;

namespace Cluster.Tokenizer.Tests;

/// <summary>
/// What @lenml/tokenizers (Hugging Face's tokenizer and Jinja template port) answers for every text, decode and
/// conversation the tests check, computed in a single node run so the suite stays fast.
/// </summary>
public static class HfReference
{
    public static readonly string[] FuzzTexts = [.. TestData.Fuzz(seed: 7, count: 400, maxLength: 160, bmpOnly: false), .. TestData.RandomCodePoints(seed: 8, count: 300)];

    /// <summary>Id sequences whose decoding is compared, special tokens shown and hidden.</summary>
    public static readonly int[][] DecodeCases =
    [
        [0, 19923, 2058, 1],
        [128803, 19923, 128804, 128805, 2],
        [223, 224, 225, 31, 32],             // lone byte tokens: invalid UTF-8 on their own
        [66, 67, 68, 100, 1000, 10000, 100000, 127999],
    ];

    public static string ScriptPath => Path.Combine(Repo.Root, "tests", "Cluster.Tokenizer.Tests", "hf_reference.js");

    private static readonly Lazy<Answers> s_answers = new(Run);

    public static Answers Get => s_answers.Value;

    public sealed record Answers(Dictionary<string, int[]> CorpusIds, int[][] FuzzIds, string[] Decoded, string[] DecodedSkipSpecial, string[] Chats);

    private static Answers Run()
    {
        var encode = new JsonArray();
        foreach ((_, byte[] bytes) in TestData.Corpus) encode.Add(Convert.ToBase64String(bytes));
        foreach (string text in FuzzTexts) encode.Add(Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(text)));
        var decode = new JsonArray();
        foreach (bool skip in new[] { false, true })
            foreach (int[] caseIds in DecodeCases) decode.Add(new JsonObject { ["ids"] = new JsonArray(caseIds.Select(i => (JsonNode)i).ToArray()), ["skip"] = skip });
        var chat = new JsonArray();
        foreach (ChatCases.Case c in ChatCases.All)
            chat.Add(new JsonObject { ["messages"] = JsonNode.Parse(c.MessagesJson), ["add_generation_prompt"] = c.AddGenerationPrompt });

        string request = new JsonObject { ["encode"] = encode, ["decode"] = decode, ["chat"] = chat }.ToJsonString();
        using JsonDocument answer = JsonDocument.Parse(Repo.RunNode(ScriptPath, request));
        int[][] ids = answer.RootElement.GetProperty("encode").EnumerateArray().Select(a => a.EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToArray();
        string[] decoded = answer.RootElement.GetProperty("decode").EnumerateArray().Select(s => s.GetString()!).ToArray();
        var corpus = new Dictionary<string, int[]>();
        for (int i = 0; i < TestData.Corpus.Count; i++) corpus[TestData.Corpus[i].Name] = ids[i];
        return new Answers(corpus, ids[TestData.Corpus.Count..], decoded[..DecodeCases.Length], decoded[DecodeCases.Length..],
            answer.RootElement.GetProperty("chat").EnumerateArray().Select(s => s.GetString()!).ToArray());
    }
}
