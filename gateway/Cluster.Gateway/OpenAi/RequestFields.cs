using System.Text.Json;

namespace Cluster.Gateway.OpenAi;

/// <summary>Typed reads of a JSON request body's fields; a wrong type or range is a 400 naming the field.</summary>
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

    public double? Number(string name, double min, double max)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double x) || !double.IsFinite(x)) throw Wrong(name, "a number", v);
        if (x < min || x > max) throw GatewayException.Invalid(name, $"'{name}' must be between {min} and {max} (got {v.GetRawText()})");
        return x;
    }

    public long? Integer(string name, long min, long max)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x)) throw Wrong(name, "an integer", v);
        if (x < min || x > max) throw GatewayException.Invalid(name, $"'{name}' must be between {min} and {max} (got {x})");
        return x;
    }

    /// <summary>OpenAI's stop: a string or an array of up to 4 non-empty strings.</summary>
    public List<string> Stops(string name)
    {
        if (Get(name) is not { } v) return [];
        if (v.ValueKind == JsonValueKind.String)
        {
            string s = v.GetString()!;
            return s.Length == 0 ? throw GatewayException.Invalid(name, $"'{name}' must not be empty") : [s];
        }
        if (v.ValueKind != JsonValueKind.Array) throw Wrong(name, "a string or an array of strings", v);
        var list = new List<string>();
        foreach (JsonElement e in v.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.String || e.GetString()!.Length == 0)
                throw GatewayException.Invalid(name, $"'{name}' must hold non-empty strings");
            list.Add(e.GetString()!);
        }
        if (list.Count > 4) throw GatewayException.Invalid(name, $"'{name}' may hold at most 4 strings (got {list.Count})");
        return list;
    }

    /// <summary>Fields whose only supported value is their default: anything else is refused, not silently ignored.</summary>
    public void OnlyDefault(string name, double neutral)
    {
        if (Number(name, double.MinValue, double.MaxValue) is double x && x != neutral)
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
