using System.Text.RegularExpressions;
using k8s;
using k8s.Models;

namespace Cluster.Helm.Tests;

/// <summary>
/// One render parsed into KubernetesClient's typed models with unknown fields refused (a misspelt or misplaced key
/// in a template fails here), plus the Prometheus Operator objects, which KubernetesClient has no model of, as
/// their raw YAML text.
/// </summary>
public sealed class RenderedManifests
{
    public List<(string Source, IKubernetesObject<V1ObjectMeta> Object)> Objects { get; } = [];
    public List<(string Source, string Kind, string Yaml)> CustomResources { get; } = [];

    public static RenderedManifests Parse(string stream)
    {
        var result = new RenderedManifests();
        foreach (string doc in Regex.Split(stream, @"(?m)^---\s*$"))
        {
            if (string.IsNullOrWhiteSpace(doc)) continue;
            string source = Regex.Match(doc, @"(?m)^# Source: (\S+)").Groups[1].Value;
            Assert.False(source.Length == 0, $"a document without its # Source: comment:\n{doc}");
            string apiVersion = Regex.Match(doc, @"(?m)^apiVersion: (\S+)").Groups[1].Value;
            string kind = Regex.Match(doc, @"(?m)^kind: (\S+)").Groups[1].Value;
            if (apiVersion.StartsWith("monitoring.coreos.com/", StringComparison.Ordinal))
            {
                result.CustomResources.Add((source, kind, doc));
                continue;
            }
            List<object> parsed;
            try { parsed = KubernetesYaml.LoadAllFromString(doc, strict: true); }
            catch (Exception e) { throw new Xunit.Sdk.XunitException($"{source} ({kind}) does not parse strictly: {e.Message}\n{doc}"); }
            foreach (object o in parsed) result.Objects.Add((source, (IKubernetesObject<V1ObjectMeta>)o));
        }
        return result;
    }

    public IEnumerable<T> Of<T>() => Objects.Select(o => o.Object).OfType<T>();

    /// <summary>Every pod template (Deployments and StatefulSets) with its owner's name, and the test pods.</summary>
    public IEnumerable<(string Owner, V1ObjectMeta Metadata, V1PodSpec Spec)> Pods()
    {
        foreach (var d in Of<V1Deployment>()) yield return (d.Metadata.Name, d.Spec.Template.Metadata, d.Spec.Template.Spec);
        foreach (var s in Of<V1StatefulSet>()) yield return (s.Metadata.Name, s.Spec.Template.Metadata, s.Spec.Template.Spec);
        foreach (var p in Of<V1Pod>()) yield return (p.Metadata.Name, p.Metadata, p.Spec);
    }
}
