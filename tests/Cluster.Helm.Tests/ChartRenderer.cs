using System.Diagnostics;
using Cluster.Tests;

namespace Cluster.Helm.Tests;

/// <summary>
/// helm/cluster rendered by tests/helm/render (helm template in Go: text/template + sprig), built once per test run
/// with the Debian packages golang-go and golang-github-masterminds-sprig-dev that .ci/run installs.
/// </summary>
public static class ChartRenderer
{
    public static string ChartDir => Path.Combine(Repo.Root, "helm", "cluster");

    /// <summary>The values files the tests render with: none (values.yaml alone), the demo's, DeepSeek-V3's.</summary>
    public static readonly string[] ValueSets = ["", "ci/demo-values.yaml", "values-deepseek-v3.yaml"];

    private static readonly Lazy<string> s_binary = new(Build);

    /// <summary>How long the last render took (the Go program, not its build).</summary>
    public static TimeSpan LastRenderTime { get; private set; }

    public static string Render(string valuesFile, params string[] extra)
    {
        List<string> args = [.. extra, "--name", "rel", "--namespace", "llm"];
        if (valuesFile.Length > 0) args.AddRange(["--values", Path.Combine(ChartDir, valuesFile)]);
        args.Add(ChartDir);
        var clock = Stopwatch.StartNew();
        string output = Run(s_binary.Value, args, Repo.Root, env: null);
        LastRenderTime = clock.Elapsed;
        return output;
    }

    /// <summary>Runs the renderer, returning (exit code, stdout, stderr): for renders that must fail.</summary>
    public static (int Code, string Stdout, string Stderr) TryRender(IEnumerable<string> args) => Exec(s_binary.Value, [.. args, ChartDir], Repo.Root, null);

    private static string Build()
    {
        string output = Path.Combine(Path.GetTempPath(), $"cluster-helm-render-{Environment.ProcessId}");
        var env = new Dictionary<string, string> { ["GOPATH"] = "/usr/share/gocode", ["GO111MODULE"] = "off", ["GOCACHE"] = Path.Combine(Path.GetTempPath(), "cluster-helm-gocache") };
        Run("go", ["build", "-o", output, "."], Path.Combine(Repo.Root, "tests", "helm", "render"), env);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => File.Delete(output);
        return output;
    }

    private static string Run(string file, IEnumerable<string> args, string dir, Dictionary<string, string>? env)
    {
        var (code, stdout, stderr) = Exec(file, args, dir, env);
        if (code != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {code}: {stderr}");
        return stdout;
    }

    private static (int, string, string) Exec(string file, IEnumerable<string> args, string dir, Dictionary<string, string>? env)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args) psi.ArgumentList.Add(a);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException($"{file} timed out"); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
