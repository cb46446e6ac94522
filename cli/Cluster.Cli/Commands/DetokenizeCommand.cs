using System.Text;
using System.Text.Json;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster detokenize</c>: a JSON array of token ids on stdin, their text out.</summary>
public static class DetokenizeCommand
{
    public const string Usage = "detokenize --model DIR [--skip-special-tokens]   (a JSON array of ids on stdin; prints the text)";

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        string dir = args.Required("model");
        bool skipSpecial = args.Flag("skip-special-tokens");
        args.RejectUnknown();

        byte[] input = await TokenizeCommand.ReadStdin(cancel);
        int[] ids;
        try { ids = JsonSerializer.Deserialize<int[]>(input) ?? throw new JsonException("null"); }
        catch (JsonException) { throw new CliException("stdin: expected a JSON array of integer token ids, e.g. [0, 19923]"); }

        var tokenizer = Cluster.Tokenizer.Tokenizer.FromDirectory(dir);
        string text;
        try { text = tokenizer.Decode(ids, skipSpecial); }
        catch (ArgumentOutOfRangeException e) { throw new CliException(e.Message); }
        await using Stream stdout = Console.OpenStandardOutput();
        await stdout.WriteAsync(Encoding.UTF8.GetBytes(text), cancel);
        return 0;
    }
}
