namespace Cluster.AttentionNode.Tests;

/// <summary>The scheduler knows nothing of the transport or of how experts are reached: its failures are its own type, mapped by the service.</summary>
public sealed class SchedulingDependencyTests
{
    private static readonly string[] Forbidden = ["Grpc.", "Cluster.Transport", "Cluster.ExpertNode", "RpcException", "StatusCode"];

    [Fact]
    public void NoSchedulingFileNamesTheTransportOrTheExpertClient()
    {
        string root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Cluster.sln"))) root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("no Cluster.sln above the tests");
        string[] files = Directory.GetFiles(Path.Combine(root, "attention-node", "Cluster.AttentionNode", "Scheduling"), "*.cs");
        Assert.Contains(files, f => f.EndsWith("SchedulePolicy.cs", StringComparison.Ordinal));
        var found = files.SelectMany(f => Forbidden.Where(File.ReadAllText(f).Contains).Select(word => $"{Path.GetFileName(f)}: {word}")).ToList();
        Assert.True(found.Count == 0, "the scheduler names " + string.Join(", ", found));
    }
}
