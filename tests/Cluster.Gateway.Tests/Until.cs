namespace Cluster.Gateway.Tests;

/// <summary>Waits for a state other threads bring about; fails naming it if it never comes (the bound is generous, not a timing check).</summary>
public static class Until
{
    public static async Task TrueAsync(Func<bool> condition, Func<string> state)
    {
        var giveUp = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            if (DateTime.UtcNow > giveUp) Assert.Fail("gave up waiting; " + state());
            await Task.Delay(10);
        }
    }
}
