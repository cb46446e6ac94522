namespace Cluster.Tests;

/// <summary>Whether a test can use <see cref="PodNetwork"/> (kept apart so the benchmarks link PodNetwork without xunit).</summary>
public static class PodNetworkGate
{
    /// <summary>
    /// For a test: true when namespaces can be made; otherwise the reason goes to the test's output and stderr and the
    /// test returns early (xunit 2 has no dynamic skip). With CLUSTER_REQUIRE_NETNS=1 (.ci/run sets it, CI runs as
    /// root) a missing pod network fails the test instead of passing it unseen.
    /// </summary>
    public static bool Available(Xunit.Abstractions.ITestOutputHelper output)
    {
        if (PodNetwork.Unavailable() is not { } why) return true;
        Assert.False(Environment.GetEnvironmentVariable("CLUSTER_REQUIRE_NETNS") == "1", "CLUSTER_REQUIRE_NETNS=1 but no pod network: " + why);
        string message = "SKIPPED (no pod network): " + why;
        output.WriteLine(message);
        Console.Error.WriteLine(message);
        return false;
    }
}
