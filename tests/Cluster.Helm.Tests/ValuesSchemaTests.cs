using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;

namespace Cluster.Helm.Tests;

/// <summary>
/// values.schema.json (what helm install checks before rendering) against the merged values of each values file
/// (merged by the renderer's --dump-values, Helm's rules), and against values with one key misspelt or mistyped:
/// the documented layouts pass, the broken ones are refused naming the key.
/// </summary>
public sealed class ValuesSchemaTests
{
    private static readonly Lazy<JsonSchema> s_schema = new(() => JsonSchema.FromText(File.ReadAllText(Path.Combine(ChartRenderer.ChartDir, "values.schema.json"))));

    public static TheoryData<string> ValueSets => [.. ChartRenderer.ValueSets];

    private static EvaluationResults Evaluate(JsonNode values) =>
        s_schema.Value.Evaluate(JsonDocument.Parse(values.ToJsonString()).RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });

    private static JsonNode Merged(string values) => JsonNode.Parse(ChartRenderer.Render(values, "--dump-values"))!;

    private static string Errors(EvaluationResults r) =>
        string.Join("; ", (r.Details ?? []).Where(d => d.Errors is { Count: > 0 }).Select(d => $"{d.InstanceLocation}: {string.Join(", ", d.Errors!.Values)}"));

    [Theory, MemberData(nameof(ValueSets))]
    public void EveryShippedValuesFileIsAccepted(string values)
    {
        EvaluationResults r = Evaluate(Merged(values));
        Assert.True(r.IsValid, Errors(r));
    }

    [Theory]
    [InlineData("experts", "replcas", "2")]
    [InlineData("gateway.autoscaling", "maxReplica", "4")]
    [InlineData("", "atention", "{}")]
    public void AMisspeltKeyIsRefused(string parent, string key, string value)
    {
        JsonNode values = Merged("");
        JsonObject target = parent.Split('.', StringSplitOptions.RemoveEmptyEntries).Aggregate(values.AsObject(), (o, k) => o[k]!.AsObject());
        target[key] = JsonNode.Parse(value);
        EvaluationResults r = Evaluate(values);
        Assert.False(r.IsValid);
        string at = "/" + string.Join('/', parent.Split('.', StringSplitOptions.RemoveEmptyEntries).Append(key));
        Assert.Contains(r.Details ?? [], d => d.InstanceLocation.ToString() == at || (d.Errors?.Values.Any(e => e.Contains(key, StringComparison.Ordinal)) ?? false)
            || (d.InstanceLocation.ToString() == at[..at.LastIndexOf('/')] && d.Errors is { Count: > 0 }));
    }

    [Theory]
    [InlineData("experts", "replicas", "\"two\"")]
    [InlineData("attention", "mode", "\"split\"")]
    [InlineData("model", "source", "\"s3\"")]
    [InlineData("gateway", "httpPort", "70000")]
    public void AWrongTypeOrValueIsRefused(string parent, string key, string value)
    {
        JsonNode values = Merged("");
        values[parent]![key] = JsonNode.Parse(value);
        Assert.False(Evaluate(values).IsValid, $"{parent}.{key} = {value} passed the schema");
    }

    /// <summary>The schema lists exactly the keys values.yaml documents: none undocumented, none the schema forgot.</summary>
    [Fact]
    public void TheSchemaDescribesEveryKeyOfValuesYaml()
    {
        JsonNode values = Merged("");
        JsonNode schema = JsonNode.Parse(File.ReadAllText(Path.Combine(ChartRenderer.ChartDir, "values.schema.json")))!;
        var missing = new List<string>();
        Walk(values, schema, "", missing);
        Assert.True(missing.Count == 0, "keys of values.yaml without a schema entry: " + string.Join(", ", missing));
    }

    private static void Walk(JsonNode? value, JsonNode? schema, string path, List<string> missing)
    {
        if (value is not JsonObject obj || schema?["properties"] is not JsonObject props) return;
        foreach (var (key, child) in obj)
        {
            if (props[key] is not { } sub) { missing.Add(path + key); continue; }
            Walk(child, sub, path + key + ".", missing);
        }
    }
}
