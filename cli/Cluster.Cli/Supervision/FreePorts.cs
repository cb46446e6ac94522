using System.Net;
using System.Net.Sockets;

namespace Cluster.Cli.Supervision;

/// <summary>Loopback ports free right now, for roles whose addresses must be known before they start (the plan names them).</summary>
public static class FreePorts
{
    public static int[] Take(int count)
    {
        // All listeners open at once, so the same port is not handed out twice.
        var listeners = new TcpListener[count];
        try
        {
            for (int i = 0; i < count; i++)
            {
                listeners[i] = new TcpListener(IPAddress.Loopback, 0);
                listeners[i].Start();
            }
            return Array.ConvertAll(listeners, l => ((IPEndPoint)l.LocalEndpoint).Port);
        }
        finally
        {
            foreach (var l in listeners) l?.Stop();
        }
    }

    public static void CheckFree(int port, string option)
    {
        try
        {
            var l = new TcpListener(IPAddress.Loopback, port);
            l.Start();
            l.Stop();
        }
        catch (SocketException) { throw new CliException($"{option} {port}: the port is in use"); }
    }
}
