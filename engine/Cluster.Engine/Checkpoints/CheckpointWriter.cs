using System.Text.Json;
using Cluster.Engine.Config;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Checkpoints;

/// <summary>A tensor to write: its header now, its values when <see cref="Produce"/> is called (once, possibly on a worker thread).</summary>
public sealed record PendingTensor(string Name, DType DType, int[] Shape, Func<Weight> Produce);

/// <summary>
/// Writes a model directory in Hugging Face's layout: config.json, and the tensors either as one model.safetensors
/// or as model-0000i-of-0000N.safetensors shards with model.safetensors.index.json. Tensors are produced a few at a
/// time in parallel and written in order, so memory stays at a few tensors whatever the checkpoint's size, and the
/// bytes depend only on the inputs.
/// </summary>
public static class CheckpointWriter
{
    /// <summary>Writes the weights of <paramref name="source"/> (in its name order).</summary>
    public static long Write(string dir, ModelConfig config, ITensorSource source, int shards, IProgress<ByteProgress>? progress = null, CancellationToken cancel = default)
    {
        var pending = new List<PendingTensor>();
        foreach (string name in source.Names)
        {
            Weight w = source.Get(name);
            pending.Add(new PendingTensor(name, w.DType, w.Shape, () => w));
        }
        return Write(dir, config, pending, shards, progress, cancel);
    }

    /// <summary>Writes the checkpoint; returns the bytes of tensor data (the index's total_size).</summary>
    public static long Write(string dir, ModelConfig config, IReadOnlyList<PendingTensor> tensors, int shards, IProgress<ByteProgress>? progress = null, CancellationToken cancel = default)
    {
        if (shards < 1) throw new ArgumentException($"shards must be at least 1 (got {shards})");
        if (tensors.Count < shards) throw new ArgumentException($"{tensors.Count} tensors cannot fill {shards} shards");
        Directory.CreateDirectory(dir);
        RemoveStaleWeights(dir);

        long total = 0;
        foreach (PendingTensor t in tensors) total += BytesOf(t);
        int[] firstOfShard = Partition(tensors, shards, total);
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        long done = 0;
        for (int s = 0; s < shards; s++)
        {
            int from = firstOfShard[s], to = s + 1 < shards ? firstOfShard[s + 1] : tensors.Count;
            string file = shards == 1 ? Checkpoint.SingleFile : $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
            List<(TensorHeader Header, int Tensor, bool IsScale)> items = ShardOrder(tensors, from, to);
            foreach (var item in items) weightMap[item.Header.Name] = file;
            WriteShard(Path.Combine(dir, file), items, tensors, cancel, bytes =>
            {
                done += bytes;
                progress?.Report(new ByteProgress(done, total));
            });
        }

        if (shards > 1) File.WriteAllBytes(Path.Combine(dir, Checkpoint.IndexFile), IndexJson(total, weightMap));
        File.WriteAllBytes(Path.Combine(dir, Checkpoint.ConfigFile), ModelConfigWriter.ToJson(config));
        return total;
    }

    private static long BytesOf(PendingTensor t)
    {
        long n = t.Shape.Elements() * t.DType.Size();
        return t.DType == DType.F8E4M3 ? n + Fp8Scales.ShapeFor(t.Shape).Elements() * 4 : n;
    }

    /// <summary>Contiguous runs of tensors with about equal bytes, each shard holding at least one tensor.</summary>
    private static int[] Partition(IReadOnlyList<PendingTensor> tensors, int shards, long total)
    {
        var first = new int[shards];
        long cum = 0;
        int s = 1;
        for (int i = 0; i < tensors.Count && s < shards; i++)
        {
            // Tensor i starts shard s when the bytes before it reach s/shards of the total.
            while (s < shards && cum >= total * s / shards) first[s++] = i;
            cum += BytesOf(tensors[i]);
        }
        for (; s < shards; s++) first[s] = tensors.Count;
        for (int k = 1; k < shards; k++) first[k] = Math.Max(first[k], first[k - 1] + 1);
        for (int k = shards - 1; k >= 1; k--) first[k] = Math.Min(first[k], tensors.Count - (shards - k));
        return first;
    }

    /// <summary>
    /// Each weight followed by its FP8 scales; entries whose size is a multiple of 8 bytes go first so that they all
    /// start 8-byte aligned, the rest after, widest dtype first (so each is at least aligned to its element size).
    /// </summary>
    private static List<(TensorHeader, int, bool)> ShardOrder(IReadOnlyList<PendingTensor> tensors, int from, int to)
    {
        var aligned = new List<(TensorHeader, int, bool)>();
        var rest = new List<(TensorHeader, int, bool)>();
        for (int i = from; i < to; i++)
        {
            PendingTensor t = tensors[i];
            var h = new TensorHeader(t.Name, t.DType, t.Shape);
            (h.ByteLength % 8 == 0 ? aligned : rest).Add((h, i, false));
            if (t.DType == DType.F8E4M3)
            {
                var sh = new TensorHeader(t.Name + Fp8Scales.Suffix, DType.F32, Fp8Scales.ShapeFor(t.Shape));
                (sh.ByteLength % 8 == 0 ? aligned : rest).Add((sh, i, true));
            }
        }
        aligned.AddRange(rest.OrderByDescending(r => r.Item1.DType.Size())); // OrderBy is stable
        return aligned;
    }

    private static void WriteShard(string path, List<(TensorHeader Header, int Tensor, bool IsScale)> items, IReadOnlyList<PendingTensor> tensors,
        CancellationToken cancel, Action<long> written)
    {
        // Production order: each tensor when its first entry is due; a small window runs ahead on the thread pool.
        var order = new List<int>();
        var seen = new HashSet<int>();
        foreach (var item in items) if (seen.Add(item.Tensor)) order.Add(item.Tensor);
        int window = Environment.ProcessorCount + 1;
        var running = new Dictionary<int, Task<Weight>>();
        int started = 0;
        void Refill()
        {
            while (started < order.Count && running.Count < window)
            {
                int t = order[started++];
                running[t] = Task.Run(() =>
                {
                    Weight w = tensors[t].Produce();
                    if (w.DType != tensors[t].DType || !w.Shape.AsSpan().SequenceEqual(tensors[t].Shape))
                        throw new InvalidDataException($"tensor {w.Name}: produced {w.DType.SafetensorsName()} [{string.Join(", ", w.Shape)}], planned {tensors[t].DType.SafetensorsName()} [{string.Join(", ", tensors[t].Shape)}]");
                    return w;
                }, cancel);
            }
        }

        var headers = items.ConvertAll(i => i.Header);
        using var writer = new SafetensorsWriter(path, headers, new Dictionary<string, string> { ["format"] = "pt" });
        // Produced weights wait here until their entry is due; once the weight is written only its small scales are kept.
        var weights = new Dictionary<int, Weight>();
        var scales = new Dictionary<int, Weight>();
        try
        {
            Refill();
            foreach (var (header, t, isScale) in items)
            {
                cancel.ThrowIfCancellationRequested();
                if (running.Remove(t, out Task<Weight>? task))
                {
                    Weight w = task.GetAwaiter().GetResult();
                    weights[t] = w;
                    if (w.ScaleInv is { } sc) scales[t] = sc;
                    Refill();
                }
                Weight part = isScale ? scales[t] : weights[t];
                writer.Write(header.Name, part.Bytes);
                (isScale ? scales : weights).Remove(t);
                written(header.ByteLength);
            }
            writer.Complete();
        }
        finally
        {
            // Let producers still running finish before the caller moves on (their exceptions were already surfaced).
            foreach (Task<Weight> r in running.Values) try { r.Wait(); } catch (AggregateException) { }
        }
    }

    private static byte[] IndexJson(long totalSize, SortedDictionary<string, string> weightMap)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartObject("metadata");
            w.WriteNumber("total_size", totalSize);
            w.WriteEndObject();
            w.WriteStartObject("weight_map");
            foreach (var (name, file) in weightMap) w.WriteString(name, file);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        ms.WriteByte((byte)'\n');
        return ms.ToArray();
    }

    private static void RemoveStaleWeights(string dir)
    {
        foreach (string f in Directory.EnumerateFiles(dir, "model*.safetensors")) File.Delete(f);
        string index = Path.Combine(dir, Checkpoint.IndexFile);
        if (File.Exists(index)) File.Delete(index);
    }
}
