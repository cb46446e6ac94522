using System.Diagnostics;
using System.Text.Json;
using k8s.Models;

namespace Cluster.Helm.Tests;

/// <summary>
/// The plan init container's script from the rendered plan-input ConfigMap, run with the real `cluster experts plan`
/// on a checkpoint written by `cluster model init`: the plan it writes has one node per expert pod, named expert-N,
/// at that pod's DNS name, and the redundant experts the values ask for.
/// </summary>
public sealed class PlanScriptTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("cluster-plan-sh-").FullName;

    public void Dispose() => Directory.Delete(_root, true);

    [Theory]
    [InlineData("")]
    [InlineData("ci/demo-values.yaml")]
    public void PlanShWritesThePlanWithThePodsDnsNames(string values)
    {
        var m = RenderedManifests.Parse(ChartRenderer.Render(values));
        JsonElement v = JsonDocument.Parse(ChartRenderer.Render(values, "--dump-values")).RootElement;
        V1ConfigMap input = m.Of<V1ConfigMap>().Single(c => c.Metadata.Name == "rel-cluster-plan-input");
        string modelDir = v.GetProperty("model").GetProperty("dir").GetString()!;

        // The pod's paths, moved under one temporary root; placeholders first so no replacement rewrites another's.
        string[] mounts = ["/plan-input/", "/plan/", "/models/", "/tmp/"];
        foreach (string mount in mounts) Directory.CreateDirectory(Path.Combine(_root, mount.Trim('/')));
        foreach (var (key, text) in input.Data) File.WriteAllText(Path.Combine(_root, "plan-input", key), text);
        string script = input.Data["plan.sh"];
        for (int i = 0; i < mounts.Length; i++) script = script.Replace(mounts[i], $"@{i}@");
        for (int i = 0; i < mounts.Length; i++) script = script.Replace($"@{i}@", Path.Combine(_root, mounts[i].Trim('/')) + "/");
        string bin = Path.Combine(_root, "bin");
        Directory.CreateDirectory(bin);
        File.WriteAllText(Path.Combine(bin, "cluster"), $"#!/bin/sh\nexec dotnet {Path.Combine(AppContext.BaseDirectory, "cluster.dll")} \"$@\"\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(Path.Combine(bin, "cluster"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Run(Path.Combine(bin, "cluster"), ["model", "init", "--preset", "tiny", "--out", Path.Combine(_root, "models", modelDir)], bin);
        Run("/bin/sh", ["-c", script], bin);

        using var plan = JsonDocument.Parse(File.ReadAllText(Path.Combine(_root, "plan", "plan.json")));
        int experts = v.GetProperty("experts").GetProperty("replicas").GetInt32();
        JsonElement[] nodes = [.. plan.RootElement.GetProperty("nodes").EnumerateArray()];
        Assert.Equal(experts, nodes.Length);
        for (int i = 0; i < experts; i++)
        {
            Assert.Equal($"expert-{i}", nodes[i].GetProperty("id").GetString());
            Assert.Equal($"rel-cluster-expert-{i}.rel-cluster-expert.llm.svc.cluster.local:{v.GetProperty("experts").GetProperty("grpcPort").GetInt32()}", nodes[i].GetProperty("endpoint").GetString());
        }
        JsonElement layer = plan.RootElement.GetProperty("layers")[0];
        int replicas = layer.GetProperty("experts").EnumerateArray().Sum(e => e.GetArrayLength());
        Assert.Equal(plan.RootElement.GetProperty("routed_experts").GetInt32() + v.GetProperty("plan").GetProperty("redundantExperts").GetInt32(), replicas);
    }

    private static void Run(string file, string[] args, string path)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = path };
        foreach (string a in args) psi.ArgumentList.Add(a);
        psi.Environment["PATH"] = path + ":" + Environment.GetEnvironmentVariable("PATH");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(60_000)) { p.Kill(true); throw new TimeoutException(file); }
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)} exited {p.ExitCode}:\n{stdout.Result}\n{stderr.Result}");
    }
}
