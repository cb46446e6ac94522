using System.Globalization;
using Cluster.Bench.Transport;

namespace Cluster.Bench;

/// <summary>
/// Loopback gRPC throughput, in one run and side by side: the project's stack on Grpc.AspNetCore / Grpc.Net.Client
/// (Cluster.Transport, server and client in this process, workstation GC) and grpc-js 1.14 (node server and node
/// client, two processes). Each measures a bidirectional stream's messages/s for 1 KB frames and GB/s for 1 MB
/// frames, and unary calls/s with 32 calls in flight; our client against the grpc-js server and the grpc-js client
/// against our server add a 1 MB row.
/// </summary>
public static class TransportBench
{
    private const int Concurrency = 32;
    private const int MaxMessageSize = 64 * TransportMeasurement.OneMb;
    private const int Rounds = 3;

    public static async Task<int> Run(string[] args)
    {
        double seconds = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 2;
        string root = BenchEnvironment.RepoRoot();
        if (!GrpcJsSide.Installed(root))
        {
            Console.Error.WriteLine("transport bench: node_modules/@grpc/grpc-js not found (run 'npm ci' at the repository root)");
            return 1;
        }

        // Ours is the side compared with every other.
        await using var fresh = await NewSide.StartAsync(MaxMessageSize);
        await using var js = await GrpcJsSide.StartAsync(root);
        ITransportSide[] sides = [fresh, js];
        await using var newToJs = NewSide.ConnectTo("new client -> grpc-js server", js.Address, MaxMessageSize);
        await using var jsToNew = GrpcJsSide.ClientTo("grpc-js client -> new server", root, fresh.Address);
        ITransportSide[] crossed = [newToJs, jsToNew];

        TransportMeasurement[] measurements = [TransportMeasurement.Bidi1K, TransportMeasurement.Bidi1M, TransportMeasurement.Unary(Concurrency)];
        var best = new Dictionary<(TransportMeasurement, ITransportSide), TransportResult>();

        Console.Error.WriteLine($"transport bench: {Rounds} rounds of {S(seconds)} s per measurement, {string.Join(", ", sides.Select(s => s.Name))} alternating");
        // Warm-up: JIT on the .NET sides, connection set-up and V8 optimisation on grpc-js.
        foreach (var side in sides.Concat(crossed))
            foreach (var m in side is GrpcJsSide ? [TransportMeasurement.Bidi1K] : measurements)
                await m.Run(side, 0.5);

        // The machine is shared, so each side keeps its best of several rounds; within a round the sides take
        // turns on each measurement, and the side that goes first rotates from round to round.
        for (int round = 0; round < Rounds; round++)
        {
            Console.Error.WriteLine($"transport bench: round {round + 1}/{Rounds} (load average {BenchEnvironment.LoadAverage()})");
            foreach (var m in measurements)
                for (int i = 0; i < sides.Length; i++)
                    await Measure(best, m, sides[(i + round) % sides.Length], seconds);
            foreach (var side in crossed) await Measure(best, TransportMeasurement.Bidi1M, side, seconds);
        }

        Console.WriteLine("## Transport: Cluster.Transport vs grpc-js");
        Console.WriteLine();
        Console.WriteLine($"Loopback gRPC over cleartext HTTP/2, best of {Rounds} alternating rounds of {S(seconds)} s per measurement after a warm-up; " +
                          $"grpc-js 1.14 on node {BenchEnvironment.NodeVersion()}; load average {BenchEnvironment.LoadAverage()} at the end:");
        Console.WriteLine();
        var others = sides.Where(s => s != fresh).ToArray();
        Console.WriteLine("| measurement | " + string.Join(" | ", sides.Select(s => s.Name)) + " | " + string.Join(" | ", others.Select(o => "new / " + Short(o))) + " |");
        Console.WriteLine("|---|" + string.Concat(Enumerable.Repeat("---:|", sides.Length + others.Length)));
        foreach (var m in measurements)
        {
            double ours = m.Value(best[(m, fresh)]);
            Console.WriteLine($"| {m.Name} | " + string.Join(" | ", sides.Select(s => F(m.Value(best[(m, s)]), m.Format))) + " | " +
                              string.Join(" | ", others.Select(o => Ratio(ours, m.Value(best[(m, o)])))) + " |");
        }
        Console.WriteLine();
        Console.WriteLine("Across implementations, 1 MB frames (GB/s), against grpc-js with itself:");
        Console.WriteLine();
        Console.WriteLine("| client -> server | GB/s | / grpc-js -> grpc-js |");
        Console.WriteLine("|---|---:|---:|");
        double jsAlone = TransportMeasurement.Bidi1M.Value(best[(TransportMeasurement.Bidi1M, js)]);
        foreach (var side in crossed)
        {
            double v = TransportMeasurement.Bidi1M.Value(best[(TransportMeasurement.Bidi1M, side)]);
            Console.WriteLine($"| {side.Name} | {F(v, "F2")} | {Ratio(v, jsAlone)} |");
        }
        return 0;
    }

    private static async Task Measure(Dictionary<(TransportMeasurement, ITransportSide), TransportResult> best, TransportMeasurement m, ITransportSide side, double seconds)
    {
        var r = await m.Run(side, seconds);
        Console.Error.WriteLine($"  {side.Name,-32} {m.Name,-50} {F(m.Value(r), m.Format)}");
        best[(m, side)] = TransportResult.Best(best.GetValueOrDefault((m, side)), r);
    }

    private static string Short(ITransportSide side) => side.Name.Split(' ')[0];
    private static string Ratio(double a, double b) => b > 0 ? (a / b).ToString("F2", CultureInfo.InvariantCulture) + "x" : "-";
    private static string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);
    private static string S(double seconds) => seconds.ToString(CultureInfo.InvariantCulture);
}
