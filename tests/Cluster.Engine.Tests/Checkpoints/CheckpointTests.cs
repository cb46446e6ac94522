using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Config;
using Cluster.Engine.Synthetic;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Checkpoints;

public class CheckpointTests
{
    private static readonly ModelConfig Tiny = SyntheticPresets.Tiny;

    private static void WriteTiny(string dir, int seed = 5, DType dtype = DType.F8E4M3, int shards = 3) =>
        CheckpointWriter.Write(dir, SyntheticModel.ConfigFor(Tiny, dtype), SyntheticModel.Plan(Tiny, seed, dtype), shards);

    private static string DirectoryHash(string dir)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (string f in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(f)));
            sha.AppendData(File.ReadAllBytes(f));
        }
        return Convert.ToHexString(sha.GetHashAndReset());
    }

    [Fact]
    public void Writes_the_hugging_face_layout()
    {
        using var dir = new TempDir();
        WriteTiny(dir.Path, shards: 3);
        string[] files = Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
        Assert.Equal(["config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json"], files);

        var index = JsonNode.Parse(File.ReadAllText(dir.File("model.safetensors.index.json")))!;
        var map = index["weight_map"]!.AsObject();
        Assert.Equal("model-00001-of-00003.safetensors", (string)map["model.embed_tokens.weight"]!);
        Assert.True(map.ContainsKey("model.layers.1.self_attn.q_b_proj.weight_scale_inv"));
        Assert.True(map.ContainsKey($"model.layers.{Tiny.NumHiddenLayers}.eh_proj.weight"));
        long dataBytes = 0;
        foreach (string f in files.Where(f => f.EndsWith(".safetensors")))
            using (var st = SafetensorsFile.Open(dir.File(f)))
            {
                dataBytes += st.FileLength - st.DataStart;
                Assert.Equal(0, st.DataStart % 8);
                // Every entry whose size is a multiple of 8 starts 8-byte aligned; all start aligned to their element size.
                foreach (SafetensorsEntry e in st.Entries)
                    Assert.Equal(0, e.Begin % (e.ByteLength % 8 == 0 ? 8 : e.DType.Size()));
            }
        Assert.Equal(dataBytes, (long)index["metadata"]!["total_size"]!);

        var config = JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!;
        Assert.Equal("DeepseekV3ForCausalLM", (string)config["architectures"]![0]!);
        Assert.Equal("deepseek_v3", (string)config["model_type"]!);
        Assert.Equal("bfloat16", (string)config["torch_dtype"]!);
        Assert.Equal(0, (int)config["bos_token_id"]!);
        Assert.Equal(1, (int)config["eos_token_id"]!);
        Assert.Equal("fp8", (string)config["quantization_config"]!["quant_method"]!);
        Assert.Equal("yarn", (string)config["rope_scaling"]!["type"]!);
        ModelConfig read = ModelConfig.Load(dir.File("config.json"));
        Assert.Equal([128, 128], read.Fp8BlockSize!);
        Assert.Equal(Tiny.EosTokenIds, read.EosTokenIds);
        // Records compare arrays by reference: share them to compare every other field.
        Assert.Equal(Tiny, read with { Fp8BlockSize = Tiny.Fp8BlockSize, EosTokenIds = Tiny.EosTokenIds });
    }

    [Fact]
    public void Reads_back_every_tensor_with_fp8_scales_attached_and_mtp_skipped()
    {
        using var dir = new TempDir();
        WriteTiny(dir.Path, seed: 9);
        var expected = SyntheticModel.CreateWeights(Tiny, 9, DType.F8E4M3);
        using var ck = Checkpoint.Open(dir.Path);
        Assert.Equal([128, 128], ck.Config.Fp8BlockSize!);
        int mtp = CheckpointLayout.For(Tiny, DType.F8E4M3).Count(s => s.IsMtp);
        Assert.True(mtp > 10);
        Assert.Equal(mtp, ck.SkippedMtpTensors);
        Assert.Equal(expected.Names.Count() - mtp, ck.Names.Count());
        foreach (string name in ck.Names)
        {
            Weight a = ck.Get(name), e = expected.Get(name);
            Assert.Equal(e.DType, a.DType);
            Assert.Equal(e.Shape, a.Shape);
            Assert.True(a.Bytes.SequenceEqual(e.Bytes), name);
            Assert.Equal(e.ScaleInv is null, a.ScaleInv is null);
            if (e.ScaleInv is { } s) Assert.True(a.ScaleInv!.Bytes.SequenceEqual(s.Bytes), name);
        }
        var err = Assert.Throws<InvalidDataException>(() => ck.Get($"model.layers.{Tiny.NumHiddenLayers}.eh_proj.weight"));
        Assert.Contains("MTP", err.Message);
    }

    [Fact]
    public void Sharded_and_single_file_checkpoints_hold_the_same_bytes()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        WriteTiny(a.Path, shards: 4);
        WriteTiny(b.Path, shards: 1);
        Assert.True(File.Exists(b.File("model.safetensors")));
        Assert.False(File.Exists(b.File("model.safetensors.index.json")));
        using var sharded = Checkpoint.Open(a.Path);
        using var single = Checkpoint.Open(b.Path);
        Assert.Equal(4, sharded.OpenedFiles.Count);
        Assert.Equal(single.Names.Order(), sharded.Names.Order());
        foreach (string name in single.Names)
        {
            Assert.True(sharded.Get(name).Bytes.SequenceEqual(single.Get(name).Bytes), name);
            if (single.Get(name).ScaleInv is { } s) Assert.True(sharded.Get(name).ScaleInv!.Bytes.SequenceEqual(s.Bytes), name);
        }
    }

    [Fact]
    public void Same_seed_same_directory_bytes_different_seed_different()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        using var c = new TempDir();
        WriteTiny(a.Path, seed: 1);
        WriteTiny(b.Path, seed: 1);
        WriteTiny(c.Path, seed: 2);
        Assert.Equal(DirectoryHash(a.Path), DirectoryHash(b.Path));
        Assert.NotEqual(DirectoryHash(a.Path), DirectoryHash(c.Path));
    }

    [Fact]
    public void Subset_opens_only_the_shards_of_included_tensors_and_never_reads_other_bytes()
    {
        using var dir = new TempDir();
        WriteTiny(dir.Path, shards: 6);
        var map = JsonNode.Parse(File.ReadAllText(dir.File("model.safetensors.index.json")))!["weight_map"]!.AsObject();
        string last = "model-00006-of-00006.safetensors";
        // Experts of layer 2 live in one of the middle shards: choose them, and break everything they do not need.
        bool Include(string n) => n.StartsWith("model.layers.2.mlp.experts.1", StringComparison.Ordinal);
        var needed = map.Where(p => Include(p.Key.Replace("_scale_inv", ""))).Select(p => (string)p.Value!).ToHashSet();
        Assert.DoesNotContain(last, needed);
        File.WriteAllBytes(dir.File(last), [0xFF, 0xFF]); // a shard holding only excluded tensors: unreadable if opened
        // Corrupt the bytes of excluded tensors that share a shard with included ones.
        foreach (string f in needed)
        {
            var entries = new List<SafetensorsEntry>();
            long dataStart;
            using (var st = SafetensorsFile.Open(dir.File(f))) { entries.AddRange(st.Entries); dataStart = st.DataStart; }
            using var fs = new FileStream(dir.File(f), FileMode.Open, FileAccess.Write);
            foreach (SafetensorsEntry e in entries.Where(e => !Include(e.Name.Replace("_scale_inv", ""))))
            {
                fs.Position = dataStart + e.Begin;
                fs.Write(Enumerable.Repeat((byte)0x7F, (int)e.ByteLength).ToArray());
            }
        }

        using var ck = Checkpoint.Open(dir.Path, Include);
        Assert.DoesNotContain(last, ck.OpenedFiles);
        Assert.Equal(needed.Order(), ck.OpenedFiles.Order());
        var names = ck.Names.ToList();
        Assert.Equal(3 * 11, names.Count); // experts 1 and 10..19 of layer 2 (tiny has 32), three projections each
        var expected = SyntheticModel.CreateWeights(Tiny, 5, DType.F8E4M3);
        foreach (string n in names)
        {
            Assert.True(ck.Get(n).Bytes.SequenceEqual(expected.Get(n).Bytes), n);
            Assert.True(ck.Get(n).ScaleInv!.Bytes.SequenceEqual(expected.Get(n).ScaleInv!.Bytes), n);
        }
        Assert.Throws<InvalidDataException>(() => ck.Get("model.embed_tokens.weight"));
        var full = Assert.Throws<InvalidDataException>(() => Checkpoint.Open(dir.Path).Dispose());
        Assert.Contains(last, full.Message);
    }

    [Fact]
    public void Shape_that_disagrees_with_config_names_file_and_tensor()
    {
        using var dir = new TempDir();
        WriteTiny(dir.Path, dtype: DType.BF16, shards: 1);
        string cfg = File.ReadAllText(dir.File("config.json")).Replace("\"kv_lora_rank\": 32", "\"kv_lora_rank\": 16");
        File.WriteAllText(dir.File("config.json"), cfg);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Open(dir.Path).Dispose());
        Assert.Equal($"{dir.File("model.safetensors")}: tensor model.layers.0.self_attn.kv_a_layernorm.weight has shape [32] but config.json implies [16]", e.Message);
    }

    [Fact]
    public void Missing_tensor_is_named()
    {
        using var dir = new TempDir();
        var plan = SyntheticModel.Plan(Tiny, 1, DType.BF16).Where(t => t.Name != "model.layers.1.mlp.experts.7.up_proj.weight").ToList();
        CheckpointWriter.Write(dir.Path, Tiny, plan, 2);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Open(dir.Path).Dispose());
        Assert.Equal($"{dir.Path}: missing tensor model.layers.1.mlp.experts.7.up_proj.weight [32, 64]", e.Message);
    }

    [Fact]
    public void More_layers_than_config_is_an_unexpected_tensor()
    {
        using var dir = new TempDir();
        WriteTiny(dir.Path, dtype: DType.BF16, shards: 2);
        string cfg = File.ReadAllText(dir.File("config.json")).Replace("\"num_hidden_layers\": 3", "\"num_hidden_layers\": 2").Replace("\"num_nextn_predict_layers\": 1", "\"num_nextn_predict_layers\": 0");
        File.WriteAllText(dir.File("config.json"), cfg);
        // Layer 3 (MTP before) is now past the trunk and skipped; layer 2's tensors are MTP too. Nothing unexpected remains,
        // but the trunk lost a layer: opening works and exposes exactly two layers.
        using var ck = Checkpoint.Open(dir.Path);
        Assert.DoesNotContain(ck.Names, n => n.StartsWith("model.layers.2.", StringComparison.Ordinal));
        File.WriteAllText(dir.File("config.json"), cfg.Replace("\"first_k_dense_replace\": 1", "\"first_k_dense_replace\": 2"));
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Open(dir.Path).Dispose());
        Assert.Contains("unexpected tensor model.layers.1.mlp.", e.Message);
    }

    [Fact]
    public void Truncated_shard_names_the_file()
    {
        using var dir = new TempDir();
        WriteTiny(dir.Path, shards: 2);
        string shard = dir.File("model-00002-of-00002.safetensors");
        using (var fs = new FileStream(shard, FileMode.Open)) fs.SetLength(fs.Length - 100);
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Open(dir.Path).Dispose());
        Assert.StartsWith(shard + ": ", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void Fp8_weight_without_scales_is_refused()
    {
        using var dir = new TempDir();
        WriteTiny(dir.Path, shards: 1);
        // Rewrite the file without one scale tensor (shifting the rest): a consistent file missing only that scale.
        string path = dir.File("model.safetensors");
        string victim = "model.layers.0.self_attn.o_proj.weight";
        var headers = new List<TensorHeader>();
        var data = new Dictionary<string, byte[]>();
        using (var st = SafetensorsFile.Open(path))
            foreach (SafetensorsEntry e in st.Entries.OrderBy(e => e.Begin))
            {
                if (e.Name == victim + "_scale_inv") continue;
                headers.Add(new TensorHeader(e.Name, e.DType, e.Shape));
                data[e.Name] = st.Bytes(e.Name).ToArray();
            }
        using (var w = new SafetensorsWriter(path, headers))
        {
            foreach (TensorHeader h in headers) w.Write(h.Name, data[h.Name]);
            w.Complete();
        }
        var ex = Assert.Throws<InvalidDataException>(() => Checkpoint.Open(dir.Path).Dispose());
        Assert.Equal($"{path}: tensor {victim}: F8_E4M3 weight without {victim}_scale_inv", ex.Message);
    }

    /// <summary>Reports straight to a list, on the reporting thread (Progress&lt;T&gt; would post to the thread pool).</summary>
    private sealed class Recorder : IProgress<ByteProgress>
    {
        public readonly List<ByteProgress> Reports = [];
        public void Report(ByteProgress p) { lock (Reports) Reports.Add(p); }
    }

    [Fact]
    public void Weights_point_into_the_mapped_files_and_progress_reaches_the_total()
    {
        using var dir = new TempDir();
        var write = new Recorder();
        long total = CheckpointWriter.Write(dir.Path, SyntheticModel.ConfigFor(Tiny, DType.F8E4M3), SyntheticModel.Plan(Tiny, 1, DType.F8E4M3), 2, write);
        Assert.Equal(new ByteProgress(total, total), write.Reports[^1]);
        Assert.True(write.Reports.Count > 100);

        var open = new Recorder();
        using var ck = Checkpoint.Open(dir.Path, progress: open);
        Assert.Equal(open.Reports[^1].Total, open.Reports[^1].Done);
        Assert.Equal(new FileInfo(dir.File("model-00001-of-00002.safetensors")).Length + new FileInfo(dir.File("model-00002-of-00002.safetensors")).Length, open.Reports[^1].Total);

        // Weights are views of the mapping: two tensors of one shard lie exactly as far apart as their offsets.
        using var shard = SafetensorsFile.Open(dir.File("model-00001-of-00002.safetensors"));
        string a = "model.embed_tokens.weight", b = "model.layers.0.self_attn.q_a_proj.weight";
        Assert.True(shard.Contains(a) && shard.Contains(b));
        unsafe
        {
            Assert.Equal(shard.Entry(b).Begin - shard.Entry(a).Begin, (long)(ck.Get(b).Data - ck.Get(a).Data));
            Assert.True(ck.Get(a).Data == ck.Get(a).Data);
        }
        Assert.True(ck.LoadedBytes < total);  // the MTP layer is not loaded
        Assert.True(ck.LoadedBytes > total / 2);
    }

    [Fact]
    public void Config_without_q_lora_uses_q_proj_and_round_trips()
    {
        using var dir = new TempDir();
        ModelConfig c = Tiny with { QLoraRank = null };
        CheckpointWriter.Write(dir.Path, c, SyntheticModel.Plan(c, 4, DType.F8E4M3), 2);
        using var ck = Checkpoint.Open(dir.Path);
        Assert.Null(ck.Config.QLoraRank);
        Weight q = ck.Get("model.layers.0.self_attn.q_proj.weight");
        Assert.Equal([c.NumAttentionHeads * c.QkHeadDim, c.HiddenSize], q.Shape);
        Assert.Equal(DType.F8E4M3, q.DType);
        Assert.False(ck.Contains("model.layers.0.self_attn.q_a_proj.weight"));
    }

    [Fact]
    public void Directory_without_weights()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("config.json"), ModelConfigWriter.ToJson(Tiny));
        var e = Assert.Throws<FileNotFoundException>(() => Checkpoint.Open(dir.Path));
        Assert.Contains("neither model.safetensors.index.json nor model.safetensors", e.Message);
    }
}
