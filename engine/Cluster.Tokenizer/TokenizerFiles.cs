using System.Text.Json;

namespace Cluster.Tokenizer;

/// <summary>
/// Reads tokenizer.json and tokenizer_config.json into the parts of a <see cref="Tokenizer"/>. Every component is
/// checked against what this implementation does; anything else is refused by name rather than silently mis-tokenized.
/// </summary>
internal static class TokenizerFiles
{
    internal sealed record Parts(
        string?[] IdToToken, Dictionary<string, int> TokenToId, List<AddedToken> AddedTokens,
        PreTokenizer PreTokenizer, BytePairEncoder Bpe,
        string? BosToken, string? EosToken, bool AddBos, bool AddEos, string? ChatTemplate);

    public static Parts Read(string tokenizerJson, string? configJson)
    {
        using JsonDocument doc = Parse(tokenizerJson);
        JsonElement root = doc.RootElement;
        var file = new FileErrors(tokenizerJson);
        if (root.ValueKind != JsonValueKind.Object) throw file.Invalid("expected a JSON object");

        CheckNormalizer(file, Member(root, "normalizer"));
        PreTokenizer preTokenizer = ReadPreTokenizer(file, Member(root, "pre_tokenizer"));
        CheckDecoder(file, Member(root, "decoder"));
        CheckPostProcessor(file, Member(root, "post_processor"));

        JsonElement model = Member(root, "model") ?? throw file.Invalid("no 'model'");
        CheckModel(file, model);
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        JsonElement vocabJson = Member(model, "vocab") is { ValueKind: JsonValueKind.Object } v ? v : throw file.Invalid("model.vocab is not an object");
        int maxId = -1;
        foreach (JsonProperty p in vocabJson.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
                throw file.Invalid($"model.vocab['{p.Name}'] is not a non-negative integer id");
            vocab[p.Name] = id;
            maxId = Math.Max(maxId, id);
        }

        var added = new List<AddedToken>();
        if (Member(root, "added_tokens") is { ValueKind: JsonValueKind.Array } addedJson)
            foreach (JsonElement t in addedJson.EnumerateArray())
            {
                var token = new AddedToken(
                    Member(t, "id") is { ValueKind: JsonValueKind.Number } idJson && idJson.TryGetInt32(out int id) && id >= 0 ? id : throw file.Invalid("an added token has no valid 'id'"),
                    Member(t, "content") is { ValueKind: JsonValueKind.String } c ? c.GetString()! : throw file.Invalid($"added token {id} has no 'content'"),
                    Bool(t, "special"), Bool(t, "single_word"), Bool(t, "lstrip"), Bool(t, "rstrip"), Bool(t, "normalized"));
                added.Add(token);
                maxId = Math.Max(maxId, token.Id);
            }

        var idToToken = new string?[maxId + 1];
        foreach ((string token, int id) in vocab)
        {
            if (idToToken[id] is not null) throw file.Invalid($"model.vocab gives id {id} to both '{idToToken[id]}' and '{token}'");
            idToToken[id] = token;
        }
        var tokenToId = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        foreach (AddedToken t in added)
        {
            if (idToToken[t.Id] is string other && other != t.Content)
                throw file.Invalid($"added token '{t.Content}' reuses id {t.Id} of '{other}'");
            idToToken[t.Id] = t.Content;
            tokenToId[t.Content] = t.Id;
        }

        var byteToId = new int[256];
        for (int b = 0; b < 256; b++)
            byteToId[b] = vocab.TryGetValue(ByteLevel.ByteToChar[b].ToString(), out int id)
                ? id : throw file.Invalid($"model.vocab lacks the byte-level symbol of byte 0x{b:X2}");

        Dictionary<long, long> merges = ReadMerges(file, model, vocab);
        bool ignoreMerges = Member(model, "ignore_merges") is { ValueKind: JsonValueKind.True };
        var bpe = new BytePairEncoder(byteToId, merges, ignoreMerges ? vocab : null);

        string? bos = null, eos = null, template = null;
        bool addBos = false, addEos = false;
        if (configJson is not null)
        {
            using JsonDocument configDoc = Parse(configJson);
            JsonElement config = configDoc.RootElement;
            var configFile = new FileErrors(configJson);
            if (config.ValueKind != JsonValueKind.Object) throw configFile.Invalid("expected a JSON object");
            bos = SpecialTokenContent(configFile, config, "bos_token");
            eos = SpecialTokenContent(configFile, config, "eos_token");
            addBos = Bool(config, "add_bos_token");
            addEos = Bool(config, "add_eos_token");
            if (bos is not null && !tokenToId.ContainsKey(bos)) throw configFile.Invalid($"bos_token '{bos}' is not a token of {tokenizerJson}");
            if (eos is not null && !tokenToId.ContainsKey(eos)) throw configFile.Invalid($"eos_token '{eos}' is not a token of {tokenizerJson}");
            template = Member(config, "chat_template") switch
            {
                null => null,
                { ValueKind: JsonValueKind.String } s => s.GetString(),
                _ => throw configFile.Unsupported("chat_template is not a single template string"),
            };
        }
        return new Parts(idToToken, tokenToId, added, preTokenizer, bpe, bos, eos, addBos, addEos, template);
    }

    private static Dictionary<long, long> ReadMerges(FileErrors file, JsonElement model, Dictionary<string, int> vocab)
    {
        JsonElement mergesJson = Member(model, "merges") is { ValueKind: JsonValueKind.Array } m ? m : throw file.Invalid("model.merges is not an array");
        var merges = new Dictionary<long, long>(mergesJson.GetArrayLength(), BytePairEncoder.PairComparer.Instance);
        int rank = 0;
        foreach (JsonElement merge in mergesJson.EnumerateArray())
        {
            string left, right;
            if (merge.ValueKind == JsonValueKind.String)
            {
                string s = merge.GetString()!;
                int space = s.IndexOf(' ', 1);
                if (space < 0) throw file.Invalid($"model.merges[{rank}] '{s}' is not two tokens separated by a space");
                left = s[..space];
                right = s[(space + 1)..];
            }
            else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
                     && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
            {
                left = merge[0].GetString()!;
                right = merge[1].GetString()!;
            }
            else throw file.Invalid($"model.merges[{rank}] is neither \"a b\" nor [\"a\", \"b\"]");
            if (!vocab.TryGetValue(left, out int l) || !vocab.TryGetValue(right, out int r) || !vocab.TryGetValue(left + right, out int merged))
                throw file.Invalid($"model.merges[{rank}] '{left} {right}' uses a token not in model.vocab");
            merges.TryAdd(BytePairEncoder.PairKey(l, r), ((long)rank << 32) | (uint)merged);
            rank++;
        }
        return merges;
    }

    private static void CheckModel(FileErrors file, JsonElement model)
    {
        string type = TypeOf(model);
        if (type != "BPE") throw file.Unsupported($"model type '{type}' is not supported (only byte-level BPE)");
        if (Member(model, "dropout") is { ValueKind: JsonValueKind.Number } d && d.GetDouble() != 0)
            throw file.Unsupported("BPE dropout is not supported");
        if (Member(model, "byte_fallback") is { ValueKind: JsonValueKind.True }) throw file.Unsupported("BPE byte_fallback is not supported");
        foreach (string affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (Member(model, affix) is { ValueKind: JsonValueKind.String } a && a.GetString() != "")
                throw file.Unsupported($"BPE {affix} is not supported");
    }

    private static void CheckNormalizer(FileErrors file, JsonElement? normalizer)
    {
        if (normalizer is null) return;
        string type = TypeOf(normalizer.Value);
        if (type == "Sequence" && Member(normalizer.Value, "normalizers") is { ValueKind: JsonValueKind.Array } steps)
        {
            foreach (JsonElement step in steps.EnumerateArray()) CheckNormalizer(file, step);
            return;
        }
        throw file.Unsupported($"normalizer '{type}' is not supported");
    }

    private static PreTokenizer ReadPreTokenizer(FileErrors file, JsonElement? preTokenizer)
    {
        if (preTokenizer is null) throw file.Unsupported("a tokenizer without a ByteLevel pre_tokenizer is not supported");
        var items = new List<JsonElement>();
        if (TypeOf(preTokenizer.Value) == "Sequence" && Member(preTokenizer.Value, "pretokenizers") is { ValueKind: JsonValueKind.Array } seq)
            items.AddRange(seq.EnumerateArray());
        else items.Add(preTokenizer.Value);

        var splits = new List<SplitPattern>();
        for (int i = 0; i < items.Count; i++)
        {
            JsonElement item = items[i];
            string type = TypeOf(item);
            if (type == "Split")
            {
                string? regex = Member(item, "pattern") is { ValueKind: JsonValueKind.Object } p && Member(p, "Regex") is { ValueKind: JsonValueKind.String } r ? r.GetString() : null;
                string behavior = Member(item, "behavior") is { ValueKind: JsonValueKind.String } b ? b.GetString()! : "";
                if (regex is null) throw file.Unsupported($"pre_tokenizer Split #{i} has no Regex pattern (string patterns are not supported)");
                if (behavior != "Isolated") throw file.Unsupported($"pre_tokenizer Split behavior '{behavior}' is not supported (only Isolated)");
                if (Bool(item, "invert")) throw file.Unsupported("pre_tokenizer Split with invert=true is not supported");
                splits.Add(SplitPattern.For(regex) ?? throw file.Unsupported($"pre_tokenizer Split pattern /{regex}/ is not supported (only DeepSeek-V3's patterns are implemented)"));
            }
            else if (type == "ByteLevel" && i == items.Count - 1)
            {
                if (Bool(item, "add_prefix_space")) throw file.Unsupported("pre_tokenizer ByteLevel add_prefix_space=true is not supported");
                if (Member(item, "use_regex") is not { ValueKind: JsonValueKind.False }) throw file.Unsupported("pre_tokenizer ByteLevel use_regex=true is not supported");
            }
            else throw file.Unsupported($"pre_tokenizer '{type}' is not supported here (supported: Split... then ByteLevel)");
        }
        if (items.Count == 0 || TypeOf(items[^1]) != "ByteLevel") throw file.Unsupported("pre_tokenizer must end with ByteLevel");
        return new PreTokenizer(splits.ToArray());
    }

    private static void CheckDecoder(FileErrors file, JsonElement? decoder)
    {
        string type = decoder is null ? "none" : TypeOf(decoder.Value);
        if (type != "ByteLevel") throw file.Unsupported($"decoder '{type}' is not supported (only ByteLevel)");
    }

    private static void CheckPostProcessor(FileErrors file, JsonElement? postProcessor)
    {
        // ByteLevel's post-processing only trims offsets; it adds no tokens.
        if (postProcessor is null) return;
        string type = TypeOf(postProcessor.Value);
        if (type != "ByteLevel") throw file.Unsupported($"post_processor '{type}' is not supported (only ByteLevel)");
    }

    private static string? SpecialTokenContent(FileErrors file, JsonElement config, string key) => Member(config, key) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } s => s.GetString(),
        { ValueKind: JsonValueKind.Object } o when Member(o, "content") is { ValueKind: JsonValueKind.String } c => c.GetString(),
        _ => throw file.Invalid($"'{key}' is neither a string nor an object with 'content'"),
    };

    private static JsonDocument Parse(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} not found");
        try { return JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 256 }); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})"); }
    }

    /// <summary>A member that is present and not null.</summary>
    private static JsonElement? Member(JsonElement e, string name)
        => e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out JsonElement v) && v.ValueKind != JsonValueKind.Null ? v : null;

    private static bool Bool(JsonElement e, string name) => Member(e, name) is { ValueKind: JsonValueKind.True };

    private static string TypeOf(JsonElement e) => Member(e, "type") is { ValueKind: JsonValueKind.String } t ? t.GetString()! : "(no type)";

    private readonly struct FileErrors(string path)
    {
        public InvalidDataException Invalid(string what) => new($"{path}: {what}");
        public NotSupportedException Unsupported(string what) => new($"{path}: {what}");
    }
}
