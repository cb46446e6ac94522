using Cluster.Cli;
using Cluster.Cli.Supervision;

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
// SIGTERM (what Kubernetes and `cluster up` send) stops the command the way Ctrl-C does: without this the runtime ends
// the process once ProcessExit's handlers return, so a role would exit with 143 without draining or deregistering.
using var sigterm = OperatingSystem.IsWindows() ? null : System.Runtime.InteropServices.PosixSignalRegistration.Create(
    System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; cts.Cancel(); });
// ProcessExit also fires after a normal return, when cts is already disposed.
AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { cts.Cancel(); } catch (ObjectDisposedException) { } };
ParentWatch.StartIfSupervised(cts);

if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
{
    PrintUsage(Console.Out);
    return args.Length == 0 ? 2 : 0;
}

// Verbs are one or two words ("generate", "model init"); the longest match wins.
Command? command = null;
int used = 0;
foreach (Command c in CommandTable.All)
{
    string[] words = c.Verb.Split(' ');
    if (words.Length > args.Length || words.Length <= used) continue;
    bool match = true;
    for (int i = 0; i < words.Length; i++) match &= args[i] == words[i];
    if (match) { command = c; used = words.Length; }
}
if (command is null)
{
    Console.Error.WriteLine($"cluster: unknown command '{string.Join(' ', args.Take(2))}' (run 'cluster help')");
    return 2;
}

try
{
    var options = new CliArgs(args[used..]);
    if (options.Flag("help")) { Console.WriteLine($"usage: cluster {command.Usage}"); return 0; }
    return await command.Run(options, cts.Token);
}
catch (CliException e)
{
    Console.Error.WriteLine($"cluster {command.Verb}: {e.Message}");
    return 2;
}
catch (OperationCanceledException) when (cts.IsCancellationRequested)
{
    Console.Error.WriteLine($"cluster {command.Verb}: cancelled");
    return 130;
}
catch (Exception e) when (e is IOException or InvalidDataException or FormatException or NotSupportedException or UnauthorizedAccessException or ArgumentException)
{
    Console.Error.WriteLine($"cluster {command.Verb}: {e.Message}");
    return 1;
}

static void PrintUsage(TextWriter w)
{
    w.WriteLine("usage: cluster <command> [options]");
    w.WriteLine();
    foreach (Command c in CommandTable.All) w.WriteLine($"  cluster {c.Usage}");
}
