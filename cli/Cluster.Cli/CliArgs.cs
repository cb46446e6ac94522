namespace Cluster.Cli;

/// <summary>Options of one command line: <c>--name value</c> pairs and bare <c>--flag</c>s.</summary>
public sealed class CliArgs
{
    private readonly Dictionary<string, string?> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    public CliArgs(IReadOnlyList<string> args)
    {
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
                throw new CliException($"unexpected argument '{a}'");
            string name = a[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
            else if (i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal)) value = args[++i];
            if (!_options.TryAdd(name, value)) throw new CliException($"option --{name} given twice");
        }
    }

    public bool Has(string name) { _read.Add(name); return _options.ContainsKey(name); }

    public bool Flag(string name)
    {
        _read.Add(name);
        if (!_options.TryGetValue(name, out string? v)) return false;
        if (v is null) return true;
        return v switch
        {
            "true" or "1" or "yes" => true,
            "false" or "0" or "no" => false,
            _ => throw new CliException($"--{name} takes no value (got '{v}')"),
        };
    }

    public string? String(string name)
    {
        _read.Add(name);
        if (!_options.TryGetValue(name, out string? v)) return null;
        return v ?? throw new CliException($"--{name} needs a value");
    }

    public string Required(string name) => String(name) ?? throw new CliException($"missing --{name}");

    public string String(string name, string fallback) => String(name) ?? fallback;

    public long Long(string name, long fallback, long min = long.MinValue, long max = long.MaxValue)
    {
        string? v = String(name);
        if (v is null) return fallback;
        if (!long.TryParse(v, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long x))
            throw new CliException($"--{name} must be an integer (got '{v}')");
        if (x < min || x > max) throw new CliException($"--{name} must be between {min} and {max} (got {x})");
        return x;
    }

    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue)
        => (int)Long(name, fallback, min, max);

    /// <summary>A size in bytes, plain or with a K/M/G/T or KiB/MiB/GiB/TiB suffix (see <see cref="ByteSize"/>).</summary>
    public long Size(string name, long fallback, long min = 0, long max = long.MaxValue)
    {
        string? v = String(name);
        if (v is null) return fallback;
        if (!ByteSize.TryParse(v, out long x)) throw new CliException($"--{name} must be a size: {ByteSize.Forms} (got '{v}')");
        if (x < min || x > max) throw new CliException($"--{name} must be between {min} and {max} bytes (got {x})");
        return x;
    }

    public double Double(string name, double fallback, double min = double.NegativeInfinity, double max = double.PositiveInfinity)
    {
        string? v = String(name);
        if (v is null) return fallback;
        if (!double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double x) || double.IsNaN(x))
            throw new CliException($"--{name} must be a number (got '{v}')");
        if (x < min || x > max) throw new CliException($"--{name} must be between {min} and {max} (got {x})");
        return x;
    }

    /// <summary>Fails on options the command never asked about, so a typo is not silently ignored.</summary>
    public void RejectUnknown()
    {
        foreach (string name in _options.Keys)
            if (!_read.Contains(name)) throw new CliException($"unknown option --{name}");
    }
}

/// <summary>A user error: printed as one line, exit code 2.</summary>
public sealed class CliException(string message) : Exception(message);
