using System.Text.Json;

namespace Cluster.Gateway.OpenAi;

/// <summary>Typed reads of a JSON request body's fields; a wrong type is a 400 naming the field.</summary>
public readonly struct RequestFields(JsonElement root)
{
    public JsonElement Root { get; } = root.ValueKind == JsonValueKind.Object
        ? root : throw new GatewayException(GatewayErrorKind.InvalidRequest, "the request body must be a JSON object");

    public bool Has(string name) => Root.TryGetProperty(name, out JsonElement v) && v.ValueKind != JsonValueKind.Null;

    public JsonElement? Get(string name) => Root.TryGetProperty(name, out JsonElement v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public string? String(string name)
    {
        if (Get(name) is not { } v) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw Wrong(name, "a string", v);
    }

    public bool? Bool(string name)
    {
        if (Get(name) is not { } v) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Wrong(name, "a boolean", v),
        };
    }

    /// <summary>A finite number; its range is the caller's (<see cref="Cluster.Protos.V1.SamplingValidation"/> for sampling).</summary>
    public double? Number(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double x) || !double.IsFinite(x)) throw Wrong(name, "a number", v);
        return x;
    }

    public long? Integer(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x)) throw Wrong(name, "an integer", v);
        return x;
    }

    /// <summary>OpenAI's stop: a string or an array of strings (how many, and that none is empty, is SamplingValidation's).</summary>
    public List<string> Stops(string name)
    {
        if (Get(name) is not { } v) return [];
        if (v.ValueKind == JsonValueKind.String) return [v.GetString()!];
        if (v.ValueKind != JsonValueKind.Array) throw Wrong(name, "a string or an array of strings", v);
        var list = new List<string>(v.GetArrayLength());
        foreach (JsonElement e in v.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.String) throw Wrong(name, "a string or an array of strings", v);
            list.Add(e.GetString()!);
        }
        return list;
    }

    /// <summary>Fields whose only supported value is their default: anything else is refused, not silently ignored.</summary>
    public void OnlyDefault(string name, double neutral)
    {
        if (Number(name) is double x && x != neutral)
            throw GatewayException.Invalid(name, $"'{name}' is not supported (only {neutral})");
    }

    public static GatewayException Wrong(string name, string expected, JsonElement got) =>
        GatewayException.Invalid(name, $"'{name}' must be {expected} (got {Describe(got)})");

    private static string Describe(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "the number " + v.GetRawText(),
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => "null",
    };
}
