using Cluster.AttentionNode;
using Microsoft.Extensions.Logging;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster serve attention</c>: one attention node in this process, until Ctrl-C or SIGTERM.</summary>
public static class ServeAttentionCommand
{
    public const string Usage = "serve attention --model DIR [--host 127.0.0.1] [--port N] [--node-id NAME] [--plan FILE] [--dispatch bf16|fp8] [--max-batch N] [--verbose]";

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        string dir = args.Required("model");
        var options = new AttentionOptions
        {
            ModelDir = dir,
            Host = args.String("host", "127.0.0.1"),
            Port = args.Int("port", 0, 0, 65535),
            NodeId = args.String("node-id", "attention-0"),
            PlanPath = args.String("plan"),
            Dispatch = args.String("dispatch", "bf16") switch
            {
                "bf16" => DispatchFormat.Bf16,
                "fp8" => DispatchFormat.Fp8,
                var d => throw new CliException($"--dispatch must be bf16 or fp8 (got '{d}')"),
            },
            MaxBatch = args.Int("max-batch", 32, 1, 1024),
            LogLevel = args.Flag("verbose") ? LogLevel.Information : LogLevel.Warning,
        };
        args.RejectUnknown();
        if (!Directory.Exists(dir)) throw new CliException($"{dir}: model directory not found");
        if (options.PlanPath is { } plan && !File.Exists(plan)) throw new CliException($"{plan}: plan file not found");
        return await AttentionHost.RunAsync(options, cancel);
    }
}
