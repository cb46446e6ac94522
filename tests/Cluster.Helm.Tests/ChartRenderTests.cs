using System.Text.Json;
using System.Text.RegularExpressions;
using k8s.Models;

namespace Cluster.Helm.Tests;

/// <summary>
/// The chart as the API server and kubelet would take it: every manifest a valid typed object, selectors that
/// select, probe and Service ports that exist, references that resolve, the pod security the chart promises, and
/// the wiring between roles (the gateway's node lists and the plan's endpoints name pods that the render creates).
/// </summary>
public sealed class ChartRenderTests
{
    private static readonly string[] StandardLabels =
        ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/component", "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of"];
    private const string RoleLabel = "cluster.example.com/role";

    public static TheoryData<string> ValueSets => [.. ChartRenderer.ValueSets];

    private static RenderedManifests Render(string values) => RenderedManifests.Parse(ChartRenderer.Render(values));

    private static JsonElement Values(string values) =>
        JsonDocument.Parse(ChartRenderer.Render(values, "--dump-values")).RootElement;

    [Theory, MemberData(nameof(ValueSets))]
    public void EveryRoleIsRenderedAsTheValuesAsk(string values)
    {
        var m = Render(values);
        JsonElement v = Values(values);
        Assert.Single(m.Of<V1Deployment>(), d => d.Metadata.Name == "rel-cluster-gateway");
        var sets = m.Of<V1StatefulSet>().ToDictionary(s => s.Metadata.Name);
        Assert.Equal(v.GetProperty("experts").GetProperty("replicas").GetInt32(), sets["rel-cluster-expert"].Spec.Replicas);
        JsonElement a = v.GetProperty("attention");
        string[] pools = a.GetProperty("mode").GetString() == "both" ? ["attention"] : ["prefill", "decode"];
        foreach (string pool in pools)
            Assert.Equal(a.GetProperty(pool == "attention" ? "both" : pool).GetProperty("replicas").GetInt32(), sets[$"rel-cluster-{pool}"].Spec.Replicas);
        Assert.Equal(pools.Length + 1, sets.Count);
        Assert.Single(m.Of<V1Pod>(), p => p.Metadata.Annotations["helm.sh/hook"] == "test");
    }

    [Theory, MemberData(nameof(ValueSets))]
    public void EveryObjectCarriesTheStandardLabelsAndEveryPodItsRole(string values)
    {
        var m = Render(values);
        foreach (var (source, o) in m.Objects)
            foreach (string label in StandardLabels)
                Assert.True(o.Metadata.Labels?.ContainsKey(label) == true, $"{source}: {o.Kind} {o.Metadata.Name} lacks {label}");
        foreach (var (owner, meta, _) in m.Pods())
        {
            foreach (string label in StandardLabels) Assert.True(meta.Labels.ContainsKey(label), $"{owner}'s pods lack {label}");
            Assert.True(meta.Labels.ContainsKey(RoleLabel), $"{owner}'s pods lack {RoleLabel}");
        }
    }

    [Theory, MemberData(nameof(ValueSets))]
    public void SelectorsSelectTheirPods(string values)
    {
        var m = Render(values);
        var templates = m.Pods().ToList();
        foreach (var d in m.Of<V1Deployment>()) AssertSubset(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels, $"Deployment {d.Metadata.Name}");
        foreach (var s in m.Of<V1StatefulSet>())
        {
            AssertSubset(s.Spec.Selector.MatchLabels, s.Spec.Template.Metadata.Labels, $"StatefulSet {s.Metadata.Name}");
            // The governing Service must exist and be headless for the pods' DNS names (the gateway's and plan's endpoints).
            V1Service? governing = m.Of<V1Service>().SingleOrDefault(x => x.Metadata.Name == s.Spec.ServiceName);
            Assert.True(governing?.Spec.ClusterIP == "None", $"StatefulSet {s.Metadata.Name}: serviceName {s.Spec.ServiceName} is not a headless Service of the render");
        }
        foreach (var svc in m.Of<V1Service>())
            Assert.True(templates.Count(t => Selects(svc.Spec.Selector, t.Metadata.Labels)) == 1, $"Service {svc.Metadata.Name} does not select exactly one workload's pods");
        foreach (var pdb in m.Of<V1PodDisruptionBudget>())
            Assert.True(templates.Count(t => Selects(pdb.Spec.Selector.MatchLabels, t.Metadata.Labels)) == 1, $"PodDisruptionBudget {pdb.Metadata.Name} selects no single workload");
        foreach (var hpa in m.Of<V2HorizontalPodAutoscaler>())
            Assert.Contains(m.Of<V1Deployment>(), d => d.Metadata.Name == hpa.Spec.ScaleTargetRef.Name && hpa.Spec.ScaleTargetRef.Kind == "Deployment");
        foreach (var ing in m.Of<V1Ingress>())
            foreach (var path in ing.Spec.Rules.SelectMany(r => r.Http.Paths))
            {
                V1Service target = Assert.Single(m.Of<V1Service>(), s => s.Metadata.Name == path.Backend.Service.Name);
                Assert.Contains(target.Spec.Ports, p => p.Name == path.Backend.Service.Port.Name);
            }
        // The monitors select by instance and component: each component they name must have pods with the port they scrape.
        foreach (var (source, kind, yaml) in m.CustomResources)
        {
            string components = Regex.Match(yaml, @"key: app.kubernetes.io/component\s+operator: In\s+values: \[(.*)\]").Groups[1].Value;
            string[] names = [.. Regex.Matches(components, "\"([^\"]+)\"").Select(x => x.Groups[1].Value)];
            string port = Regex.Match(yaml, @"(?:endpoints|podMetricsEndpoints):\s+- port: (\S+)").Groups[1].Value;
            Assert.NotEmpty(names);
            Assert.NotEmpty(port);
            foreach (string c in names)
                Assert.True(templates.Any(t => t.Metadata.Labels["app.kubernetes.io/component"] == c && t.Spec.Containers.Any(k => k.Ports?.Any(p => p.Name == port) == true)),
                    $"{source}: {kind} names component {c}, which has no pod with a {port} port");
        }
    }

    [Theory, MemberData(nameof(ValueSets))]
    public void ProbesAndServicePortsPointAtContainerPorts(string values)
    {
        var m = Render(values);
        foreach (var (owner, meta, spec) in m.Pods())
        {
            if (meta.Labels[RoleLabel] == "test") continue;
            V1Container c = Assert.Single(spec.Containers);
            var ports = c.Ports.Select(p => p.ContainerPort).ToHashSet();
            foreach (var (name, probe) in new[] { ("startup", c.StartupProbe), ("readiness", c.ReadinessProbe), ("liveness", c.LivenessProbe) })
            {
                Assert.True(probe?.Grpc is not null, $"{owner}: no grpc {name} probe");
                Assert.True(ports.Contains(probe!.Grpc.Port), $"{owner}: the {name} probe's port {probe.Grpc.Port} is not a container port");
                Assert.True(probe.PeriodSeconds > 0 && probe.FailureThreshold > 0, $"{owner}: {name} probe without period or threshold");
            }
        }
        var templates = m.Pods().ToList();
        foreach (var svc in m.Of<V1Service>())
        {
            var pod = templates.Single(t => Selects(svc.Spec.Selector, t.Metadata.Labels));
            var containerPorts = pod.Spec.Containers.SelectMany(c => c.Ports ?? []).ToList();
            foreach (var port in svc.Spec.Ports)
            {
                string targetValue = port.TargetPort?.Value ?? port.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
                bool found = int.TryParse(targetValue, out int n) ? containerPorts.Any(p => p.ContainerPort == n) : containerPorts.Any(p => p.Name == targetValue);
                Assert.True(found, $"Service {svc.Metadata.Name}: targetPort {targetValue} is no port of {pod.Owner}'s container");
                // The port the Service publishes is the port the role listens on, so DNS name + port reaches it.
                Assert.Contains(containerPorts, p => p.ContainerPort == port.Port && (p.Name == targetValue || targetValue == p.ContainerPort.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            }
        }
    }

    [Theory, MemberData(nameof(ValueSets))]
    public void EveryReferencedConfigMapSecretAndClaimIsRenderedOrExternalInValues(string values)
    {
        var m = Render(values);
        JsonElement v = Values(values);
        var configMaps = m.Of<V1ConfigMap>().Select(c => c.Metadata.Name).ToHashSet();
        var secrets = m.Of<V1Secret>().Select(c => c.Metadata.Name).ToHashSet();
        var claims = m.Of<V1PersistentVolumeClaim>().Select(c => c.Metadata.Name).ToHashSet();
        // The values that name objects made outside the chart.
        if (v.GetProperty("plan").GetProperty("existingConfigMap").GetString() is { Length: > 0 } plan) configMaps.Add(plan);
        if (v.GetProperty("model").GetProperty("source").GetString() == "pvc") claims.Add(v.GetProperty("model").GetProperty("pvc").GetProperty("claimName").GetString()!);
        foreach (JsonElement s in v.GetProperty("imagePullSecrets").EnumerateArray()) secrets.Add(s.GetProperty("name").GetString()!);
        if (v.GetProperty("clusterToken").GetProperty("existingSecret").GetString() is { Length: > 0 } token) secrets.Add(token);
        if (v.GetProperty("gateway").GetProperty("apiKeys").GetProperty("existingSecret").GetString() is { Length: > 0 } keys) secrets.Add(keys);
        if (v.GetProperty("clusterTls").GetProperty("existingSecret").GetString() is { Length: > 0 } tls) secrets.Add(tls);

        foreach (var (owner, _, spec) in m.Pods())
        {
            var volumes = (spec.Volumes ?? []).ToDictionary(x => x.Name);
            foreach (var vol in volumes.Values)
            {
                if (vol.ConfigMap is { } cm) Assert.True(configMaps.Contains(cm.Name), $"{owner}: ConfigMap {cm.Name} is neither rendered nor external in values");
                if (vol.Secret is { } sec) Assert.True(secrets.Contains(sec.SecretName), $"{owner}: Secret {sec.SecretName} is neither rendered nor external in values");
                if (vol.PersistentVolumeClaim is { } pvc)
                {
                    Assert.True(claims.Contains(pvc.ClaimName), $"{owner}: PVC {pvc.ClaimName} is neither rendered nor external in values");
                    Assert.True(pvc.ReadOnlyProperty == true, $"{owner}: the weights' PVC is mounted writable");
                }
            }
            foreach (string s in (spec.ImagePullSecrets ?? []).Select(r => r.Name)) Assert.Contains(s, secrets);
            foreach (V1Container c in (spec.InitContainers ?? []).Concat(spec.Containers))
            {
                foreach (var mount in c.VolumeMounts ?? []) Assert.True(volumes.ContainsKey(mount.Name), $"{owner}/{c.Name}: mounts undefined volume {mount.Name}");
                foreach (var env in c.Env ?? [])
                {
                    if (env.ValueFrom?.ConfigMapKeyRef is { } cmk) Assert.Contains(cmk.Name, configMaps);
                    if (env.ValueFrom?.SecretKeyRef is { } sk) Assert.Contains(sk.Name, secrets);
                }
                foreach (var from in c.EnvFrom ?? [])
                {
                    if (from.ConfigMapRef is { } cmr) Assert.Contains(cmr.Name, configMaps);
                    if (from.SecretRef is { } sr) Assert.Contains(sr.Name, secrets);
                }
            }
        }
    }

    [Theory, MemberData(nameof(ValueSets))]
    public void EveryContainerRunsNonRootOnAReadOnlyRootWithoutCapabilities(string values)
    {
        foreach (var (owner, _, spec) in Render(values).Pods())
        {
            Assert.True(spec.SecurityContext?.RunAsNonRoot == true, $"{owner}: runAsNonRoot is not set");
            foreach (V1Container c in (spec.InitContainers ?? []).Concat(spec.Containers))
            {
                var sc = c.SecurityContext;
                Assert.True(sc?.ReadOnlyRootFilesystem == true, $"{owner}/{c.Name}: root filesystem writable");
                Assert.True(sc?.AllowPrivilegeEscalation == false, $"{owner}/{c.Name}: privilege escalation allowed");
                Assert.True(sc?.Capabilities?.Drop?.Contains("ALL") == true, $"{owner}/{c.Name}: capabilities not dropped");
            }
        }
    }

    /// <summary>
    /// The addresses one role dials are pods the render makes. The gateway, with discovery kubernetes (the default),
    /// follows per attention pool a headless Service of ready pods only that selects exactly that pool's StatefulSet,
    /// named in full on its gRPC port; with discovery static its node lists name ordinals 0..replicas-1 of one attention
    /// StatefulSet through its governing Service. The plan's expert endpoints are the expert StatefulSet's pods in
    /// ordinal order (pod N is plan node expert-N).
    /// </summary>
    [Theory, MemberData(nameof(ValueSets))]
    public void TheGatewaysNodeListsAndThePlansEndpointsNamePodsOfTheRender(string values)
    {
        var m = Render(values);
        var sets = m.Of<V1StatefulSet>().ToDictionary(s => s.Metadata.Name);
        IList<string> args = m.Of<V1Deployment>().Single().Spec.Template.Spec.Containers[0].Args;
        Assert.Equal("kubernetes", args[args.IndexOf("--discovery") + 1]);
        int pools = 0;
        for (int i = 0; i < args.Count - 1; i++)
        {
            if (args[i] is not ("--attention-service" or "--prefill-service" or "--decode-service")) continue;
            pools++;
            string role = args[i] == "--attention-service" ? "both" : args[i][2..^8];
            V1StatefulSet set = sets.Values.Single(s => s.Spec.Template.Metadata.Labels[RoleLabel] == role);
            int port = set.Spec.Template.Spec.Containers[0].Ports.Single(p => p.Name == "grpc").ContainerPort;
            string name = args[i + 1][..args[i + 1].LastIndexOf(':')];
            Assert.Equal($"{port}", args[i + 1][(args[i + 1].LastIndexOf(':') + 1)..]);
            Assert.EndsWith(".llm.svc.cluster.local", name);
            V1Service ready = m.Of<V1Service>().Single(svc => svc.Metadata.Name == name.Split('.')[0]);
            Assert.Equal("None", ready.Spec.ClusterIP);
            Assert.False(ready.Spec.PublishNotReadyAddresses ?? false, $"{ready.Metadata.Name} must list ready pods only");
            Assert.Contains(ready.Spec.Ports, p => p.Port == port);
            // It selects this pool's pods and no other StatefulSet's.
            Assert.Equal([set.Metadata.Name], sets.Values.Where(s => Selects(ready.Spec.Selector, s.Spec.Template.Metadata.Labels)).Select(s => s.Metadata.Name));
        }
        Assert.Equal(sets.Count - 1, pools);

        string overlay = Path.Combine(Path.GetTempPath(), $"cluster-helm-static-{Environment.ProcessId}-{values.Replace('/', '_')}.yaml");
        File.WriteAllText(overlay, "gateway:\n  discovery: static\n");
        try
        {
            var fixedLists = RenderedManifests.Parse(ChartRenderer.Render(values, "--values", overlay));
            IList<string> staticArgs = fixedLists.Of<V1Deployment>().Single().Spec.Template.Spec.Containers[0].Args;
            Assert.DoesNotContain("--discovery", staticArgs);
            int lists = 0;
            for (int i = 0; i < staticArgs.Count - 1; i++)
            {
                if (staticArgs[i] is not ("--attention-nodes" or "--prefill-nodes" or "--decode-nodes")) continue;
                lists++;
                string role = staticArgs[i] == "--attention-nodes" ? "both" : staticArgs[i][2..^6];
                string[] endpoints = staticArgs[i + 1].Split(',');
                V1StatefulSet set = sets.Values.Single(s => s.Spec.Template.Metadata.Labels[RoleLabel] == role);
                Assert.Equal(StatefulSetPods(set, "rel", "llm", set.Spec.Template.Spec.Containers[0].Ports.Single(p => p.Name == "grpc").ContainerPort), endpoints);
            }
            Assert.Equal(sets.Count - 1, lists);
        }
        finally { File.Delete(overlay); }

        V1StatefulSet experts = sets["rel-cluster-expert"];
        Assert.Contains("expert-$(POD_INDEX)", experts.Spec.Template.Spec.Containers[0].Args);
        Assert.Equal("metadata.labels['apps.kubernetes.io/pod-index']", experts.Spec.Template.Spec.Containers[0].Env.Single(e => e.Name == "POD_INDEX").ValueFrom.FieldRef.FieldPath);
        if (m.Of<V1ConfigMap>().SingleOrDefault(c => c.Metadata.Name == "rel-cluster-plan-input") is { } input)
        {
            string[] listed = input.Data["expert-endpoints"].Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.Equal(StatefulSetPods(experts, "rel", "llm", experts.Spec.Template.Spec.Containers[0].Ports.Single(p => p.Name == "grpc").ContainerPort), listed);
        }
    }

    /// <summary>
    /// Inter-node trust: every role's container (Deployments and StatefulSets; not the test hook, which is a client of
    /// the public API) gets CLUSTER_TOKEN from one Secret, the chart's own (kept across upgrades) unless values name one.
    /// </summary>
    [Theory, MemberData(nameof(ValueSets))]
    public void EveryRoleGetsTheClusterTokenFromOneSecret(string values)
    {
        var m = Render(values);
        V1Secret secret = m.Of<V1Secret>().Single(x => x.Metadata.Name == "rel-cluster-cluster-token");
        Assert.Equal("keep", secret.Metadata.Annotations["helm.sh/resource-policy"]);
        Assert.True(secret.Data["token"].Length >= 32, "the generated token is too short");
        var roles = m.Of<V1Deployment>().Select(d => (d.Metadata.Name, d.Spec.Template.Spec))
            .Concat(m.Of<V1StatefulSet>().Select(x => (x.Metadata.Name, x.Spec.Template.Spec))).ToList();
        Assert.NotEmpty(roles);
        foreach (var (owner, spec) in roles)
        {
            V1EnvVar token = spec.Containers[0].Env.Single(e => e.Name == "CLUSTER_TOKEN");
            Assert.Equal(("rel-cluster-cluster-token", "token"), (token.ValueFrom.SecretKeyRef.Name, token.ValueFrom.SecretKeyRef.Key));
        }

        string overlay = Path.Combine(Path.GetTempPath(), $"cluster-helm-token-{Environment.ProcessId}-{values.Replace('/', '_')}.yaml");
        File.WriteAllText(overlay, "clusterToken:\n  existingSecret: ops-made\n  key: t\n");
        try
        {
            var external = RenderedManifests.Parse(ChartRenderer.Render(values, "--values", overlay));
            Assert.DoesNotContain(external.Of<V1Secret>(), x => x.Metadata.Name == "rel-cluster-cluster-token");
            foreach (var d in external.Of<V1StatefulSet>())
                Assert.Equal("ops-made", d.Spec.Template.Spec.Containers[0].Env.Single(e => e.Name == "CLUSTER_TOKEN").ValueFrom.SecretKeyRef.Name);
        }
        finally { File.Delete(overlay); }
    }

    [Fact]
    public void APvcWithoutAClaimNameIsARenderError()
    {
        string overlay = Path.Combine(Path.GetTempPath(), $"cluster-helm-pvc-{Environment.ProcessId}.yaml");
        File.WriteAllText(overlay, "model:\n  source: pvc\n");
        try
        {
            var (code, _, stderr) = ChartRenderer.TryRender(["--values", overlay]);
            Assert.NotEqual(0, code);
            Assert.Contains("model.pvc.claimName is required", stderr);
        }
        finally { File.Delete(overlay); }
    }

    private static string[] StatefulSetPods(V1StatefulSet set, string release, string ns, int port) =>
        [.. Enumerable.Range(0, set.Spec.Replicas ?? 1).Select(i => $"{set.Metadata.Name}-{i}.{set.Spec.ServiceName}.{ns}.svc.cluster.local:{port}")];

    private static bool Selects(IDictionary<string, string>? selector, IDictionary<string, string> labels) =>
        selector is { Count: > 0 } && selector.All(kv => labels.TryGetValue(kv.Key, out string? v) && v == kv.Value);

    private static void AssertSubset(IDictionary<string, string> selector, IDictionary<string, string> labels, string what) =>
        Assert.True(Selects(selector, labels), $"{what}: selector {string.Join(",", selector)} does not match its pod template's labels");
}
