using System.Globalization;
using System.Text;

namespace Cluster.Transport;

/// <summary>
/// Prometheus' text exposition format (0.0.4) as the project writes it (see the transport's <c>CallMetrics</c>):
/// a HELP and a TYPE line per family, then one line per series, numbers in the invariant culture.
/// </summary>
public static class PrometheusText
{
    public const string ContentType = "text/plain; version=0.0.4";

    public static void Family(TextWriter output, string name, string type, string help)
    {
        output.Write("# HELP ");
        output.Write(name);
        output.Write(' ');
        output.Write(help);
        output.Write("\n# TYPE ");
        output.Write(name);
        output.Write(' ');
        output.Write(type);
        output.Write('\n');
    }

    /// <param name="labels">Already written as <c>a="x",b="y"</c> (see <see cref="Label"/>), or empty.</param>
    public static void Sample(TextWriter output, string name, string labels, double value)
    {
        output.Write(name);
        if (labels.Length > 0)
        {
            output.Write('{');
            output.Write(labels);
            output.Write('}');
        }
        output.Write(' ');
        output.Write(Number(value));
        // The format's line end on every platform (TextWriter.WriteLine would write \r\n on Windows).
        output.Write('\n');
    }

    public static void Sample(TextWriter output, string name, string labels, long value) =>
        Sample(output, name, labels, (double)value);

    /// <summary><c>name="value"</c> with the value escaped as the format requires (backslash, quote, newline).</summary>
    public static string Label(string name, string value)
    {
        var text = new StringBuilder(name.Length + value.Length + 3).Append(name).Append("=\"");
        foreach (char c in value)
        {
            switch (c)
            {
                case '\\': text.Append(@"\\"); break;
                case '"': text.Append("\\\""); break;
                case '\n': text.Append(@"\n"); break;
                default: text.Append(c); break;
            }
        }
        return text.Append('"').ToString();
    }

    public static string Number(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" : double.IsNegativeInfinity(value) ? "-Inf" : value.ToString("R", CultureInfo.InvariantCulture);
}
