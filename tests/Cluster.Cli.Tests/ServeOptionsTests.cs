namespace Cluster.Cli.Tests;

/// <summary>`cluster serve attention` and `cluster serve gateway` refuse bad options with one line before loading anything.</summary>
public sealed class ServeOptionsTests : IDisposable
{
    private readonly string _model = Directory.CreateTempSubdirectory("cluster-cli-serve-").FullName;

    public void Dispose() => Directory.Delete(_model, recursive: true);

    [Theory]
    [InlineData("serve attention --role middle", "cluster serve attention: --role: unknown role 'middle' (expected prefill, decode or both)")]
    [InlineData("serve attention --kv-cache-bytes lots", "cluster serve attention: --kv-cache-bytes must be a size: bytes, or a number with K, M, G, T, KiB, MiB, GiB or TiB (got 'lots')")]
    [InlineData("serve attention --kv-cache-dtype int8", "cluster serve attention: --kv-cache-dtype must be bf16 or f32 (got 'int8')")]
    [InlineData("serve attention --kv-block-size 0", "cluster serve attention: --kv-block-size must be between 1 and 65536 (got 0)")]
    [InlineData("serve attention --prefill-chunk -5", "cluster serve attention: --prefill-chunk must be between 1 and 1048576 (got -5)")]
    [InlineData("serve attention --no-prefix-cache maybe", "cluster serve attention: --no-prefix-cache takes no value (got 'maybe')")]
    [InlineData("serve attention --cluster-tls-dir /nonexistent-cluster-tls", "cluster serve attention: --cluster-tls-dir: cluster TLS: '/nonexistent-cluster-tls/ca.crt' not found")]
    [InlineData("serve expert --plan p.json --node-id e --cluster-tls-dir /nonexistent-cluster-tls", "cluster serve expert: --cluster-tls-dir: cluster TLS: '/nonexistent-cluster-tls/ca.crt' not found")]
    [InlineData("serve attention --threads 0", "cluster serve attention: --threads must be between 1 and 1024 (got 0)")]
    [InlineData("serve expert --plan p.json --node-id e --threads many", "cluster serve expert: --threads must be")]
    [InlineData("up --expert-threads 0", "cluster up: --expert-threads must be between 1 and 1024 (got 0)")]
    [InlineData("serve attention --lock-weights always", "cluster serve attention: --lock-weights takes no value (got 'always')")]
    [InlineData("serve expert --plan p.json --node-id e --lock-weights all", "cluster serve expert: --lock-weights takes no value (got 'all')")]
    [InlineData("serve gateway", "cluster serve gateway: no attention node: give --attention-nodes, or --prefill-nodes and --decode-nodes")]
    [InlineData("serve gateway --attention-nodes 127.0.0.1:1 --rebalance-threshold 1.3", "cluster serve gateway: --rebalance-threshold goes with --rebalance-interval")]
    [InlineData("serve gateway --attention-nodes 127.0.0.1:1 --rebalance-interval 0.5", "cluster serve gateway: --rebalance-interval must be between 1 and 86400 (got 0.5)")]
    [InlineData("serve gateway --attention-nodes 127.0.0.1:1 --rebalance-interval 10 --rebalance-threshold 0.9", "cluster serve gateway: --rebalance-threshold must be between 1 and 100 (got 0.9)")]
    [InlineData("up --rebalance-threshold 1.3", "cluster up: --rebalance-threshold goes with --rebalance-interval")]
    [InlineData("serve gateway --prefill-nodes 127.0.0.1:1", "cluster serve gateway: --prefill-nodes and --decode-nodes go together")]
    [InlineData("serve gateway --attention-nodes 127.0.0.1:1 --decode-nodes 127.0.0.1:2", "cluster serve gateway: --prefill-nodes and --decode-nodes go together")]
    [InlineData("serve gateway --decode-nodes , --prefill-nodes 127.0.0.1:1", "cluster serve gateway: --decode-nodes lists no node")]
    [InlineData("serve gateway --attention-nodes 127.0.0.1:1 --max-queued-requests -1", "cluster serve gateway: --max-queued-requests must be between 0 and 1000000 (got -1)")]
    [InlineData("serve gateway --attention-nodes 127.0.0.1:1 --max-migrations 17", "cluster serve gateway: --max-migrations must be between 0 and 16 (got 17)")]
    [InlineData("serve gateway --attention-nodes 127.0.0.1:1 --default-max-tokens 0", "cluster serve gateway: --default-max-tokens must be between 1 and")]
    [InlineData("serve gateway --discovery consul", "cluster serve gateway: --discovery consul needs --consul http://HOST:8500 (the local Consul agent)")]
    [InlineData("serve gateway --discovery zookeeper", "cluster serve gateway: --discovery must be static, kubernetes or consul (got 'zookeeper')")]
    [InlineData("serve gateway --attention-nodes 127.0.0.1:1 --consul http://127.0.0.1:8500", "cluster serve gateway: --consul goes with --discovery consul")]
    [InlineData("serve gateway --discovery consul --consul ftp://x", "cluster serve gateway: --consul: 'ftp://x' is not an http:// or https:// address")]
    [InlineData("serve gateway --discovery consul --consul http://127.0.0.1:8500 --attention-nodes 127.0.0.1:1", "cluster serve gateway: --attention-nodes, --prefill-nodes and --decode-nodes are for --discovery static; with consul give services")]
    [InlineData("serve gateway --discovery consul --consul http://127.0.0.1:8500 --prefill-service p", "cluster serve gateway: --prefill-service and --decode-service go together")]
    [InlineData("serve gateway --discovery kubernetes", "cluster serve gateway: --discovery kubernetes needs --attention-service HOST:PORT, or --prefill-service and --decode-service")]
    [InlineData("serve gateway --discovery kubernetes --attention-service attention", "cluster serve gateway: --attention-service: 'attention' is not HOST:PORT")]
    [InlineData("serve gateway --attention-nodes 127.0.0.1:1 --attention-service a:1", "cluster serve gateway: --attention-service, --prefill-service and --decode-service need --discovery kubernetes or consul")]
    [InlineData("serve attention --discovery consul --consul http://127.0.0.1:8500", "cluster serve attention: --discovery consul needs a fixed port or --advertise HOST:PORT")]
    [InlineData("serve attention --discovery consul --consul http://127.0.0.1:8500 --host 0.0.0.0 --port 9000", "cluster serve attention: --host 0.0.0.0 is no address to dial: give --advertise HOST:PORT with --discovery consul")]
    [InlineData("serve attention --advertise 10.0.0.1:9000", "cluster serve attention: --advertise goes with --discovery consul")]
    public void Bad_options_are_one_line_errors(string command, string message)
    {
        var r = ClusterProcess.Run([.. command.Split(' '), "--model", _model]);
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.StartsWith(message, r.Stderr);
    }

    [Fact]
    public void Usage_lists_the_new_command_and_options()
    {
        var r = ClusterProcess.Run("help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("cluster status [--gateway http://127.0.0.1:8000] [--control 127.0.0.1:8001] [--cluster-token-file FILE] [--json]", r.Stdout);
        Assert.Contains("cluster experts rebalance [--gateway 127.0.0.1:8001] [--cluster-token-file FILE] [--every SECONDS]", r.Stdout);
        Assert.Contains("cluster serve attention", r.Stdout);
        Assert.Contains("[--api-keys-file FILE] [--cluster-token-file FILE]", r.Stdout);
        Assert.Contains("--role prefill|decode|both", r.Stdout);
        Assert.Contains("[--prefill-nodes N --decode-nodes M]", r.Stdout);
        Assert.Contains("--kv-cache-bytes SIZE", r.Stdout);
        Assert.Contains("[--cluster-token-file FILE] [--cluster-tls-dir DIR]", r.Stdout);
        Assert.Contains("[--cluster-tls | --cluster-tls-dir DIR]", r.Stdout);
    }

    [Fact]
    public void Cluster_tls_without_the_token_is_refused()
    {
        string dir = Directory.CreateTempSubdirectory("cluster-tls-args-").FullName;
        try
        {
            Cluster.Transport.ClusterTls.Generate(dir);
            var r = ClusterProcess.Run("serve", "attention", "--model", _model, "--cluster-tls-dir", dir);
            Assert.Equal(2, r.ExitCode);
            Assert.StartsWith($"cluster serve attention: --cluster-tls-dir ({dir}) needs the cluster token too", r.Stderr);
        }
        finally { Directory.Delete(dir, true); }
    }
}
