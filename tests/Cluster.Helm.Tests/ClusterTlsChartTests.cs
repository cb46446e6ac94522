using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using k8s.Models;

namespace Cluster.Helm.Tests;

/// <summary>
/// clusterTls: the chart's generated Secret holds a CA and a certificate it signed for every node pod's DNS name
/// (parsed and chain-built here, not just looked at), or the operator's Secret is named instead; every role's
/// container mounts it read-only with CLUSTER_TLS_DIR; the nodes, whose gRPC ports then speak TLS, are probed over
/// HTTP; off, none of it is rendered.
/// </summary>
public sealed class ClusterTlsChartTests
{
    private const string TlsDir = "/etc/cluster/tls";
    private const string GeneratedSecret = "rel-cluster-cluster-tls";

    public static TheoryData<string> ValueSets => [.. ChartRenderer.ValueSets];

    private static RenderedManifests RenderWith(string values, string overlayYaml)
    {
        string overlay = Path.Combine(Path.GetTempPath(), $"cluster-helm-tls-{Environment.ProcessId}-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(overlay, overlayYaml);
        try { return RenderedManifests.Parse(ChartRenderer.Render(values, "--values", overlay)); }
        finally { File.Delete(overlay); }
    }

    /// <summary>The role workloads (not the helm test pod, a client of the public API): owner, pod spec, pool labels.</summary>
    private static List<(string Owner, V1PodSpec Spec, string Role)> Roles(RenderedManifests m) =>
        [.. m.Pods().Where(p => p.Metadata.Labels["cluster.example.com/role"] != "test").Select(p => (p.Owner, p.Spec, p.Metadata.Labels["cluster.example.com/role"]))];

    [Theory, MemberData(nameof(ValueSets))]
    public void TheGeneratedSecretHoldsACaAndACertificateItSignedForEveryNodePod(string values)
    {
        RenderedManifests m = RenderWith(values, "clusterTls:\n  enabled: true\n");
        V1Secret secret = m.Of<V1Secret>().Single(s => s.Metadata.Name == GeneratedSecret);
        Assert.Equal("kubernetes.io/tls", secret.Type);
        Assert.Equal("keep", secret.Metadata.Annotations["helm.sh/resource-policy"]);
        Assert.Equal(["ca.crt", "tls.crt", "tls.key"], secret.Data.Keys.Order());

        using X509Certificate2 ca = X509Certificate2.CreateFromPem(Encoding.ASCII.GetString(secret.Data["ca.crt"]));
        using X509Certificate2 leaf = X509Certificate2.CreateFromPem(Encoding.ASCII.GetString(secret.Data["tls.crt"]), Encoding.ASCII.GetString(secret.Data["tls.key"]));
        Assert.True(leaf.HasPrivateKey, "tls.key is not tls.crt's key");
        Assert.True(ca.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority, "ca.crt is not a CA");
        Assert.NotEqual(ca.Subject, leaf.Subject);

        // What a client that trusts ca.crt alone does.
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        Assert.True(chain.Build(leaf), "tls.crt does not chain to ca.crt: " + string.Join(", ", chain.ChainStatus.Select(s => s.StatusInformation)));
        Assert.Equal(ca.Thumbprint, chain.ChainElements[^1].Certificate.Thumbprint);
        Assert.Contains(leaf.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single().EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>(), o => o.Value == "1.3.6.1.5.5.7.3.1");

        var san = leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        string[] dns = [.. san.EnumerateDnsNames()];
        Assert.Contains("localhost", dns);
        Assert.Contains(san.EnumerateIPAddresses(), ip => ip.ToString() == "127.0.0.1");
        // Every node pod's DNS name (pod.<governing Service>.<ns>.svc.<domain>) falls under one wildcard.
        foreach (V1StatefulSet set in m.Of<V1StatefulSet>())
            Assert.Contains($"*.{set.Spec.ServiceName}.llm.svc.cluster.local", dns);
        Assert.Equal(m.Of<V1StatefulSet>().Count() + 1, dns.Length);
    }

    [Theory, MemberData(nameof(ValueSets))]
    public void EveryRoleMountsTheSecretReadOnlyAndNamesItsFolder(string values)
    {
        RenderedManifests m = RenderWith(values, "clusterTls:\n  enabled: true\n");
        var roles = Roles(m);
        Assert.Equal(m.Of<V1StatefulSet>().Count() + 1, roles.Count);
        foreach (var (owner, spec, _) in roles)
        {
            V1Volume volume = Assert.Single(spec.Volumes, v => v.Secret?.SecretName == GeneratedSecret);
            Assert.Equal(0b100_100_000, volume.Secret.DefaultMode);
            V1Container c = Assert.Single(spec.Containers);
            V1VolumeMount mount = Assert.Single(c.VolumeMounts, x => x.Name == volume.Name);
            Assert.Equal(TlsDir, mount.MountPath);
            Assert.True(mount.ReadOnlyProperty, $"{owner}: the TLS Secret is mounted writable");
            Assert.Equal(TlsDir, c.Env.Single(e => e.Name == "CLUSTER_TLS_DIR").Value);
            // The token still travels beside it.
            Assert.Single(c.Env, e => e.Name == "CLUSTER_TOKEN");
            foreach (V1Container init in spec.InitContainers ?? [])
            {
                Assert.DoesNotContain(init.VolumeMounts ?? [], x => x.Name == volume.Name);
                Assert.DoesNotContain(init.Env ?? [], e => e.Name == "CLUSTER_TLS_DIR");
            }
        }
    }

    [Theory, MemberData(nameof(ValueSets))]
    public void TheNodesAreProbedOverHttpAndTheirGrpcServicesAreNotCleartext(string values)
    {
        RenderedManifests m = RenderWith(values, "clusterTls:\n  enabled: true\n");
        foreach (var (owner, spec, role) in Roles(m))
        {
            V1Container c = spec.Containers.Single();
            if (role == "gateway")
            {
                // The gateway's ports do not change: native grpc probes on its public gRPC port.
                int grpc = c.Ports.Single(p => p.Name == "grpc").ContainerPort;
                Assert.All(new[] { c.StartupProbe, c.ReadinessProbe, c.LivenessProbe }, p => Assert.Equal(grpc, p.Grpc.Port));
                continue;
            }
            int http = c.Ports.Single(p => p.Name == "http-metrics").ContainerPort;
            Assert.Contains($"{http}", c.Args[c.Args.IndexOf("--http-port") + 1]);
            foreach (var (name, probe, path) in new[] { ("startup", c.StartupProbe, "/readyz"), ("readiness", c.ReadinessProbe, "/readyz"), ("liveness", c.LivenessProbe, "/healthz") })
            {
                Assert.True(probe.Grpc is null, $"{owner}: a grpc {name} probe against a TLS port");
                Assert.Equal(path, probe.HttpGet.Path);
                Assert.Equal($"{http}", probe.HttpGet.Port.Value);
                Assert.True(probe.HttpGet.Scheme is null or "HTTP", $"{owner}: the {name} probe is not plain HTTP");
                Assert.True(probe.PeriodSeconds > 0 && probe.FailureThreshold > 0, $"{owner}: {name} probe without period or threshold");
            }
        }
        foreach (V1Service svc in m.Of<V1Service>())
        {
            V1ServicePort? grpc = svc.Spec.Ports.SingleOrDefault(p => p.Name == "grpc");
            if (grpc is null) continue;
            string expected = svc.Metadata.Labels["app.kubernetes.io/component"] == "gateway" ? "kubernetes.io/h2c" : "https";
            Assert.Equal(expected, grpc.AppProtocol);
        }
    }

    [Fact]
    public void AnExistingSecretIsMountedAndNoneIsGenerated()
    {
        RenderedManifests m = RenderWith("", "clusterTls:\n  enabled: true\n  existingSecret: cluster-tls\n");
        Assert.DoesNotContain(m.Of<V1Secret>(), s => s.Type == "kubernetes.io/tls" || s.Metadata.Name == GeneratedSecret);
        var roles = Roles(m);
        Assert.NotEmpty(roles);
        foreach (var (owner, spec, _) in roles)
        {
            V1Volume volume = Assert.Single(spec.Volumes, v => v.Secret is not null);
            Assert.Equal("cluster-tls", volume.Secret.SecretName);
            Assert.Contains(spec.Containers.Single().VolumeMounts, x => x.Name == volume.Name && x.MountPath == TlsDir);
        }
    }

    [Theory, MemberData(nameof(ValueSets))]
    public void OffNothingOfItIsRendered(string values)
    {
        RenderedManifests m = RenderedManifests.Parse(ChartRenderer.Render(values));
        Assert.DoesNotContain(m.Of<V1Secret>(), s => s.Type == "kubernetes.io/tls");
        foreach (var (owner, spec, _) in Roles(m))
        {
            Assert.DoesNotContain(spec.Volumes, v => v.Secret is not null);
            Assert.DoesNotContain(spec.Containers.Single().Env, e => e.Name == "CLUSTER_TLS_DIR");
            Assert.NotNull(spec.Containers.Single().ReadinessProbe.Grpc);
        }
        Assert.All(m.Of<V1Service>().SelectMany(s => s.Spec.Ports).Where(p => p.Name == "grpc"), p => Assert.Equal("kubernetes.io/h2c", p.AppProtocol));
    }

    [Theory]
    [InlineData("enabled", "\"yes\"")]
    [InlineData("enabled", "1")]
    [InlineData("existingSecret", "true")]
    [InlineData("existingSecret", "\"Not_A_Name\"")]
    [InlineData("enable", "true")]
    public void TheSchemaRefusesAWrongTypeOrKey(string key, string value)
    {
        var schema = JsonSchema.FromText(File.ReadAllText(Path.Combine(ChartRenderer.ChartDir, "values.schema.json")));
        JsonNode values = JsonNode.Parse(ChartRenderer.Render("", "--dump-values"))!;
        values["clusterTls"]![key] = JsonNode.Parse(value);
        EvaluationResults r = schema.Evaluate(JsonDocument.Parse(values.ToJsonString()).RootElement);
        Assert.False(r.IsValid, $"clusterTls.{key} = {value} passed the schema");
    }
}
