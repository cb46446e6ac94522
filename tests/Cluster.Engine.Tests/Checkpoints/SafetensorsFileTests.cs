using System.Text;
using Cluster.Engine.Checkpoints;
using Cluster.Engine.Tensors;

namespace Cluster.Engine.Tests.Checkpoints;

public class SafetensorsFileTests
{
    /// <summary>A file with the given header (padded as the format allows) followed by <paramref name="dataBytes"/> bytes 0, 1, 2, ...</summary>
    private static string Write(TempDir dir, string header, int dataBytes, long? headerLength = null)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        string path = dir.File("t.safetensors");
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes(headerLength ?? json.Length));
        f.Write(json);
        for (int i = 0; i < dataBytes; i++) f.WriteByte((byte)i);
        return path;
    }

    private static string Error(TempDir dir, string header, int dataBytes, long? headerLength = null)
    {
        string path = Write(dir, header, dataBytes, headerLength);
        var e = Assert.ThrowsAny<Exception>(() => SafetensorsFile.Open(path).Dispose());
        Assert.IsType<InvalidDataException>(e);
        Assert.StartsWith(path + ": ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    private const string Good =
        """{"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[4,12]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}  """;

    [Fact]
    public void Parses_entries_metadata_and_bytes_in_place()
    {
        using var dir = new TempDir();
        using var f = SafetensorsFile.Open(Write(dir, Good, 12));
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal(2, f.Entries.Count);
        SafetensorsEntry b = f.Entry("b");
        Assert.Equal(DType.BF16, b.DType);
        Assert.Equal([2, 2], b.Shape);
        Assert.Equal([4, 5, 6, 7, 8, 9, 10, 11], f.Bytes("b").ToArray());
        Weight w = f.GetWeight("b");
        Assert.Equal(2, w.Rows);
        Assert.Equal(2, w.Cols);
        Assert.Equal(0x0504, ((ReadOnlySpan<ushort>)System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(w.Bytes))[0]);
    }

    [Fact]
    public void Zero_header_length() =>
        Assert.Contains("header length 0 is not in 1..", Error(new TempDir(), "", 0, headerLength: 0));

    [Fact]
    public void File_shorter_than_8_bytes()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("s.safetensors"), [1, 2, 3]);
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(dir.File("s.safetensors")));
        Assert.Contains("truncated", e.Message);
        Assert.Contains("s.safetensors", e.Message);
    }

    [Fact]
    public void Header_length_beyond_the_file() =>
        Assert.Contains("header length 5000 exceeds", Error(new TempDir(), Good, 12, headerLength: 5000));

    [Fact]
    public void Header_that_is_not_json() =>
        Assert.Contains("not valid JSON", Error(new TempDir(), "{\"a\": {\"dtype\": ", 0));

    [Fact]
    public void Unknown_dtype_names_tensor_and_dtype() =>
        Assert.Contains("tensor a: unsupported dtype \"I64\"", Error(new TempDir(), """{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}""", 8));

    [Fact]
    public void Offsets_past_the_end_of_a_truncated_file() =>
        Assert.Contains("tensor b: data_offsets [4,12] run past the data section's 10 bytes", Error(new TempDir(), Good, 10));

    [Fact]
    public void Offsets_that_do_not_match_shape_and_dtype() =>
        Assert.Contains("tensor a: data_offsets [0,6] hold 6 bytes but F32 [1] needs 4",
            Error(new TempDir(), """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,6]}}""", 6));

    [Fact]
    public void Overlapping_tensors() =>
        Assert.Contains("overlap",
            Error(new TempDir(), """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8));

    [Fact]
    public void Hole_between_tensors() =>
        Assert.Contains("tensor b: data_offsets [8, 12] leave a hole of 4 bytes after tensor a",
            Error(new TempDir(), """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""", 12));

    [Fact]
    public void Trailing_bytes_after_the_last_tensor() =>
        Assert.Contains("data section has 16 bytes but the tensors cover 12", Error(new TempDir(), Good, 16));

    [Fact]
    public void Negative_or_malformed_shape() =>
        Assert.Contains("tensor a: shape [-1] is not a list of non-negative integers",
            Error(new TempDir(), """{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4));

    [Fact]
    public void Header_that_is_not_an_object() =>
        Assert.Contains("not a JSON object", Error(new TempDir(), "[1, 2]", 0));

    [Fact]
    public void Writer_output_reads_back_with_aligned_data_start()
    {
        using var dir = new TempDir();
        string path = dir.File("w.safetensors");
        var headers = new List<TensorHeader> { new("x", DType.F32, [3]), new("y", DType.F8E4M3, [2, 3]) };
        using (var w = new SafetensorsWriter(path, headers, new Dictionary<string, string> { ["format"] = "pt" }))
        {
            w.Write("x", new byte[12]);
            Assert.Throws<InvalidOperationException>(() => w.Write("z", new byte[6]));
            w.Write("y", [1, 2, 3, 4, 5, 6]);
            w.Complete();
        }
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(0, f.DataStart % 8);
        Assert.Equal([1, 2, 3, 4, 5, 6], f.Bytes("y").ToArray());
        Assert.Equal([2, 3], f.Entry("y").Shape);
    }
}
