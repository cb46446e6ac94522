using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Cluster.Bench.Transport;

/// <summary>
/// grpc-js 1.14 in node: tests/Cluster.Transport.Tests/node/echo_server.js as the server and bench_client.js as the
/// client, each measurement a fresh client process. <see cref="ClientTo"/> gives the node client alone, against
/// another implementation's server.
/// </summary>
public sealed class GrpcJsSide : ITransportSide
{
    private readonly string _root;
    private readonly Process? _server;
    private readonly string _target;

    private GrpcJsSide(string name, string root, Process? server, string target)
    {
        Name = name;
        _root = root;
        _server = server;
        _target = target;
    }

    public string Name { get; }
    /// <summary>The server's address as .NET clients take it.</summary>
    public Uri Address => new("http://" + _target);

    private static string NodeDir(string root) => Path.Combine(root, "tests", "Cluster.Transport.Tests", "node");

    public static bool Installed(string root) => Directory.Exists(Path.Combine(root, "node_modules", "@grpc", "grpc-js"));

    public static async Task<GrpcJsSide> StartAsync(string root)
    {
        var server = StartNode(root, Path.Combine(NodeDir(root), "echo_server.js"));
        try { return new GrpcJsSide("grpc-js", root, server, "127.0.0.1:" + await ReadPort(server)); }
        catch
        {
            server.Kill(true);
            server.Dispose();
            throw;
        }
    }

    /// <summary>The node client alone, against a server this side does not own (http://host:port).</summary>
    public static GrpcJsSide ClientTo(string name, string root, Uri address) => new(name, root, null, address.Authority);

    public Task<TransportResult> BidiAsync(int frameBytes, double seconds) => RunClient("bidi", I(frameBytes), S(seconds));

    public Task<TransportResult> UnaryAsync(int concurrency, double seconds) => RunClient("unary", "16", S(seconds), I(concurrency));

    private async Task<TransportResult> RunClient(params string[] args)
    {
        using var p = StartNode(_root, Path.Combine(NodeDir(_root), "bench_client.js"), [_target, .. args]);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await p.WaitForExitAsync(timeout.Token);
        if (p.ExitCode != 0) throw new InvalidOperationException($"node bench_client.js exited {p.ExitCode}: {await stderr}");
        var json = JsonDocument.Parse(await stdout).RootElement;
        return new TransportResult(json.GetProperty("messages").GetInt64(), json.GetProperty("bytes").GetInt64(), json.GetProperty("seconds").GetDouble());
    }

    private static string S(double seconds) => seconds.ToString(CultureInfo.InvariantCulture);
    private static string I(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static Process StartNode(string root, string script, params string[] args)
    {
        var psi = new ProcessStartInfo("node") { WorkingDirectory = root, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(script);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NODE_PATH"] = Path.Combine(root, "node_modules");
        return Process.Start(psi) ?? throw new InvalidOperationException("could not start node");
    }

    private static async Task<string> ReadPort(Process node)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        string? line = await node.StandardOutput.ReadLineAsync(timeout.Token);
        if (line is null || !line.StartsWith("PORT ", StringComparison.Ordinal))
            throw new InvalidOperationException("the grpc-js server did not print its port: " + line + " " + await node.StandardError.ReadToEndAsync());
        return line[5..];
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is null) return;
        // echo_server.js exits when its stdin closes.
        _server.StandardInput.Close();
        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try { await _server.WaitForExitAsync(grace.Token); }
        catch (OperationCanceledException) { _server.Kill(true); }
        _server.Dispose();
    }
}
