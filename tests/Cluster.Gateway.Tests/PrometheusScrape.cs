using System.Globalization;
using System.Text.RegularExpressions;

namespace Cluster.Gateway.Tests;

/// <summary>
/// A strict reader of Prometheus' text format for the tests: every line is a HELP, a TYPE or a sample of a family
/// announced by TYPE, names and labels as the format allows, values numbers; anything else fails the test.
/// </summary>
public sealed partial class PrometheusScrape
{
    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    private PrometheusScrape(Dictionary<string, string> types, List<Sample> samples)
    {
        Types = types;
        Samples = samples;
    }

    public IReadOnlyDictionary<string, string> Types { get; }
    public IReadOnlyList<Sample> Samples { get; }

    public static PrometheusScrape Parse(string text)
    {
        var types = new Dictionary<string, string>();
        var helps = new HashSet<string>();
        var samples = new List<Sample>();
        Assert.EndsWith("\n", text);
        foreach (string line in text.TrimEnd('\n').Split('\n'))
        {
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                string[] parts = line.Split(' ', 4);
                Assert.True(parts.Length == 4 && NameRegex().IsMatch(parts[2]), $"bad HELP line: {line}");
                Assert.True(helps.Add(parts[2]), $"a second HELP for {parts[2]}");
                continue;
            }
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                string[] parts = line.Split(' ');
                Assert.True(parts.Length == 4 && parts[3] is "counter" or "gauge" or "histogram", $"bad TYPE line: {line}");
                Assert.True(types.TryAdd(parts[2], parts[3]), $"a second TYPE for {parts[2]}");
                Assert.Contains(parts[2], helps);
                continue;
            }
            Match m = SampleRegex().Match(line);
            Assert.True(m.Success, $"not a sample line: '{line}'");
            var labels = new Dictionary<string, string>();
            if (m.Groups["labels"].Success)
                foreach (Match l in LabelRegex().Matches(m.Groups["labels"].Value))
                    Assert.True(labels.TryAdd(l.Groups[1].Value, Regex.Unescape(l.Groups[2].Value)), $"a label twice: {line}");
            string value = m.Groups["value"].Value;
            double v = value switch { "+Inf" => double.PositiveInfinity, "-Inf" => double.NegativeInfinity, _ => double.Parse(value, NumberStyles.Float, CultureInfo.InvariantCulture) };
            string name = m.Groups["name"].Value;
            string family = types.ContainsKey(name) ? name : Regex.Replace(name, "_(bucket|sum|count)$", "");
            Assert.True(types.ContainsKey(family), $"{name} has no TYPE line before it");
            if (types[family] == "counter" || name != family) Assert.True(v >= 0, $"{line}: a negative count");
            samples.Add(new Sample(name, labels, v));
        }
        return new PrometheusScrape(types, samples);
    }

    public IEnumerable<Sample> Of(string name, params (string Label, string Value)[] labels) =>
        Samples.Where(s => s.Name == name && labels.All(l => s.Labels.TryGetValue(l.Label, out string? v) && v == l.Value));

    /// <summary>The one series of <paramref name="name"/> with these labels; 0 when there is none (a counter not yet counted).</summary>
    public double Value(string name, params (string Label, string Value)[] labels) => Of(name, labels).SingleOrDefault()?.Value ?? 0;

    /// <summary>Asserts a histogram's shape: bounds increasing to +Inf, counts cumulative, +Inf = _count; returns the count.</summary>
    public long Histogram(string name)
    {
        Assert.Equal("histogram", Types[name]);
        List<Sample> buckets = [.. Of(name + "_bucket")];
        Assert.True(buckets.Count >= 2, $"{name} has {buckets.Count} buckets");
        double previousBound = double.NegativeInfinity, previousCount = 0;
        foreach (Sample b in buckets)
        {
            double le = b.Labels["le"] == "+Inf" ? double.PositiveInfinity : double.Parse(b.Labels["le"], CultureInfo.InvariantCulture);
            Assert.True(le > previousBound, $"{name}: bucket bounds out of order");
            Assert.True(b.Value >= previousCount, $"{name}: bucket le={b.Labels["le"]} holds fewer than the one before (not cumulative)");
            (previousBound, previousCount) = (le, b.Value);
        }
        Assert.Equal(double.PositiveInfinity, previousBound);
        Assert.Equal(previousCount, Value(name + "_count"));
        Assert.True(Value(name + "_sum") >= 0);
        return (long)previousCount;
    }

    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    private static partial Regex NameRegex();
    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*)\})? (?<value>\S+)$""")]
    private static partial Regex SampleRegex();
    [GeneratedRegex("""([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)""")]
    private static partial Regex LabelRegex();
}
