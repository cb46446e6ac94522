using System.Text;
using Cluster.Engine.Config;
using Cluster.Tokenizer;

namespace Cluster.Gateway;

/// <summary>What the gateway knows of the model: its id, context length, vocabulary, tokenizer and chat template.</summary>
public sealed class ServedModel
{
    private ServedModel(string id, ModelConfig config, Tokenizer.Tokenizer tokenizer, ChatTemplate template, int maxModelLen, int defaultMaxTokens)
    {
        DefaultMaxTokens = defaultMaxTokens;
        Id = id;
        Config = config;
        Tokenizer = tokenizer;
        Template = template;
        MaxModelLen = maxModelLen;
        Created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    }

    public string Id { get; }
    public ModelConfig Config { get; }
    public Tokenizer.Tokenizer Tokenizer { get; }
    public ChatTemplate Template { get; }
    /// <summary>Prompt + completion tokens allowed per request.</summary>
    public int MaxModelLen { get; }
    /// <summary>The completion budget of a request that gives none, capped by what the context leaves.</summary>
    public int DefaultMaxTokens { get; }
    public int VocabSize => Config.VocabSize;
    public long Created { get; }

    public static ServedModel Load(string dir, string? modelId, int? maxModelLen, int defaultMaxTokens = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(defaultMaxTokens, 1);
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: model directory not found");
        ModelConfig config = ModelConfig.Load(Path.Combine(dir, "config.json"));
        var tokenizer = Cluster.Tokenizer.Tokenizer.FromDirectory(dir);
        var template = ChatTemplate.For(tokenizer);
        if (maxModelLen is int m && (m < 2 || m > config.MaxPositionEmbeddings))
            throw new ArgumentException($"max model length {m} must be between 2 and max_position_embeddings = {config.MaxPositionEmbeddings}");
        string id = modelId ?? new DirectoryInfo(Path.GetFullPath(dir)).Name;
        return new ServedModel(id, config, tokenizer, template, maxModelLen ?? config.MaxPositionEmbeddings, defaultMaxTokens);
    }

    /// <summary>
    /// The text of one token, as a logprobs entry shows it. Ids the checkpoint has but the tokenizer lacks (vocab_size
    /// pads beyond the tokenizer) have no text.
    /// </summary>
    public string TokenText(int id) => HasText(id) ? Tokenizer.Decode([id]) : "";

    public bool HasText(int id)
    {
        if ((uint)id >= (uint)Tokenizer.VocabSize) return false;
        try { Tokenizer.IdToToken(id); return true; }
        catch (ArgumentOutOfRangeException) { return false; }
    }

    public static int[] Utf8Bytes(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        var ints = new int[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) ints[i] = bytes[i];
        return ints;
    }
}
