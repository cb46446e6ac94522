using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Cluster.Bench;

/// <summary>
/// Encode throughput of Cluster.Tokenizer beside @lenml/tokenizers (run by node, timing only its encode calls) on
/// the same ~10 MB mixed-language text, single thread, in one run. The text is built deterministically from the
/// tokenizer test corpus, with numbers and word endings varied so the BPE cache does not see only repeats.
/// </summary>
public static class TokenizerBench
{
    public static async Task<int> Run(string[] args)
    {
        double megabytes = args.Length > 0 ? double.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 10;
        const int repeats = 3;
        string root = BenchEnvironment.RepoRoot();
        string models = Path.Combine(root, "node_modules", "@lenml", "tokenizer-deepseek_v3", "models");
        if (!File.Exists(Path.Combine(models, "tokenizer.json")))
        {
            Console.Error.WriteLine($"tokenizer bench: {models}/tokenizer.json not found (run 'npm ci' at the repository root)");
            return 1;
        }
        List<string> chunks = BuildText(Path.Combine(root, "tests", "Cluster.Tokenizer.Tests", "Corpus"), (long)(megabytes * 1024 * 1024));
        long bytes = chunks.Sum(c => (long)Encoding.UTF8.GetByteCount(c));
        Console.Error.WriteLine($"tokenizer bench: {bytes / 1e6:F1} MB in {chunks.Count} chunks, {repeats} passes each side");

        var load = Stopwatch.StartNew();
        var tokenizer = Cluster.Tokenizer.Tokenizer.FromDirectory(models);
        double loadSeconds = load.Elapsed.TotalSeconds;
        double cold = 0, best = double.MaxValue;
        var results = new int[chunks.Count][];
        for (int r = 0; r < repeats; r++)
        {
            GC.Collect();
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < chunks.Count; i++) results[i] = tokenizer.Encode(chunks[i]);
            double s = sw.Elapsed.TotalSeconds;
            if (r == 0) cold = s;
            best = Math.Min(best, s);
        }
        long ours = 0;
        uint checksum = 0;
        foreach (int[] ids in results)
            foreach (int id in ids) { ours++; checksum = unchecked(checksum * 31 + (uint)id); }

        var request = new JsonObject
        {
            ["bench"] = new JsonObject
            {
                ["chunks"] = new JsonArray(chunks.Select(c => (JsonNode)Convert.ToBase64String(Encoding.UTF8.GetBytes(c))).ToArray()),
                ["repeats"] = repeats,
            },
        };
        JsonElement answer = JsonDocument.Parse(await RunNode(root, Path.Combine(root, "tests", "Cluster.Tokenizer.Tests", "hf_reference.js"), request.ToJsonString()))
            .RootElement.GetProperty("bench");
        double nodeSeconds = answer.GetProperty("seconds").GetDouble();
        long theirs = answer.GetProperty("ids").GetInt64();
        uint theirChecksum = answer.GetProperty("checksum").GetUInt32();
        if (theirs != ours || theirChecksum != checksum)
        {
            Console.Error.WriteLine($"tokenizer bench: ids differ (ours {ours} ids, checksum {checksum}; @lenml/tokenizers {theirs} ids, checksum {theirChecksum})");
            return 1;
        }

        double mb = bytes / 1e6;
        Console.WriteLine("## Tokenizer");
        Console.WriteLine();
        Console.WriteLine($"Encode throughput, single thread, {mb:F1} MB of mixed-language text in {chunks.Count} chunks of ~4 KB "
            + $"({ours:N0} ids, identical on both sides by checksum), best of {repeats} passes:");
        Console.WriteLine();
        Console.WriteLine("| encoder | MB/s | ratio |");
        Console.WriteLine("|---|---:|---:|");
        Console.WriteLine($"| @lenml/tokenizers 3.7.2 (node {BenchEnvironment.NodeVersion()}) | {mb / nodeSeconds:F2} | 1.0x |");
        Console.WriteLine($"| Cluster.Tokenizer, first pass (cold BPE cache) | {mb / cold:F2} | {nodeSeconds / cold:F1}x |");
        Console.WriteLine($"| Cluster.Tokenizer | {mb / best:F2} | {nodeSeconds / best:F1}x |");
        Console.WriteLine();
        Console.WriteLine($"Loading tokenizer.json took {loadSeconds:F2} s. Command: `dotnet run -c Release --project bench/Cluster.Bench -- tokenizer`");
        return 0;
    }

    /// <summary>Lines of the corpus files in a fixed pseudo-random order, with digits and some word endings varied,
    /// cut into ~4 KB chunks at line ends (a chunk is roughly one prompt).</summary>
    private static List<string> BuildText(string corpusDir, long targetBytes)
    {
        string[] lines = Directory.GetFiles(corpusDir, "*.txt").Order(StringComparer.Ordinal)
            .SelectMany(f => File.ReadAllText(f).Split('\n')).Where(l => l.Length > 0).ToArray();
        var random = new Random(1234);
        var chunks = new List<string>();
        var chunk = new StringBuilder();
        long total = 0;
        while (total < targetBytes)
        {
            string line = lines[random.Next(lines.Length)];
            var varied = new StringBuilder(line.Length + 8);
            foreach (char c in line)
            {
                if (char.IsAsciiDigit(c)) varied.Append((char)('0' + random.Next(10)));
                else if (c == ' ' && random.Next(8) == 0) varied.Append((char)('a' + random.Next(26))).Append(' ');
                else varied.Append(c);
            }
            varied.Append('\n');
            chunk.Append(varied);
            total += Encoding.UTF8.GetByteCount(varied.ToString());
            if (chunk.Length >= 4096)
            {
                chunks.Add(chunk.ToString());
                chunk.Clear();
            }
        }
        if (chunk.Length > 0) chunks.Add(chunk.ToString());
        return chunks;
    }

    private static async Task<string> RunNode(string root, string script, string stdin)
    {
        var psi = new ProcessStartInfo("node") { WorkingDirectory = root, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(script);
        psi.Environment["NODE_PATH"] = Path.Combine(root, "node_modules");
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start node");
        Task<string> stdout = p.StandardOutput.ReadToEndAsync(), stderr = p.StandardError.ReadToEndAsync();
        await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"node {script} exited {p.ExitCode}: {await stderr}");
        return await stdout;
    }
}
