using System.Text.Json.Nodes;

namespace Cluster.Tokenizer.Tests;

/// <summary>Loading: what is refused, and how, using small synthetic tokenizer files.</summary>
public sealed class TokenizerFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cluster-tok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A byte-level BPE with DeepSeek-V3's pre-tokenizer, 256 byte symbols, merges a+b and ab+c, and added tokens.</summary>
    private static JsonObject Synthetic()
    {
        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++) vocab[ByteLevel.ByteToChar[b].ToString()] = b;
        vocab["ab"] = 256;
        vocab["abc"] = 257;
        JsonObject Split(string regex) => new() { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = regex }, ["behavior"] = "Isolated", ["invert"] = false };
        JsonObject Added(int id, string content, bool lstrip = false, bool rstrip = false, bool singleWord = false) => new()
        {
            ["id"] = id, ["content"] = content, ["single_word"] = singleWord, ["lstrip"] = lstrip, ["rstrip"] = rstrip, ["normalized"] = false, ["special"] = true,
        };
        return new JsonObject
        {
            ["added_tokens"] = new JsonArray(Added(258, "<s>"), Added(259, "[L]", lstrip: true), Added(260, "[R]", rstrip: true), Added(261, "[W]", singleWord: true)),
            ["normalizer"] = new JsonObject { ["type"] = "Sequence", ["normalizers"] = new JsonArray() },
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(Split(SplitPattern.DigitRunsPattern), Split(SplitPattern.CjkRunsPattern), Split(SplitPattern.WordsPattern),
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
            },
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel" },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject { ["type"] = "BPE", ["dropout"] = null, ["byte_fallback"] = false, ["vocab"] = vocab, ["merges"] = new JsonArray("a b", "ab c") },
        };
    }

    private static int[] Ids(params int[] ids) => ids;

    private string Write(JsonNode json, string name = "tokenizer.json")
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    private Exception LoadError(Action<JsonObject> edit)
    {
        JsonObject json = Synthetic();
        edit(json);
        return Assert.ThrowsAny<Exception>(() => Tokenizer.FromFiles(Write(json)));
    }

    [Fact]
    public void SyntheticTokenizerMergesByRank()
    {
        Tokenizer tok = Tokenizer.FromFiles(Write(Synthetic()));
        Assert.Equal(Ids(257, 'd'), tok.Encode("abcd"));
        Assert.Equal(Ids(256, 256, 'a'), tok.Encode("ababa"));
        Assert.Equal(Ids('b', 256), tok.Encode("bab"));
        Assert.Null(tok.BosId);
        Assert.Equal(Ids(257), tok.Encode("abc", addSpecialTokens: true)); // no config: nothing to add
    }

    [Fact]
    public void MergesMayBeWrittenAsPairs()
    {
        JsonObject json = Synthetic();
        json["model"]!["merges"] = new JsonArray(new JsonArray("a", "b"), new JsonArray("ab", "c"));
        Assert.Equal(Ids(257, 'd'), Tokenizer.FromFiles(Write(json)).Encode("abcd"));
    }

    [Fact]
    public void IgnoreMergesTakesWholeWordsFromTheVocabulary()
    {
        JsonObject json = Synthetic();
        json["model"]!["merges"] = new JsonArray("a b");
        Assert.Equal(Ids(256, 'c'), Tokenizer.FromFiles(Write(json)).Encode("abc"));
        json["model"]!["ignore_merges"] = true;
        Assert.Equal(Ids(257), Tokenizer.FromFiles(Write(json)).Encode("abc"));
        Assert.Equal(Ids(256, 'd'), Tokenizer.FromFiles(Write(json)).Encode("abd"));
    }

    [Fact]
    public void AddedTokenStripFlagsSwallowWhiteSpace()
    {
        Tokenizer tok = Tokenizer.FromFiles(Write(Synthetic()));
        Assert.Equal(Ids('x', 259, 'y'), tok.Encode("x  [L]y"));
        Assert.Equal(Ids('x', 260, 'y'), tok.Encode("x[R] \n y"));
        Assert.Equal(Ids('x', ' ', 258, ' ', 'y'), tok.Encode("x <s> y")); // no strip: the spaces stay (byte ids equal bytes here)
    }

    [Fact]
    public void SingleWordTokensMatchOnlyOutsideWords()
    {
        Tokenizer tok = Tokenizer.FromFiles(Write(Synthetic()));
        Assert.Contains(261, tok.Encode("x [W] y"));
        Assert.Contains(261, tok.Encode("[W]"));
        Assert.Contains(261, tok.Encode("!([W]).")); // punctuation is not a word character
        foreach (string inWord in new[] { "x[W]y", "a[W]", "[W]b", "_[W]", "é[W]", "7[W]", "𝐀[W]", "[W]\u0301" })
            Assert.DoesNotContain(261, tok.Encode(inWord));
    }

    [Fact]
    public void MissingFilesAreNamed()
    {
        var e = Assert.ThrowsAny<IOException>(() => Tokenizer.FromDirectory(_dir));
        Assert.Contains("tokenizer_config.json", e.Message);
        File.WriteAllText(Path.Combine(_dir, "tokenizer_config.json"), "{}");
        e = Assert.ThrowsAny<IOException>(() => Tokenizer.FromDirectory(_dir));
        Assert.Contains(Path.Combine(_dir, "tokenizer.json"), e.Message);
        Assert.Throws<DirectoryNotFoundException>(() => Tokenizer.FromDirectory(Path.Combine(_dir, "nope")));
    }

    [Fact]
    public void MalformedJsonIsNamed()
    {
        string path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, "{\"model\": [");
        var e = Assert.Throws<InvalidDataException>(() => Tokenizer.FromFiles(path));
        Assert.StartsWith(path + ": not valid JSON", e.Message);
    }

    [Fact]
    public void UnsupportedComponentsAreRefusedByName()
    {
        Assert.Contains("normalizer 'NFKC'", LoadError(j => j["normalizer"] = new JsonObject { ["type"] = "NFKC" }).Message);
        Assert.Contains("pattern /\\w+/", LoadError(j => j["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"]!["Regex"] = @"\w+").Message);
        Assert.Contains("behavior 'Removed'", LoadError(j => j["pre_tokenizer"]!["pretokenizers"]![1]!["behavior"] = "Removed").Message);
        Assert.Contains("pre_tokenizer 'Whitespace'", LoadError(j => j["pre_tokenizer"] = new JsonObject { ["type"] = "Whitespace" }).Message);
        Assert.Contains("decoder 'WordPiece'", LoadError(j => j["decoder"] = new JsonObject { ["type"] = "WordPiece" }).Message);
        Assert.Contains("post_processor 'TemplateProcessing'", LoadError(j => j["post_processor"] = new JsonObject { ["type"] = "TemplateProcessing" }).Message);
        Assert.Contains("model type 'Unigram'", LoadError(j => j["model"]!["type"] = "Unigram").Message);
        Assert.Contains("byte_fallback", LoadError(j => j["model"]!["byte_fallback"] = true).Message);
        Assert.IsType<NotSupportedException>(LoadError(j => j["decoder"] = null));
    }

    [Fact]
    public void InconsistentFilesAreRefusedWithTheCulprit()
    {
        Assert.Contains("model.merges[1] 'ab d'", LoadError(j => j["model"]!["merges"]![1] = "ab d").Message);
        Assert.Contains("byte 0x41", LoadError(j => j["model"]!["vocab"]!.AsObject().Remove("A")).Message);
        JsonObject json = Synthetic();
        string config = Write(new JsonObject { ["bos_token"] = "<nope>" }, "tokenizer_config.json");
        var e = Assert.Throws<InvalidDataException>(() => Tokenizer.FromFiles(Write(json), config));
        Assert.Contains("bos_token '<nope>'", e.Message);
        Assert.StartsWith(config, e.Message);
    }
}
