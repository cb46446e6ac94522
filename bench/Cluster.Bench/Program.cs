using Cluster.Bench;

// Each benchmark measures ours beside a reference in the same run and prints a Markdown section for RESULTS.md.
if (args.Length == 0 || !BenchTable.All.TryGetValue(args[0], out var run))
{
    Console.Error.WriteLine("usage: dotnet run -c Release --project bench/Cluster.Bench -- <" + string.Join("|", BenchTable.All.Keys) + "> [options]");
    return 2;
}
return await run(args[1..]);
