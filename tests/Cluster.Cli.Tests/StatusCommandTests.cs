using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Grpc.Core;

namespace Cluster.Cli.Tests;

/// <summary>`cluster status` against a stand-in gateway that answers GET /cluster/status with a fixed body.</summary>
public sealed class StatusCommandTests : IDisposable
{
    private const string Status = """
        {"gateway":{"queued":3,"in_flight":7,"restarts":1},"nodes":[
         {"endpoint":"127.0.0.1:9101","node_id":"prefill-0","role":"prefill","state":"ok","running":0,"queued":2,"queued_prompt_tokens":1500,
          "block_size":64,"blocks_total":1024,"blocks_used":12,"blocks_cached":40,"blocks_available":972,
          "prefix_lookup_tokens":4000,"prefix_hit_tokens":1000,"prefix_hit_rate":0.25,"prompt_tokens":4000,"generated_tokens":0,
          "kv_bytes_sent":12500000,"kv_bytes_received":0,"restarts":0},
         {"endpoint":"127.0.0.1:9102","node_id":"decode-0","role":"decode","state":"ok","running":5,"queued":0,"queued_prompt_tokens":0,
          "block_size":64,"blocks_total":2048,"blocks_used":300,"blocks_cached":0,"blocks_available":1748,
          "prefix_lookup_tokens":0,"prefix_hit_tokens":0,"prefix_hit_rate":0,"prompt_tokens":0,"generated_tokens":900,
          "kv_bytes_sent":0,"kv_bytes_received":12500000,"restarts":2},
         {"endpoint":"127.0.0.1:9103","node_id":"","role":"decode","state":"unreachable: connection refused"}]}
        """;

    private readonly HttpListener _gateway = new();
    private readonly string _url;
    private readonly Task _serving;

    public StatusCommandTests()
    {
        int port = FreePort();
        _url = $"http://127.0.0.1:{port}";
        _gateway.Prefixes.Add(_url + "/");
        _gateway.Start();
        _serving = Task.Run(ServeAsync);
    }

    private async Task ServeAsync()
    {
        while (_gateway.IsListening)
        {
            HttpListenerContext context;
            try { context = await _gateway.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException) { return; }
            bool found = context.Request.HttpMethod == "GET" && context.Request.Url!.AbsolutePath == "/cluster/status";
            byte[] body = Encoding.UTF8.GetBytes(found ? Status : """{"error":{"message":"no such path"}}""");
            context.Response.StatusCode = found ? 200 : 404;
            context.Response.ContentType = "application/json";
            await context.Response.OutputStream.WriteAsync(body);
            context.Response.Close();
        }
    }

    public void Dispose()
    {
        _gateway.Close();
        _serving.Wait(TimeSpan.FromSeconds(5));
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private static string[] Cells(string line) => line.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    [Fact]
    public void Prints_one_row_per_node_then_the_gateways_queue()
    {
        // No Control service answers (a stand-in gateway serving HTTP only): the experts part says why.
        string control = $"127.0.0.1:{FreePort()}";
        var r = ClusterProcess.Run("status", "--gateway", _url, "--control", control);
        Assert.True(r.ExitCode == 0, r.Stderr);
        string[] lines = r.Stdout.TrimEnd().Split('\n');
        Assert.StartsWith("node", lines[0]);
        Assert.Equal(
            ["prefill-0", "prefill", "ok", "0", "2", "1500", "12", "40", "972", "1024", "25.0%", "12.5", "0.0", "0", "127.0.0.1:9101"],
            Cells(lines[1]));
        Assert.Equal(
            ["decode-0", "decode", "ok", "5", "0", "0", "300", "0", "1748", "2048", "-", "0.0", "12.5", "2", "127.0.0.1:9102"],
            Cells(lines[2]));
        // A node that did not answer shows its endpoint, no numbers, and its error below the table.
        Assert.Equal(["127.0.0.1:9103", "decode", "error", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "127.0.0.1:9103"], Cells(lines[3]));
        Assert.Equal("127.0.0.1:9103: unreachable: connection refused", lines[4]);
        Assert.Equal("gateway: 3 queued, 7 in flight, 1 restarts", lines[5]);
        Assert.Equal("", lines[6]);
        Assert.StartsWith($"experts: cannot reach the gateway at {control}", lines[7]);
        Assert.Equal(8, lines.Length);
        // Columns line up: every row is as wide as the header up to the last column.
        Assert.Equal(lines[0].IndexOf("endpoint", StringComparison.Ordinal), lines[1].IndexOf("127.0.0.1", StringComparison.Ordinal));
    }

    [Fact]
    public void Json_is_the_gateways_answer()
    {
        var r = ClusterProcess.Run("status", "--gateway", _url + "/", "--json", "--control", $"127.0.0.1:{FreePort()}");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var printed = System.Text.Json.Nodes.JsonNode.Parse(r.Stdout)!.AsObject();
        // The gateway's answer plus an experts object, here saying why there is none.
        Assert.StartsWith("cannot reach the gateway at", printed["experts"]!["error"]!.GetValue<string>());
        printed.Remove("experts");
        using var served = JsonDocument.Parse(Status);
        using var rest = JsonDocument.Parse(printed.ToJsonString());
        Assert.True(JsonElement.DeepEquals(served.RootElement, rest.RootElement), r.Stdout);
    }

    [Fact]
    public void A_gateway_that_cannot_be_reached_is_a_one_line_error_naming_it()
    {
        string url = $"http://127.0.0.1:{FreePort()}";
        var r = ClusterProcess.Run("status", "--gateway", url);
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.StartsWith($"cluster status: cannot reach the gateway at {url}/cluster/status", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void An_error_status_is_a_one_line_error()
    {
        // The stand-in answers 404 anywhere but /cluster/status, as a gateway without the endpoint would.
        var r = ClusterProcess.Run("status", "--gateway", _url + "/v1");
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.Contains($"{_url}/v1/cluster/status: HTTP 404", r.Stderr);
    }

    [Theory]
    [InlineData("--gateway localhost:8000", "--gateway must be an http:// or https:// address (got 'localhost:8000')")]
    [InlineData("--gateway ftp://host", "--gateway must be an http:// or https:// address")]
    [InlineData("--jsn", "unknown option --jsn")]
    public void Bad_options_are_one_line_errors(string options, string message)
    {
        var r = ClusterProcess.Run(["status", .. options.Split(' ')]);
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.Contains(message, r.Stderr);
    }
}
