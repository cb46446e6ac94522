using System.Buffers.Binary;
using System.Text.Json;

namespace Cluster.ExpertNode.Tests;

/// <summary>Overwrites the stored bytes of chosen tensors in a checkpoint's safetensors shards (to prove they are never read).</summary>
internal static class SafetensorsBytes
{
    public static int Overwrite(string dir, Func<string, bool> which, byte value)
    {
        int count = 0;
        foreach (string path in Directory.GetFiles(dir, "*.safetensors"))
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
            var lengthBytes = new byte[8];
            file.ReadExactly(lengthBytes);
            long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
            var header = new byte[headerLength];
            file.ReadExactly(header);
            using JsonDocument doc = JsonDocument.Parse(header);
            foreach (JsonProperty tensor in doc.RootElement.EnumerateObject())
            {
                if (tensor.Name == "__metadata__" || !which(tensor.Name)) continue;
                JsonElement offsets = tensor.Value.GetProperty("data_offsets");
                long start = offsets[0].GetInt64(), end = offsets[1].GetInt64();
                file.Position = 8 + headerLength + start;
                var fill = new byte[end - start];
                Array.Fill(fill, value);
                file.Write(fill);
                count++;
            }
        }
        return count;
    }
}
