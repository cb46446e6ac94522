using System.Text.Json;

namespace Cluster.ExpertNode.Placement;

/// <summary>Typed reads of JSON fields whose errors name the file and the field's path.</summary>
internal sealed class JsonFields(string source)
{
    public InvalidDataException Error(string path, string problem) => new($"{source}: {path} {problem}");

    public JsonElement Field(JsonElement obj, string name, string at)
    {
        if (!obj.TryGetProperty(name, out JsonElement v)) throw new InvalidDataException($"{source}: missing {(at.Length > 0 ? at + "." : "")}{name}");
        return v;
    }

    public JsonElement Object(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.Object ? e : throw Error(path, $"must be an object (got {Kind(e)})");

    public JsonElement Array(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.Array ? e : throw Error(path, $"must be an array (got {Kind(e)})");

    public string String(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.String ? e.GetString()! : throw Error(path, $"must be a string (got {Kind(e)})");

    public int Int(JsonElement e, string path, int min)
    {
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int v)) throw Error(path, $"must be an integer (got {Text(e)})");
        if (v < min) throw Error(path, $"must be at least {min} (got {v})");
        return v;
    }

    public ulong UInt64(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetUInt64(out ulong v) ? v : throw Error(path, $"must be a non-negative integer (got {Text(e)})");

    public double Number(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetDouble(out double v) || !double.IsFinite(v)) throw Error(path, $"must be a number (got {Text(e)})");
        if (v < 0) throw Error(path, $"must not be negative (got {v})");
        return v;
    }

    private static string Kind(JsonElement e) => e.ValueKind.ToString().ToLowerInvariant();

    private static string Text(JsonElement e) => e.ValueKind is JsonValueKind.Number or JsonValueKind.String ? e.GetRawText() : Kind(e);
}
