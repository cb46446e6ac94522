namespace Cluster.Cli.Supervision;

/// <summary>
/// A role started by <c>cluster up</c> gets a standard-input pipe from its supervisor and nothing is ever written to
/// it: end of input means the supervisor is gone (even if it was SIGKILLed), so the role shuts down as on SIGTERM.
/// </summary>
public static class ParentWatch
{
    public const string Variable = "CLUSTER_SUPERVISED";

    public static void StartIfSupervised(CancellationTokenSource shutdown)
    {
        if (Environment.GetEnvironmentVariable(Variable) != "1") return;
        var reader = new Thread(() =>
        {
            try
            {
                using Stream stdin = Console.OpenStandardInput();
                var buffer = new byte[256];
                while (stdin.Read(buffer, 0, buffer.Length) > 0) { }
            }
            catch (IOException) { }
            try { shutdown.Cancel(); } catch (ObjectDisposedException) { }
        }) { IsBackground = true, Name = "parent-watch" };
        reader.Start();
    }
}
