using System.Globalization;
using System.Text.Json;

namespace Cluster.Cli.Commands;

/// <summary>
/// The gateway's <c>GET /cluster/status</c> answer as one table, a row per attention node, then the gateway's queue.
/// A field a node did not report (one that cannot be reached reports only its error) shows as "-".
/// </summary>
public static class StatusTable
{
    private static readonly string[] Header =
        ["node", "role", "state", "running", "queued", "queued prompt", "blocks used", "cached", "free", "total", "prefix hits", "kv MB sent", "kv MB recv", "restarts", "endpoint"];

    /// <summary>Columns of text; the rest are numbers and are aligned right.</summary>
    private static readonly bool[] LeftAligned = [true, true, true, false, false, false, false, false, false, false, false, false, false, false, true];

    public static void Write(JsonElement status, TextWriter output)
    {
        if (status.ValueKind != JsonValueKind.Object || !status.TryGetProperty("nodes", out JsonElement nodes) || nodes.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException("the gateway's status has no 'nodes' array");
        var rows = new List<string[]> { Header };
        var errors = new List<string>();
        foreach (JsonElement node in nodes.EnumerateArray())
        {
            string name = Text(node, "node_id") is { Length: > 0 } id ? id : Text(node, "endpoint");
            string state = Text(node, "state");
            if (state != "ok")
            {
                errors.Add($"{name}: {state}");
                state = "error";
            }
            rows.Add([
                name, Text(node, "role"), state,
                Count(node, "running"), Count(node, "queued"), Count(node, "queued_prompt_tokens"),
                Count(node, "blocks_used"), Count(node, "blocks_cached"), Count(node, "blocks_available"), Count(node, "blocks_total"),
                HitRate(node), Megabytes(node, "kv_bytes_sent"), Megabytes(node, "kv_bytes_received"), Count(node, "restarts"), Text(node, "endpoint"),
            ]);
        }

        var widths = new int[Header.Length];
        foreach (string[] row in rows)
            for (int c = 0; c < row.Length; c++) widths[c] = Math.Max(widths[c], row[c].Length);
        foreach (string[] row in rows)
        {
            var line = new System.Text.StringBuilder();
            for (int c = 0; c < row.Length; c++)
            {
                if (c > 0) line.Append("  ");
                line.Append(LeftAligned[c] ? row[c].PadRight(widths[c]) : row[c].PadLeft(widths[c]));
            }
            output.WriteLine(line.ToString().TrimEnd());
        }
        foreach (string error in errors) output.WriteLine(error);

        if (status.TryGetProperty("gateway", out JsonElement gateway))
            output.WriteLine($"gateway: {Count(gateway, "queued")} queued, {Count(gateway, "in_flight")} in flight, {Count(gateway, "restarts")} restarts");
    }

    private static string Text(JsonElement e, string name) =>
        e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "-";

    private static string Count(JsonElement e, string name) =>
        e.TryGetProperty(name, out JsonElement v) && v.TryGetUInt64(out ulong n) ? n.ToString(CultureInfo.InvariantCulture) : "-";

    private static string Megabytes(JsonElement e, string name) =>
        e.TryGetProperty(name, out JsonElement v) && v.TryGetUInt64(out ulong n) ? (n / 1e6).ToString("F1", CultureInfo.InvariantCulture) : "-";

    /// <summary>Share of looked-up prompt tokens found in the prefix cache; "-" before any lookup.</summary>
    private static string HitRate(JsonElement e)
    {
        if (!e.TryGetProperty("prefix_lookup_tokens", out JsonElement lookups) || !lookups.TryGetUInt64(out ulong n) || n == 0) return "-";
        if (!e.TryGetProperty("prefix_hit_rate", out JsonElement rate) || !rate.TryGetDouble(out double r)) return "-";
        return (r * 100).ToString("F1", CultureInfo.InvariantCulture) + "%";
    }
}
