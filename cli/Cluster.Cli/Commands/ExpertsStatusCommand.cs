using Cluster.Protos.V1;
using System.Text;
using System.Text.Json;

namespace Cluster.Cli.Commands;

/// <summary><c>cluster experts status</c>: the plan in use and every expert node's state, slots and rows, from the gateway's Control.</summary>
public static class ExpertsStatusCommand
{
    public const string Usage = "experts status " + ExpertsControl.GatewayUsage + " [--json] [--plan]";

    public static async Task<int> Run(CliArgs args, CancellationToken cancel)
    {
        ControlTarget gateway = ExpertsControl.Gateway(args);
        bool json = args.Flag("json"), plan = args.Flag("plan");
        args.RejectUnknown();
        ExpertsStatus status = await ExpertsControl.CallAsync(gateway, c => c.GetExpertsAsync(new GetExpertsRequest(), cancellationToken: cancel).ResponseAsync);
        if (plan)
        {
            Console.Out.WriteLine(status.PlanJson);
            return 0;
        }
        if (json)
        {
            Console.Out.WriteLine(Json(status, indented: true));
            return 0;
        }
        Console.Out.WriteLine($"plan version {status.PlanVersion}: {status.Replicas} replica(s) per expert, {status.RedundantExperts} redundant per layer; "
            + $"max/mean rows per node since the plan {status.MaxOverMeanRows:F3}");
        WriteTable(status, Console.Out);
        return 0;
    }

    public static void WriteTable(ExpertsStatus status, TextWriter output)
    {
        output.WriteLine($"{"node",-12} {"endpoint",-21} {"state",-10} {"plan",5} {"slots",6} {"rows",12} {"since plan",12} {"restarts",8}");
        foreach (ExpertNodeStatus n in status.Nodes)
            output.WriteLine($"{n.NodeId,-12} {n.Endpoint,-21} {n.State,-10} {n.PlanVersion,5} {n.Slots,6} {n.RowsServed,12} {n.RowsSincePlan,12} {n.Restarts,8}");
    }

    /// <summary>The status as JSON with numbers as numbers (protobuf's JSON writes 64-bit ones as strings).</summary>
    public static string Json(ExpertsStatus status, bool indented)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = indented }))
        {
            w.WriteStartObject();
            w.WriteNumber("plan_version", status.PlanVersion);
            w.WriteNumber("replicas", status.Replicas);
            w.WriteNumber("redundant_experts", status.RedundantExperts);
            w.WriteNumber("max_over_mean_rows", status.MaxOverMeanRows);
            w.WriteStartArray("nodes");
            foreach (ExpertNodeStatus n in status.Nodes)
            {
                w.WriteStartObject();
                w.WriteString("node_id", n.NodeId);
                w.WriteString("endpoint", n.Endpoint);
                w.WriteString("state", n.State);
                w.WriteNumber("plan_version", n.PlanVersion);
                w.WriteNumber("slots", n.Slots);
                w.WriteNumber("rows_served", n.RowsServed);
                w.WriteNumber("rows_since_plan", n.RowsSincePlan);
                w.WriteNumber("restarts", n.Restarts);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
