using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using k8s.Models;

namespace Cluster.Helm.Tests;

/// <summary>
/// gateway.apiKeys: a Secret made outside the chart reaches the gateway (and only it) as CLUSTER_API_KEYS; without
/// one the gateway gets no such variable (open, as before); the schema refuses a name Kubernetes would.
/// </summary>
public sealed class GatewayApiKeysChartTests
{
    private static IEnumerable<(string Owner, V1Container Container)> Containers(RenderedManifests m) =>
        m.Pods().SelectMany(p => (p.Spec.InitContainers ?? []).Concat(p.Spec.Containers).Select(c => (p.Owner, c)));

    private static RenderedManifests RenderWith(string overlayYaml)
    {
        string overlay = Path.Combine(Path.GetTempPath(), $"cluster-helm-keys-{Environment.ProcessId}-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(overlay, overlayYaml);
        try { return RenderedManifests.Parse(ChartRenderer.Render("", "--values", overlay)); }
        finally { File.Delete(overlay); }
    }

    [Fact]
    public void A_keys_secret_reaches_the_gateway_alone_as_CLUSTER_API_KEYS()
    {
        RenderedManifests m = RenderWith("gateway:\n  apiKeys:\n    existingSecret: cluster-api-keys\n    secretKey: keys.txt\n");
        foreach (var (owner, c) in Containers(m))
        {
            V1EnvVar? keys = c.Env?.SingleOrDefault(e => e.Name == "CLUSTER_API_KEYS");
            if (owner == "rel-cluster-gateway" && c.Name == "gateway")
            {
                Assert.NotNull(keys);
                Assert.Null(keys.Value);
                Assert.Equal("cluster-api-keys", keys.ValueFrom.SecretKeyRef.Name);
                Assert.Equal("keys.txt", keys.ValueFrom.SecretKeyRef.Key);
            }
            else Assert.Null(keys);
        }
    }

    [Fact]
    public void Without_a_secret_no_pod_gets_the_variable()
    {
        RenderedManifests m = RenderedManifests.Parse(ChartRenderer.Render(""));
        Assert.Contains(Containers(m), x => x.Owner == "rel-cluster-gateway");
        Assert.All(Containers(m), x => Assert.DoesNotContain(x.Container.Env ?? [], e => e.Name == "CLUSTER_API_KEYS"));
    }

    [Theory]
    [InlineData("existingSecret", "\"Not_A_Name\"")]
    [InlineData("secretKey", "\"\"")]
    [InlineData("secretKey", "\"a/b\"")]
    [InlineData("exisingSecret", "\"keys\"")]
    public void The_schema_refuses_a_name_kubernetes_would(string key, string value)
    {
        var schema = JsonSchema.FromText(File.ReadAllText(Path.Combine(ChartRenderer.ChartDir, "values.schema.json")));
        JsonNode values = JsonNode.Parse(ChartRenderer.Render("", "--dump-values"))!;
        values["gateway"]!["apiKeys"]![key] = JsonNode.Parse(value);
        EvaluationResults r = schema.Evaluate(JsonDocument.Parse(values.ToJsonString()).RootElement);
        Assert.False(r.IsValid, $"gateway.apiKeys.{key} = {value} passed the schema");
    }
}
