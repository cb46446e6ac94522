namespace Cluster.Bench;

/// <summary>Every benchmark by name; each lives in its own file.</summary>
public static class BenchTable
{
    public static readonly Dictionary<string, Func<string[], Task<int>>> All = new()
    {
        ["tokenizer"] = TokenizerBench.Run,
        ["engine"] = EngineBench.Run,
        ["checkpoint"] = CheckpointBench.Run,
        ["transport"] = TransportBench.Run,
        ["experts"] = ExpertsBench.Run,
        ["cluster"] = ClusterBench.Run,
        ["gateway"] = GatewayBench.Run,
        ["pd"] = PdBench.Run,
        ["failover"] = FailoverBench.Run,
        ["rebalance"] = RebalanceBench.Run,
        ["network"] = NetworkBench.Run,
        ["soak"] = SoakBench.Run,
        ["kernels"] = KernelBench.Run,
    };
}
