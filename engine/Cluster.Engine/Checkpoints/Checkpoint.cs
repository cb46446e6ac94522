using System.Text.Json;
using Cluster.Engine.Config;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Checkpoints;

/// <summary>
/// A Hugging Face model directory: config.json plus either model.safetensors.index.json (sharded) or one
/// model.safetensors. Opening reads headers only and checks every tensor the config implies (presence, shape,
/// FP8 scales); tensor bytes are touched when kernels read them. With <c>include</c>, only the chosen tensors are
/// considered and shards holding none of them are never opened: an expert node maps a handful of experts out of
/// a checkpoint of hundreds of GB. The MTP layers (index >= num_hidden_layers) are recognised and skipped.
/// </summary>
public sealed class Checkpoint : ITensorSource, IEvictableTensors, IDisposable
{
    public const string ConfigFile = "config.json";
    public const string IndexFile = "model.safetensors.index.json";
    public const string SingleFile = "model.safetensors";

    private readonly Dictionary<string, SafetensorsFile> _files;
    private readonly Dictionary<string, Weight> _weights;
    private readonly List<string> _names;

    public string Directory { get; }
    public ModelConfig Config { get; }
    /// <summary>MTP tensors present in the checkpoint and skipped.</summary>
    public int SkippedMtpTensors { get; }
    /// <summary>The safetensors files that were opened (only those holding included tensors).</summary>
    public IReadOnlyCollection<string> OpenedFiles => _files.Keys;
    /// <summary>Bytes of the loaded tensors including FP8 scales: what reading them all would touch.</summary>
    public long LoadedBytes { get; }

    private Checkpoint(string dir, ModelConfig config, Dictionary<string, SafetensorsFile> files, Dictionary<string, Weight> weights,
        List<string> names, int skippedMtp)
    {
        Directory = dir;
        Config = config;
        _files = files;
        _weights = weights;
        _names = names;
        SkippedMtpTensors = skippedMtp;
        foreach (Weight w in weights.Values) LoadedBytes += w.TotalBytes;
    }

    /// <param name="include">Which tensors (by name, never asked about <c>_scale_inv</c> companions) to load; null loads all.</param>
    /// <param name="progress">Bytes of the shards whose headers have been read, out of the shards to open.</param>
    public static Checkpoint Open(string dir, Func<string, bool>? include = null, IProgress<ByteProgress>? progress = null)
    {
        if (!System.IO.Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: model directory not found");
        ModelConfig config = ModelConfig.Load(Path.Combine(dir, ConfigFile));

        // Which file holds each tensor.
        Dictionary<string, string> location = ReadLocations(dir);
        var wanted = new List<string>();
        int skippedMtp = 0;
        foreach (string name in location.Keys)
        {
            if (name.EndsWith(Fp8Scales.Suffix, StringComparison.Ordinal)) continue;
            if (CheckpointLayout.IsMtp(config, name)) { skippedMtp++; continue; }
            if (include is null || include(name)) wanted.Add(name);
        }
        wanted.Sort(StringComparer.Ordinal);

        var fileNames = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string name in wanted)
        {
            fileNames.Add(location[name]);
            if (location.TryGetValue(name + Fp8Scales.Suffix, out string? sf)) fileNames.Add(sf);
        }

        var files = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            long total = 0, done = 0;
            foreach (string f in fileNames) total += FileLength(Path.Combine(dir, f));
            foreach (string f in fileNames)
            {
                var file = SafetensorsFile.Open(Path.Combine(dir, f));
                files.Add(f, file);
                done += file.FileLength;
                progress?.Report(new ByteProgress(done, total));
            }

            var weights = new Dictionary<string, Weight>(StringComparer.Ordinal);
            foreach (string name in wanted)
            {
                SafetensorsFile file = files[location[name]];
                if (!file.Contains(name)) throw new InvalidDataException($"{file.Path}: no tensor {name} (the index maps it to this file)");
                Weight? scale = null;
                string scaleName = name + Fp8Scales.Suffix;
                if (location.TryGetValue(scaleName, out string? scaleFile))
                {
                    SafetensorsFile sfile = files[scaleFile];
                    if (!sfile.Contains(scaleName)) throw new InvalidDataException($"{sfile.Path}: no tensor {scaleName} (the index maps it to this file)");
                    if (file.Entry(name).DType != DType.F8E4M3)
                        throw new InvalidDataException($"{file.Path}: tensor {name} is {file.Entry(name).DType.SafetensorsName()} but has a {scaleName}");
                    scale = sfile.GetWeight(scaleName);
                }
                weights.Add(name, file.GetWeight(name, scale));
            }
            foreach (string name in location.Keys)
                if (name.EndsWith(Fp8Scales.Suffix, StringComparison.Ordinal) && !location.ContainsKey(name[..^Fp8Scales.Suffix.Length]))
                    throw new InvalidDataException($"{Path.Combine(dir, location[name])}: tensor {name} has no weight {name[..^Fp8Scales.Suffix.Length]}");

            var checkpoint = new Checkpoint(dir, config, files, weights, wanted, skippedMtp);
            checkpoint.Validate(include);
            return checkpoint;
        }
        catch
        {
            foreach (SafetensorsFile f in files.Values) f.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Every tensor the config implies (and <paramref name="include"/> selects) is present with the implied shape,
    /// and nothing unexpected is there: a config that does not match its weights fails here, not mid-forward.
    /// </summary>
    private void Validate(Func<string, bool>? include)
    {
        var expected = new Dictionary<string, TensorSpec>(StringComparer.Ordinal);
        foreach (TensorSpec s in CheckpointLayout.For(Config, DType.BF16, includeMtp: false)) expected.Add(s.Name, s);
        foreach (string name in _names)
        {
            Weight w = _weights[name];
            if (!expected.TryGetValue(name, out TensorSpec? spec))
                throw new InvalidDataException($"{FileOf(name)}: unexpected tensor {name} (config.json implies no such tensor)");
            if (!w.Shape.AsSpan().SequenceEqual(spec.Shape))
                throw new InvalidDataException($"{FileOf(name)}: tensor {name} has shape [{string.Join(", ", w.Shape)}] but config.json implies {spec.ShapeText}");
        }
        foreach (TensorSpec s in expected.Values)
            if ((include is null || include(s.Name)) && !_weights.ContainsKey(s.Name))
                throw new InvalidDataException($"{Directory}: missing tensor {s.Name} {s.ShapeText}");
    }

    private string FileOf(string name)
    {
        foreach (SafetensorsFile f in _files.Values)
            if (f.Contains(name)) return f.Path;
        return Directory;
    }

    private static long FileLength(string path)
    {
        try { return new FileInfo(path).Length; }
        catch (FileNotFoundException) { throw new FileNotFoundException($"{path}: shard not found"); }
    }

    private static Dictionary<string, string> ReadLocations(string dir)
    {
        string index = Path.Combine(dir, IndexFile);
        if (File.Exists(index)) return ReadIndex(index);
        string single = Path.Combine(dir, SingleFile);
        if (!File.Exists(single)) throw new FileNotFoundException($"{dir}: neither {IndexFile} nor {SingleFile} found");
        using var file = SafetensorsFile.Open(single);
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (SafetensorsEntry e in file.Entries) map.Add(e.Name, SingleFile);
        return map;
    }

    private static Dictionary<string, string> ReadIndex(string path)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out JsonElement wm) || wm.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: missing weight_map object");
            foreach (JsonProperty p in wm.EnumerateObject())
            {
                string file = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : throw new InvalidDataException($"{path}: weight_map entry {p.Name} is not a file name");
                // Shards live beside the index: a path that leaves the directory is refused.
                if (file.Length == 0 || file != Path.GetFileName(file) || file is "." or "..")
                    throw new InvalidDataException($"{path}: weight_map entry {p.Name} names \"{file}\", not a file in the model directory");
                if (!map.TryAdd(p.Name, file)) throw new InvalidDataException($"{path}: weight_map lists {p.Name} twice");
            }
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: invalid JSON ({e.Message})"); }
        return map;
    }

    /// <summary>Makes every loaded tensor's pages resident now rather than at the first forward pass (<see cref="Residency"/>).</summary>
    public void Prefault(IProgress<ByteProgress>? progress = null) => Residency.Prefault(_weights.Values, progress);

    /// <summary>Locks every loaded tensor's pages into memory (<see cref="Residency.Lock"/>).</summary>
    public void Lock() => Residency.Lock(_weights.Values);

    public bool Contains(string name) => _weights.ContainsKey(name);

    public void Evict(string name) => Residency.Evict([Get(name)]);

    public Weight Get(string name)
    {
        if (_weights.TryGetValue(name, out Weight? w)) return w;
        throw new InvalidDataException(CheckpointLayout.IsMtp(Config, name)
            ? $"{Directory}: tensor {name} belongs to the MTP layer, which is skipped"
            : $"{Directory}: tensor {name} is not loaded (missing, or not selected by the include filter)");
    }

    /// <summary>Loaded tensor names (FP8 scales are attached to their weights, not listed).</summary>
    public IEnumerable<string> Names => _names;

    /// <summary>Unmaps the shards: weights obtained from this checkpoint must not be used afterwards.</summary>
    public void Dispose()
    {
        foreach (SafetensorsFile f in _files.Values) f.Dispose();
    }
}
