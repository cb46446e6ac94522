using System.Text.Json;
using Cluster.Engine.Config;

namespace Cluster.ExpertNode.Placement;

/// <summary>
/// Tokens routed to each logical expert of each MoE layer, as measured on a running cluster (an expert-load file:
/// <c>{"layers":[{"layer":1,"tokens":[...one count per routed expert...]}, ...]}</c>). The planner gives the hottest
/// experts the extra replicas and balances nodes by it.
/// </summary>
public sealed class ExpertLoad
{
    private readonly Dictionary<int, double[]> _tokens;

    public ExpertLoad(IReadOnlyDictionary<int, double[]> tokensPerLayer) => _tokens = new Dictionary<int, double[]>(tokensPerLayer);

    public IEnumerable<int> Layers => _tokens.Keys.Order();

    public ReadOnlySpan<double> Tokens(int layer) =>
        _tokens.TryGetValue(layer, out double[]? t) ? t : throw new ArgumentException($"expert load has no layer {layer}");

    public static ExpertLoad Load(string path, ModelConfig config)
    {
        string json;
        try { json = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new FileNotFoundException($"{path}: cannot read expert load ({e.Message})"); }
        return Parse(json, config, path);
    }

    /// <summary>Parses a load file and checks its shape against the model: every MoE layer once, one count per routed expert.</summary>
    public static ExpertLoad Parse(string json, ModelConfig config, string source = "expert load")
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON ({e.Message})"); }
        using (doc)
        {
            var f = new JsonFields(source);
            JsonElement root = f.Object(doc.RootElement, "the top level");
            var tokens = new Dictionary<int, double[]>();
            int i = 0;
            foreach (JsonElement l in f.Array(f.Field(root, "layers", ""), "layers").EnumerateArray())
            {
                string at = $"layers[{i++}]";
                f.Object(l, at);
                int layer = f.Int(f.Field(l, "layer", at), at + ".layer", min: 0);
                if (layer >= config.NumHiddenLayers || !config.IsMoeLayer(layer))
                    throw f.Error(at + ".layer", $"{layer} is not a MoE layer of the model (MoE layers: {MoeLayerText(config)})");
                JsonElement counts = f.Array(f.Field(l, "tokens", at), at + ".tokens");
                if (counts.GetArrayLength() != config.NRoutedExperts)
                    throw f.Error(at + ".tokens", $"has {counts.GetArrayLength()} counts but the model has {config.NRoutedExperts} routed experts");
                var values = new double[config.NRoutedExperts];
                int e = 0;
                foreach (JsonElement c in counts.EnumerateArray()) { values[e] = f.Number(c, $"{at}.tokens[{e}]"); e++; }
                if (!tokens.TryAdd(layer, values)) throw f.Error(at + ".layer", $"layer {layer} appears twice");
            }
            for (int layer = 0; layer < config.NumHiddenLayers; layer++)
                if (config.IsMoeLayer(layer) && !tokens.ContainsKey(layer))
                    throw new InvalidDataException($"{source}: no counts for MoE layer {layer} (MoE layers: {MoeLayerText(config)})");
            return new ExpertLoad(tokens);
        }
    }

    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteStartArray("layers");
            foreach (int layer in Layers)
            {
                w.WriteStartObject();
                w.WriteNumber("layer", layer);
                w.WriteStartArray("tokens");
                foreach (double t in _tokens[layer]) w.WriteNumberValue(t);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    private static string MoeLayerText(ModelConfig config) =>
        string.Join(", ", Enumerable.Range(0, config.NumHiddenLayers).Where(config.IsMoeLayer));
}
