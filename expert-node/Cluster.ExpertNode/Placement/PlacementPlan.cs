using System.Text.Json;
using Cluster.Engine.Config;

namespace Cluster.ExpertNode.Placement;

/// <summary>
/// The placement plan every node holds: a version, the expert nodes, and for every MoE layer the physical slots
/// of each logical expert. Expert nodes load the experts of their slots; attention nodes route by it.
/// </summary>
public sealed class PlacementPlan
{
    private readonly Dictionary<int, LayerPlacement> _byLayer = [];

    public PlacementPlan(ulong version, int routedExperts, IReadOnlyList<ExpertNodeAddress> nodes, IReadOnlyList<LayerPlacement> layers)
    {
        Version = version;
        RoutedExperts = routedExperts;
        Nodes = nodes;
        Layers = layers;
        foreach (LayerPlacement l in layers) _byLayer.Add(l.Layer, l);
    }

    public ulong Version { get; }
    /// <summary>Logical experts per MoE layer (the config's n_routed_experts).</summary>
    public int RoutedExperts { get; }
    public IReadOnlyList<ExpertNodeAddress> Nodes { get; }
    /// <summary>The MoE layers, ascending.</summary>
    public IReadOnlyList<LayerPlacement> Layers { get; }

    public LayerPlacement Layer(int layer) =>
        _byLayer.TryGetValue(layer, out LayerPlacement? l) ? l : throw new ArgumentException($"placement plan has no MoE layer {layer}");

    public int NodeIndex(string nodeId)
    {
        for (int i = 0; i < Nodes.Count; i++) if (Nodes[i].Id == nodeId) return i;
        throw new ArgumentException($"placement plan has no expert node '{nodeId}' (nodes: {string.Join(", ", Nodes.Select(n => n.Id))})");
    }

    /// <summary>
    /// The same plan (same version: the slots do not move) with the nodes at other endpoints, in node order, e.g.
    /// once nodes that bound port 0 report the ports they got.
    /// </summary>
    public PlacementPlan WithEndpoints(IReadOnlyList<string> endpoints)
    {
        if (endpoints.Count != Nodes.Count) throw new ArgumentException($"{endpoints.Count} endpoints for {Nodes.Count} expert nodes");
        var nodes = new ExpertNodeAddress[Nodes.Count];
        for (int i = 0; i < nodes.Length; i++)
        {
            ExpertNodeAddress.ValidateEndpoint(endpoints[i], $"expert node {Nodes[i].Id}");
            nodes[i] = Nodes[i] with { Endpoint = endpoints[i] };
        }
        return new PlacementPlan(Version, RoutedExperts, nodes, Layers);
    }

    /// <summary>Throws unless the plan covers exactly the MoE layers and experts of <paramref name="config"/>.</summary>
    public void CheckFits(ModelConfig config, string source = "placement plan")
    {
        if (RoutedExperts != config.NRoutedExperts)
            throw new InvalidDataException($"{source}: plan has {RoutedExperts} routed experts per layer but the model has {config.NRoutedExperts}");
        var moe = Enumerable.Range(0, config.NumHiddenLayers).Where(config.IsMoeLayer).ToArray();
        if (!moe.SequenceEqual(Layers.Select(l => l.Layer)))
            throw new InvalidDataException($"{source}: plan covers layers [{string.Join(", ", Layers.Select(l => l.Layer))}] but the model's MoE layers are [{string.Join(", ", moe)}]");
    }

    public static PlacementPlan Load(string path)
    {
        string json;
        try { json = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new FileNotFoundException($"{path}: cannot read placement plan ({e.Message})"); }
        return Parse(json, path);
    }

    public void Save(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        // A temp name of this process's own: nodes sharing one plan file may write it at the same moment.
        string temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        File.WriteAllText(temp, ToJson());
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>
    /// Writes the plan to <paramref name="path"/> unless the file already holds this version or a newer one, so that
    /// a node restarted after a live change starts from the plan in use (every node of a rollout may write it).
    /// </summary>
    public void SaveIfNewer(string path)
    {
        try
        {
            if (File.Exists(path) && Load(path).Version >= Version) return;
        }
        catch (InvalidDataException) { }
        Save(path);
    }

    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteNumber("version", Version);
            w.WriteNumber("routed_experts", RoutedExperts);
            w.WriteStartArray("nodes");
            foreach (ExpertNodeAddress n in Nodes)
            {
                w.WriteStartObject();
                w.WriteString("id", n.Id);
                w.WriteString("endpoint", n.Endpoint);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("layers");
            foreach (LayerPlacement l in Layers)
            {
                w.WriteStartObject();
                w.WriteNumber("layer", l.Layer);
                w.WriteStartArray("experts");
                for (int e = 0; e < l.Experts; e++)
                {
                    w.WriteStartArray();
                    foreach (ExpertReplica r in l.ReplicasOf(e))
                    {
                        w.WriteStartObject();
                        w.WriteString("node", Nodes[r.Node].Id);
                        w.WriteNumber("slot", r.Slot);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Parses and validates a plan; every error names the source and the offending field.</summary>
    public static PlacementPlan Parse(string json, string source = "placement plan")
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON ({e.Message})"); }
        using (doc)
        {
            var reader = new JsonFields(source);
            JsonElement root = reader.Object(doc.RootElement, "the top level");
            ulong version = reader.UInt64(reader.Field(root, "version", ""), "version");
            if (version == 0) throw reader.Error("version", "must be at least 1");
            int experts = reader.Int(reader.Field(root, "routed_experts", ""), "routed_experts", min: 1);

            var nodes = new List<ExpertNodeAddress>();
            var nodeIndex = new Dictionary<string, int>(StringComparer.Ordinal);
            JsonElement nodeArray = reader.Array(reader.Field(root, "nodes", ""), "nodes");
            foreach (JsonElement n in nodeArray.EnumerateArray())
            {
                string at = $"nodes[{nodes.Count}]";
                reader.Object(n, at);
                string id = reader.String(reader.Field(n, "id", at), at + ".id");
                if (id.Length == 0) throw reader.Error(at + ".id", "is empty");
                string endpoint = reader.String(reader.Field(n, "endpoint", at), at + ".endpoint");
                try { ExpertNodeAddress.ValidateEndpoint(endpoint, $"{source}: {at}.endpoint"); }
                catch (FormatException e) { throw new InvalidDataException(e.Message); }
                if (!nodeIndex.TryAdd(id, nodes.Count)) throw reader.Error(at + ".id", $"node '{id}' appears twice");
                nodes.Add(new ExpertNodeAddress(id, endpoint));
            }
            if (nodes.Count == 0) throw reader.Error("nodes", "is empty");

            var layers = new List<LayerPlacement>();
            foreach (JsonElement l in reader.Array(reader.Field(root, "layers", ""), "layers").EnumerateArray())
            {
                string at = $"layers[{layers.Count}]";
                reader.Object(l, at);
                int layer = reader.Int(reader.Field(l, "layer", at), at + ".layer", min: 0);
                if (layers.Count > 0 && layer <= layers[^1].Layer) throw reader.Error(at + ".layer", $"{layer} is not above the previous layer {layers[^1].Layer}");
                JsonElement expertArray = reader.Array(reader.Field(l, "experts", at), at + ".experts");
                if (expertArray.GetArrayLength() != experts)
                    throw reader.Error(at + ".experts", $"has {expertArray.GetArrayLength()} entries but routed_experts is {experts}");
                var replicas = new ExpertReplica[experts][];
                var used = new HashSet<(int, int)>();
                int e = 0;
                foreach (JsonElement list in expertArray.EnumerateArray())
                {
                    string eat = $"{at}.experts[{e}]";
                    reader.Array(list, eat);
                    if (list.GetArrayLength() == 0) throw reader.Error(eat, "has no replica");
                    var rs = new List<ExpertReplica>();
                    foreach (JsonElement r in list.EnumerateArray())
                    {
                        string rat = $"{eat}[{rs.Count}]";
                        reader.Object(r, rat);
                        string node = reader.String(reader.Field(r, "node", rat), rat + ".node");
                        if (!nodeIndex.TryGetValue(node, out int ni)) throw reader.Error(rat + ".node", $"unknown node '{node}'");
                        int slot = reader.Int(reader.Field(r, "slot", rat), rat + ".slot", min: 0);
                        if (rs.Exists(x => x.Node == ni)) throw reader.Error(rat, $"expert {e} has two replicas on node '{node}'");
                        if (!used.Add((ni, slot))) throw reader.Error(rat, $"slot {slot} of node '{node}' is used twice in layer {layer}");
                        rs.Add(new ExpertReplica(ni, slot));
                    }
                    replicas[e++] = rs.ToArray();
                }
                for (int ni = 0; ni < nodes.Count; ni++)
                {
                    int count = used.Count(u => u.Item1 == ni);
                    for (int s = 0; s < count; s++)
                        if (!used.Contains((ni, s))) throw reader.Error(at, $"node '{nodes[ni].Id}' has {count} slots but no slot {s} (slots must be numbered from 0 without gaps)");
                }
                layers.Add(new LayerPlacement(layer, nodes.Count, replicas));
            }
            if (layers.Count == 0) throw reader.Error("layers", "is empty");
            return new PlacementPlan(version, experts, nodes, layers);
        }
    }
}
