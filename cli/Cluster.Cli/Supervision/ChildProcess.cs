using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Cluster.Cli.Supervision;

/// <summary>
/// One role of a cluster running as <c>dotnet cluster.dll serve ROLE ...</c>: its READY line (the port it bound),
/// its last log lines for a post-mortem, and a stop that asks first (SIGTERM) and then kills the process tree.
/// </summary>
public sealed class ChildProcess : IDisposable
{
    private const int KeptLogLines = 20;

    private readonly Process _process;
    private readonly Queue<string> _log = new();
    private readonly TaskCompletionSource<JsonElement> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly bool _echo;

    private ChildProcess(string name, Process process, bool echo)
    {
        Name = name;
        _process = process;
        _echo = echo;
    }

    public string Name { get; }
    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;
    /// <summary>Completes with the READY line's JSON, or fails when the process exits before printing it.</summary>
    public Task<JsonElement> Ready => _ready.Task;
    public Task Exited { get; private set; } = Task.CompletedTask;

    /// <summary>Starts the CLI that is running now (same dotnet, same cluster.dll) with <paramref name="args"/>.</summary>
    /// <summary>The environment variable that tells a restarted role how often it has been restarted (it reports the count).</summary>
    public const string RestartsVariable = "CLUSTER_RESTARTS";

    /// <summary>How often this process' role has been restarted by the supervisor that started it (0 without one).</summary>
    public static int RestartsOfThisProcess() =>
        int.TryParse(Environment.GetEnvironmentVariable(RestartsVariable), out int restarts) && restarts > 0 ? restarts : 0;

    public static ChildProcess Start(string name, IEnumerable<string> args, bool echoLogs, int restarts = 0)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        // The child exits when this pipe closes, so it never outlives a supervisor that was killed outright.
        psi.Environment[ParentWatch.Variable] = "1";
        psi.Environment[RestartsVariable] = restarts.ToString(System.Globalization.CultureInfo.InvariantCulture);
        // Running as `dotnet cluster.dll`, the entry assembly is the path to give the same host.
        string entry = typeof(ChildProcess).Assembly.Location;
        if (!Path.GetFileNameWithoutExtension(psi.FileName).Equals("cluster", StringComparison.OrdinalIgnoreCase)) psi.ArgumentList.Add(entry);
        foreach (string a in args) psi.ArgumentList.Add(a);
        var process = Process.Start(psi) ?? throw new CliException($"could not start {name}");
        var child = new ChildProcess(name, process, echoLogs);
        Task stdout = Task.Run(child.ReadStdoutAsync), stderr = Task.Run(child.ReadStderrAsync);
        child.Exited = Task.Run(async () =>
        {
            await process.WaitForExitAsync().ConfigureAwait(false);
            await Task.WhenAll(stdout, stderr).ConfigureAwait(false);
            child._ready.TrySetException(new CliException($"{name} exited with code {process.ExitCode} before it was ready"));
        });
        return child;
    }

    private async Task ReadStdoutAsync()
    {
        while (await _process.StandardOutput.ReadLineAsync().ConfigureAwait(false) is { } line)
        {
            if (line.StartsWith("READY ", StringComparison.Ordinal))
            {
                try { _ready.TrySetResult(JsonDocument.Parse(line.AsMemory(6)).RootElement.Clone()); }
                catch (JsonException e) { _ready.TrySetException(new CliException($"{Name}: unreadable READY line '{line}': {e.Message}")); }
            }
            else Remember(line);
        }
    }

    private async Task ReadStderrAsync()
    {
        while (await _process.StandardError.ReadLineAsync().ConfigureAwait(false) is { } line) Remember(line);
    }

    private void Remember(string line)
    {
        lock (_log)
        {
            _log.Enqueue(line);
            if (_log.Count > KeptLogLines) _log.Dequeue();
        }
        if (_echo) Console.Error.WriteLine($"[{Name}] {line}");
    }

    public string[] LastLogLines()
    {
        lock (_log) return [.. _log];
    }

    /// <summary>SIGTERM, then the whole process tree killed if it is still there after <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited) return;
        if (OperatingSystem.IsWindows() || Kill(_process.Id, SigTerm) != 0) _process.Kill(entireProcessTree: true);
        using var timeout = new CancellationTokenSource(grace);
        try { await _process.WaitForExitAsync(timeout.Token).ConfigureAwait(false); }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }
        _process.Dispose();
    }

    private const int SigTerm = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
