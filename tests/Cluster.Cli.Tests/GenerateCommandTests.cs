namespace Cluster.Cli.Tests;

/// <summary>`cluster generate` on the small preset (the tokenizer's vocabulary): about 350 MB written once per class.</summary>
public sealed class GenerateCommandTests : IClassFixture<GenerateCommandTests.SmallModel>
{
    public sealed class SmallModel : IDisposable
    {
        public string Root { get; } = Directory.CreateTempSubdirectory("cluster-cli-test-").FullName;
        public string Dir => Path.Combine(Root, "small");

        public SmallModel()
        {
            var r = ClusterProcess.Run("model", "init", "--preset", "small", "--out", Dir);
            Assert.True(r.ExitCode == 0, r.Stderr);
        }

        public void Dispose() => Directory.Delete(Root, recursive: true);
    }

    private readonly SmallModel _model;

    public GenerateCommandTests(SmallModel model) => _model = model;

    [Fact]
    public void Greedy_and_seeded_sampling_are_reproducible_and_report_speed()
    {
        string[] greedy = ["generate", "--model", _model.Dir, "--prompt", "The capital of France is", "--max-tokens", "6"];
        var a = ClusterProcess.Run(greedy);
        Assert.True(a.ExitCode == 0, a.Stderr);
        Assert.NotEqual("", a.Stdout.Trim());
        Assert.Matches(@"prompt: \d+ tokens in [\d.]+ s \([\d.]+ tokens/s\); decode: \d+ tokens in [\d.]+ s \([\d.]+ tokens/s\)", a.Stderr);
        Assert.Equal(a.Stdout, ClusterProcess.Run(greedy).Stdout);

        string[] sampled = ["generate", "--model", _model.Dir, "--prompt", "Hello", "--max-tokens", "8", "--temperature", "1.0", "--top-p", "0.9", "--top-k", "40"];
        var s1 = ClusterProcess.Run([.. sampled, "--seed", "3"]);
        var s2 = ClusterProcess.Run([.. sampled, "--seed", "3"]);
        var s3 = ClusterProcess.Run([.. sampled, "--seed", "4"]);
        Assert.True(s1.ExitCode == 0, s1.Stderr);
        Assert.Equal(s1.Stdout, s2.Stdout);
        Assert.NotEqual(s1.Stdout, s3.Stdout);
    }

    [Fact]
    public void Bad_options_are_one_line_errors()
    {
        var r = ClusterProcess.Run("generate", "--model", _model.Dir, "--prompt", "x", "--temperature", "-1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--temperature must be between 0 and 100 (got -1)", r.Stderr);
        r = ClusterProcess.Run("generate", "--model", _model.Dir, "--prompt", "x", "--top-p", "1.5");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--top-p", r.Stderr);
        r = ClusterProcess.Run("generate", "--model", Path.Combine(_model.Root, "none"), "--prompt", "x");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("model directory not found", r.Stderr);
    }
}
