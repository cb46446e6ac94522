using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Cluster.Tests;

/// <summary>
/// Pods without Kubernetes: one network namespace per pod on a private /24 behind a Linux bridge, each with its own
/// address, its own /etc/hosts (the Service and pod DNS names a chart renders) and optionally a netem delay, so
/// processes that listen on 0.0.0.0 and dial each other by name see what they would in a cluster. Needs root and
/// `ip`; <see cref="Unavailable"/> says why not. Every name starts with <see cref="Stem"/> and the owner's pid in
/// base 36, so a run killed before Dispose leaves objects a later run recognises as stale and deletes.
/// </summary>
public sealed class PodNetwork : IDisposable
{
    private const string Stem = "cln";
    private static int s_sequence;
    private static readonly Lazy<string?> s_unavailable = new(Probe);

    private readonly string _prefix;
    private readonly int _subnet;
    private readonly List<Pod> _pods = [];
    private readonly List<(string Address, string[] Names)> _extraHosts = [];
    private bool _disposed;

    /// <summary>The bridge's address: how this (root) namespace reaches every pod.</summary>
    public string BridgeAddress => Address(1);

    public IReadOnlyList<Pod> Pods => _pods;

    /// <summary>Null when namespaces can be made here, else why not (not root, no `ip`, `ip netns add` refused).</summary>
    public static string? Unavailable() => s_unavailable.Value;

    /// <summary>True when the kernel has the netem qdisc (<see cref="SetDelay"/> needs it; minimal VM kernels lack it).</summary>
    public static bool NetemAvailable => s_netem.Value;

    private static readonly Lazy<bool> s_netem = new(ProbeNetem);

    // This machine's name service switch with hosts looked up in files only.
    private static readonly Lazy<string> s_nsswitch = new(() =>
    {
        var lines = File.Exists("/etc/nsswitch.conf") ? File.ReadAllLines("/etc/nsswitch.conf").Where(l => !l.TrimStart().StartsWith("hosts:", StringComparison.Ordinal)) : [];
        return string.Join('\n', [.. lines, "hosts: files"]) + "\n";
    });

    public PodNetwork()
    {
        if (Unavailable() is { } why) throw new InvalidOperationException("pod network unavailable: " + why);
        DeleteStale();
        int seq = Interlocked.Increment(ref s_sequence);
        _prefix = Stem + ToBase36(Environment.ProcessId) + ToBase36(seq % 36);
        // Two runs at once (test assemblies run in parallel) need different subnets: the pid and the sequence pick one.
        _subnet = (Environment.ProcessId * 7 + seq * 131) % 250 + 1;
        try
        {
            Ip($"link add {Bridge} type bridge");
            Ip($"addr add {BridgeAddress}/24 dev {Bridge}");
            Ip($"link set {Bridge} up");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    // Link names add an upper-case letter: the owner part of a name (see OwnerLength) is lower-case only.
    private string Bridge => _prefix + "B";

    private string Address(int host) => $"10.{_subnet / 250 + 180}.{_subnet}.{host}";

    /// <summary>A pod: its namespace, its address, the host-side end of its veth (where a delay is applied) and its names.</summary>
    public sealed record Pod(string Name, string Namespace, string Address, string HostVeth, IReadOnlyList<string> DnsNames);

    /// <summary>Adds a pod reachable by <paramref name="dnsNames"/> (and its own name) from every pod, once <see cref="WriteHosts"/> runs.</summary>
    public Pod AddPod(string name, params string[] dnsNames)
    {
        int index = _pods.Count + 1;
        if (index > 200) throw new InvalidOperationException("a /24 holds at most 200 pods here");
        var pod = new Pod(name, $"{_prefix}-{index}", Address(index + 1), $"{_prefix}V{index}", [name, .. dnsNames]);
        _pods.Add(pod);
        Ip($"netns add {pod.Namespace}");
        Ip($"link add {pod.HostVeth} type veth peer name eth0 netns {pod.Namespace}");
        Ip($"link set {pod.HostVeth} master {Bridge} up");
        Ip($"-n {pod.Namespace} addr add {pod.Address}/24 dev eth0");
        Ip($"-n {pod.Namespace} link set eth0 up");
        Ip($"-n {pod.Namespace} link set lo up");
        return pod;
    }

    /// <summary>One more address of this (root) namespace on the bridge, for a listener pods reach (a proxy in front of a pod).</summary>
    public string AddRootAddress()
    {
        string address = Address(201 + _rootAddresses++);
        Ip($"addr add {address}/24 dev {Bridge}");
        return address;
    }

    private int _rootAddresses;

    /// <summary>More names for an address (a Service's name for its one backing pod, say).</summary>
    public void AddHost(string address, params string[] names) => _extraHosts.Add((address, names));

    /// <summary>
    /// Makes <paramref name="name"/> resolve to exactly <paramref name="addresses"/> (none: not at all, as a headless
    /// Service without ready pods answers NXDOMAIN) and rewrites every pod's hosts file in place, so resolvers in
    /// running pods see the change at their next lookup.
    /// </summary>
    public void SetRecords(string name, params string[] addresses)
    {
        _extraHosts.RemoveAll(h => h.Names is [var only] && only == name);
        foreach (string address in addresses) _extraHosts.Add((address, [name]));
        WriteHosts();
    }

    /// <summary>
    /// Writes /etc/netns/&lt;ns&gt;/hosts and nsswitch.conf for every pod (`ip netns exec` mounts them over /etc's): every
    /// pod's names and the extra hosts, the pod's own name last so it resolves to itself as a kubelet-written hosts file does.
    /// </summary>
    public void WriteHosts()
    {
        var text = new StringBuilder("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n");
        foreach (Pod p in _pods) text.Append(p.Address).Append(' ').AppendJoin(' ', p.DnsNames).Append('\n');
        foreach (var (address, names) in _extraHosts) text.Append(address).Append(' ').AppendJoin(' ', names).Append('\n');
        foreach (Pod p in _pods)
        {
            string dir = Path.Combine("/etc/netns", p.Namespace);
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, "hosts"), text.ToString());
            // Names are answered from the hosts file alone, authoritatively as cluster DNS answers for its zone: a name
            // it lacks is "not found" (NXDOMAIN), not a timeout of a DNS server the pod cannot reach.
            File.WriteAllText(Path.Combine(dir, "nsswitch.conf"), s_nsswitch.Value);
        }
    }

    /// <summary>Delays every packet into the pod by <paramref name="delay"/> (netem on the bridge's end of its veth): a
    /// hop between two delayed pods costs the delay once each way.</summary>
    public void SetDelay(Pod pod, TimeSpan delay)
    {
        if (!NetemAvailable) throw new InvalidOperationException("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)");
        Run("tc", $"qdisc replace dev {pod.HostVeth} root netem delay {delay.TotalMicroseconds.ToString(CultureInfo.InvariantCulture)}us");
    }

    /// <summary>A process started inside the pod's namespace (its environment and working directory as given).</summary>
    public ProcessStartInfo Exec(Pod pod, string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { "netns", "exec", pod.Namespace, file }) psi.ArgumentList.Add(a);
        foreach (string a in args) psi.ArgumentList.Add(a);
        return psi;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        DeleteRun(_prefix);
    }

    /// <summary>Every namespace, link and hosts folder of a run: processes still inside a namespace are killed first.</summary>
    private static void DeleteRun(string prefix)
    {
        foreach (string ns in Namespaces().Where(n => n.StartsWith(prefix + "-", StringComparison.Ordinal)))
        {
            foreach (string pid in TryRun("ip", $"netns pids {ns}").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                TryRun("kill", $"-KILL {pid}");
            TryRun("ip", $"netns del {ns}");
            try { Directory.Delete(Path.Combine("/etc/netns", ns), true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
        foreach (string link in Links().Where(l => l.StartsWith(prefix, StringComparison.Ordinal)))
            TryRun("ip", $"link del {link}");
    }

    /// <summary>Runs whose owner process is gone (killed before its Dispose): their objects are deleted.</summary>
    private static void DeleteStale()
    {
        var prefixes = Namespaces().Concat(Links()).Where(n => n.StartsWith(Stem, StringComparison.Ordinal))
            .Select(n => n[Stem.Length..]).Select(rest => rest.Length > 0 ? rest[..Math.Min(rest.Length, OwnerLength(rest))] : rest).Distinct();
        foreach (string owner in prefixes)
        {
            if (owner.Length < 2 || FromBase36(owner[..^1]) is not { } pid) continue;
            if (pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}")) DeleteRun(Stem + owner);
        }
    }

    // A run prefix is the pid in base 36 (lower-case letters and digits) and one sequence character.
    private static int OwnerLength(string rest)
    {
        int n = 0;
        while (n < rest.Length && (char.IsAsciiDigit(rest[n]) || char.IsAsciiLetterLower(rest[n]))) n++;
        return n;
    }

    private static IEnumerable<string> Namespaces() =>
        TryRun("ip", "netns list").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]);

    private static IEnumerable<string> Links() =>
        TryRun("ip", "-o link show").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(':', 3)).Where(p => p.Length > 2).Select(p => p[1].Trim().Split('@')[0]);

    private static string? Probe()
    {
        if (!OperatingSystem.IsLinux()) return "network namespaces are Linux only";
        if (Environment.UserName != "root" && !IsEuidZero()) return "not root (ip netns add needs CAP_SYS_ADMIN and CAP_NET_ADMIN)";
        string probe = Stem + ToBase36(Environment.ProcessId) + "z-probe";
        var (code, _, err) = Exec("ip", $"netns add {probe}");
        if (code != 0) return $"`ip netns add` failed ({code}): {err.Trim()}";
        Exec("ip", $"netns del {probe}");
        return null;
    }

    private static bool ProbeNetem()
    {
        string a = Stem + ToBase36(Environment.ProcessId) + "zN", b = a + "P";
        if (Exec("ip", $"link add {a} type veth peer name {b}").Code != 0) return false;
        try { return Exec("tc", $"qdisc add dev {a} root netem delay 1ms").Code == 0; }
        finally { Exec("ip", $"link del {a}"); }
    }

    private static bool IsEuidZero()
    {
        try { return File.ReadAllLines("/proc/self/status").Any(l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[2] == "0"); }
        catch (IOException) { return false; }
    }

    private static string ToBase36(int value)
    {
        const string digits = "0123456789abcdefghijklmnopqrstuvwxyz";
        var s = new StringBuilder();
        do { s.Insert(0, digits[value % 36]); value /= 36; } while (value > 0);
        return s.ToString();
    }

    private static int? FromBase36(string s)
    {
        long v = 0;
        foreach (char c in s)
        {
            int d = char.IsAsciiDigit(c) ? c - '0' : char.IsAsciiLetterLower(c) ? c - 'a' + 10 : -1;
            if (d < 0) return null;
            v = v * 36 + d;
            if (v > int.MaxValue) return null;
        }
        return (int)v;
    }

    private static void Ip(string args) => Run("ip", args);

    private static void Run(string file, string args)
    {
        var (code, _, err) = Exec(file, args);
        if (code != 0) throw new InvalidOperationException($"{file} {args} exited {code}: {err.Trim()}");
    }

    private static string TryRun(string file, string args) => Exec(file, args).Stdout;

    private static (int Code, string Stdout, string Stderr) Exec(string file, string args)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            string stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, stdout.Result, stderr);
        }
        catch (System.ComponentModel.Win32Exception e) { return (127, "", e.Message); }
    }
}
