using Cluster.Engine.Tensors;

namespace Cluster.Engine.Model;

/// <summary>Fetches weights by Hugging Face name and checks their shapes, naming the tensor when they are wrong.</summary>
public static class TensorShapes
{
    public static Weight Matrix(ITensorSource source, string name, int rows, int cols)
    {
        Weight w = source.Get(name);
        if (w.Shape.Length != 2 || w.Rows != rows || w.Cols != cols)
            throw new InvalidDataException($"tensor {name}: expected shape [{rows}, {cols}], got [{string.Join(", ", w.Shape)}]");
        return w;
    }

    /// <summary>A 1-D tensor (norm scales, router bias) widened to float32: small and read on every token.</summary>
    public static float[] Vector(ITensorSource source, string name, int n)
    {
        Weight w = source.Get(name);
        if (w.Shape.Length != 1 || w.Rows != n)
            throw new InvalidDataException($"tensor {name}: expected shape [{n}], got [{string.Join(", ", w.Shape)}]");
        var values = new float[n];
        for (int i = 0; i < n; i++) w.DequantizeRow(i, values.AsSpan(i, 1));
        return values;
    }
}
