using System.Diagnostics;
using System.Threading.Channels;
using Cluster.Tests;

namespace Cluster.Transport.Tests;

/// <summary>A long-running node script (a grpc-js server) whose stdout lines the test can wait for; killed on dispose.</summary>
public sealed class NodeProcess : IDisposable
{
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly List<string> _seen = [];

    public NodeProcess(string script, params string[] args)
    {
        var psi = new ProcessStartInfo("node")
        {
            WorkingDirectory = Repo.Root,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.ArgumentList.Add(Path.Combine(Repo.Root, "tests/Cluster.Transport.Tests/node", script));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NODE_PATH"] = Repo.NodeModules;
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) _lines.Writer.TryWrite(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) _lines.Writer.TryWrite("STDERR " + e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The next line starting with the prefix (others are kept for later calls), within the timeout.</summary>
    public async Task<string> WaitForLine(string prefix, TimeSpan timeout)
    {
        lock (_seen)
        {
            int i = _seen.FindIndex(l => l.StartsWith(prefix, StringComparison.Ordinal));
            if (i >= 0) { var hit = _seen[i]; _seen.RemoveAt(i); return hit; }
        }
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var line = await _lines.Reader.ReadAsync(cts.Token);
                if (line.StartsWith(prefix, StringComparison.Ordinal)) return line;
                lock (_seen) _seen.Add(line);
            }
        }
        catch (OperationCanceledException)
        {
            lock (_seen) throw new TimeoutException($"node never printed '{prefix}' within {timeout}; output so far: {string.Join(" | ", _seen)}");
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5000);
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
