using System.Text;

namespace Cluster.Tokenizer;

/// <summary>
/// The byte-level BPE tokenizer of a model directory's tokenizer.json, producing the ids Hugging Face's tokenizers
/// library produces. Thread-safe: one instance serves every request.
/// </summary>
public sealed class Tokenizer
{
    private readonly string?[] _idToToken;
    private readonly byte[]?[] _idToBytes;
    private readonly bool[] _isSpecial;
    private readonly Dictionary<string, int> _tokenToId;
    private readonly AddedTokenMatcher _rawAddedTokens;        // matched on the text as given
    private readonly AddedTokenMatcher _normalizedAddedTokens; // matched after the (empty) normalizer
    private readonly PreTokenizer _preTokenizer;
    private readonly BytePairEncoder _bpe;
    private readonly bool _addBos, _addEos;

    internal Tokenizer(TokenizerFiles.Parts p)
    {
        _idToToken = p.IdToToken;
        _tokenToId = p.TokenToId;
        _preTokenizer = p.PreTokenizer;
        _bpe = p.Bpe;
        _rawAddedTokens = new AddedTokenMatcher(p.AddedTokens.Where(t => !t.Normalized));
        _normalizedAddedTokens = new AddedTokenMatcher(p.AddedTokens.Where(t => t.Normalized));
        _isSpecial = new bool[p.IdToToken.Length];
        foreach (AddedToken t in p.AddedTokens) _isSpecial[t.Id] = t.Special;
        _idToBytes = new byte[]?[p.IdToToken.Length];
        for (int id = 0; id < _idToBytes.Length; id++)
            if (p.IdToToken[id] is string token) _idToBytes[id] = ByteLevel.TokenBytes(token);
        BosToken = p.BosToken;
        EosToken = p.EosToken;
        BosId = p.BosToken is null ? null : TokenToId(p.BosToken);
        EosId = p.EosToken is null ? null : TokenToId(p.EosToken);
        _addBos = p.AddBos && BosId is not null;
        _addEos = p.AddEos && EosId is not null;
        ChatTemplateSource = p.ChatTemplate;
    }

    /// <summary>Reads DIR/tokenizer.json and DIR/tokenizer_config.json.</summary>
    public static Tokenizer FromDirectory(string modelDir)
    {
        if (!Directory.Exists(modelDir)) throw new DirectoryNotFoundException($"model directory {modelDir} not found");
        string config = Path.Combine(modelDir, "tokenizer_config.json");
        if (!File.Exists(config)) throw new FileNotFoundException($"{config} not found");
        return FromFiles(Path.Combine(modelDir, "tokenizer.json"), config);
    }

    /// <summary>Reads a tokenizer.json and, when given, the tokenizer_config.json beside it (BOS/EOS, chat template).</summary>
    public static Tokenizer FromFiles(string tokenizerJson, string? tokenizerConfigJson = null)
        => new(TokenizerFiles.Read(tokenizerJson, tokenizerConfigJson));

    /// <summary>One past the highest id, added tokens included.</summary>
    public int VocabSize => _idToToken.Length;
    public int? BosId { get; }
    public int? EosId { get; }
    public string? BosToken { get; }
    public string? EosToken { get; }

    /// <summary>tokenizer_config.json's chat_template, or null when it has none.</summary>
    public string? ChatTemplateSource { get; }

    /// <summary>
    /// The ids of <paramref name="text"/>. With <paramref name="addSpecialTokens"/>, BOS (and EOS) are added when
    /// tokenizer_config.json's add_bos_token (add_eos_token) says so, as transformers' LlamaTokenizerFast does; the
    /// tokenizer.json post-processor of DeepSeek-V3 (ByteLevel) adds none by itself.
    /// </summary>
    public int[] Encode(string text, bool addSpecialTokens = false)
    {
        var ids = new List<int>(text.Length / 3 + 2);
        if (addSpecialTokens && _addBos) ids.Add(BosId!.Value);
        EncodeInto(text, ids);
        if (addSpecialTokens && _addEos) ids.Add(EosId!.Value);
        return ids.ToArray();
    }

    /// <summary>
    /// The ids of UTF-8 bytes. Hugging Face's tokenizers only take valid strings, so invalid bytes are first decoded
    /// the way Python's <c>bytes.decode("utf-8", errors="replace")</c> does: each maximal invalid subsequence becomes
    /// one U+FFFD (the same rule .NET, Rust's from_utf8_lossy and the WHATWG TextDecoder follow).
    /// </summary>
    public int[] EncodeUtf8(ReadOnlySpan<byte> utf8, bool addSpecialTokens = false)
        => Encode(Encoding.UTF8.GetString(utf8), addSpecialTokens);

    /// <summary>Appends the ids of <paramref name="text"/> (no BOS/EOS) to <paramref name="ids"/>.</summary>
    public void EncodeInto(ReadOnlySpan<char> text, List<int> ids)
    {
        var words = new List<(int, int)>();
        int pos = 0;
        while (_rawAddedTokens.Find(text, pos, out int start, out int end, out AddedToken? token))
        {
            EncodeBetweenRawTokens(text[pos..start], ids, words);
            ids.Add(token!.Id);
            pos = end;
        }
        EncodeBetweenRawTokens(text[pos..], ids, words);
    }

    private void EncodeBetweenRawTokens(ReadOnlySpan<char> text, List<int> ids, List<(int, int)> words)
    {
        int pos = 0;
        while (_normalizedAddedTokens.Find(text, pos, out int start, out int end, out AddedToken? token))
        {
            EncodePlain(text[pos..start], ids, words);
            ids.Add(token!.Id);
            pos = end;
        }
        EncodePlain(text[pos..], ids, words);
    }

    private void EncodePlain(ReadOnlySpan<char> text, List<int> ids, List<(int Start, int Length)> words)
    {
        if (text.IsEmpty) return;
        words.Clear();
        _preTokenizer.Split(text, words);
        foreach ((int start, int length) in words) _bpe.Encode(text.Slice(start, length), ids);
    }

    /// <summary>The text of <paramref name="ids"/>; bytes that do not form valid UTF-8 become U+FFFD, as Hugging Face's
    /// ByteLevel decoder does.</summary>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        int total = 0;
        foreach (int id in ids) total += TokenBytes(id).Length;
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(total);
        try
        {
            int n = 0;
            foreach (int id in ids)
            {
                if (skipSpecialTokens && _isSpecial[id]) continue;
                byte[] b = _idToBytes[id]!;
                b.CopyTo(buffer, n);
                n += b.Length;
            }
            return Encoding.UTF8.GetString(buffer, 0, n);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The token string of an id: the vocabulary's byte-level form (e.g. "Ġthe") or an added token's content.</summary>
    public string IdToToken(int id) => _idToToken[CheckId(id)]!;

    public int? TokenToId(string token) => _tokenToId.TryGetValue(token, out int id) ? id : null;

    /// <summary>Whether an id is an added token marked special (hidden by skipSpecialTokens).</summary>
    public bool IsSpecial(int id) => _isSpecial[CheckId(id)];

    internal byte[] TokenBytes(int id) => _idToBytes[CheckId(id)]!;

    private int CheckId(int id)
    {
        if ((uint)id >= (uint)_idToToken.Length || _idToToken[id] is null)
            throw new ArgumentOutOfRangeException(null, $"token id {id} is not in the vocabulary (ids 0..{_idToToken.Length - 1})");
        return id;
    }
}
