using System.Text.Json;
using Cluster.Tests;

namespace Cluster.Cli.Tests;

/// <summary>`cluster tokenize` and `cluster detokenize` as a user runs them: text on stdin, JSON ids on stdout.</summary>
public sealed class TokenizeCommandTests : IDisposable
{
    private readonly string _model = Directory.CreateTempSubdirectory("cluster-cli-tokenizer-").FullName;
    private readonly Tokenizer.Tokenizer _tokenizer;

    public TokenizeCommandTests()
    {
        string files = Path.Combine(Repo.NodeModules, "@lenml", "tokenizer-deepseek_v3", "models");
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(Path.Combine(files, f), Path.Combine(_model, f));
        _tokenizer = Tokenizer.Tokenizer.FromDirectory(_model);
    }

    public void Dispose() => Directory.Delete(_model, recursive: true);

    private static int[] Ids(string json) => JsonSerializer.Deserialize<int[]>(json)!;

    [Fact]
    public void Text_on_stdin_gives_the_tokenizers_ids()
    {
        const string text = "Hello 世界, 12345 and emoji 🤖\n  indented";
        var r = ClusterProcess.RunWithInput(text, "tokenize", "--model", _model);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(_tokenizer.Encode(text), Ids(r.Stdout));

        var withBos = ClusterProcess.RunWithInput(text, "tokenize", "--model", _model, "--add-special-tokens");
        Assert.Equal([.. new[] { _tokenizer.BosId!.Value }, .. _tokenizer.Encode(text)], Ids(withBos.Stdout));
    }

    [Fact]
    public void Chat_messages_are_rendered_with_the_template_then_tokenized()
    {
        var r = ClusterProcess.RunWithInput("""{"messages":[{"role":"user","content":"Hi"}]}""", "tokenize", "--model", _model, "--chat");
        Assert.True(r.ExitCode == 0, r.Stderr);
        // <｜begin▁of▁sentence｜> <｜User｜> Hi <｜Assistant｜>
        Assert.Equal([0, 128803, 23166, 128804], Ids(r.Stdout));
    }

    [Fact]
    public void Detokenize_round_trips_tokenize()
    {
        const string text = "def f(x):\n    return x * 2  # 二倍";
        int[] ids = _tokenizer.Encode(text);
        var r = ClusterProcess.RunWithInput(JsonSerializer.Serialize(ids), "detokenize", "--model", _model);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(text, r.Stdout.TrimEnd('\n'));
    }

    [Theory]
    [InlineData("detokenize", "[0, 999999]", "token id 999999 is not in the vocabulary")]
    [InlineData("detokenize", "[1, \"two\"]", "expected a JSON array of integer token ids")]
    [InlineData("tokenize --chat", "{\"messages\": 5}", "'messages' must be an array")]
    public void Bad_input_is_a_one_line_error(string command, string stdin, string mentions)
    {
        string[] args = [.. command.Split(' '), "--model", _model];
        var r = ClusterProcess.RunWithInput(stdin, args);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.Contains(mentions, r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }
}
