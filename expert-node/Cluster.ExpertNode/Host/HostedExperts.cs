using Cluster.Engine.Backend;
using Cluster.Engine.Config;
using Cluster.Engine.Kernels;
using Cluster.Engine.Model;
using Cluster.Engine.Tensors;
using Cluster.ExpertNode.Placement;

namespace Cluster.ExpertNode.Host;

/// <summary>
/// The routed experts one expert node holds and the plan versions it serves. Usually one version; during a live
/// rebalance also the next one: <see cref="Prepare"/> loads the next plan's new slots while frames keep being
/// served, then frames of either version are accepted (each only for the experts its version gives this node), and
/// <see cref="Release"/> forgets the older version once no attention node routes with it, dropping the slots only it
/// had. The tokens each (layer, expert) served are counted for the node's lifetime. Each layer is composed by the
/// node's expert backend (<see cref="IExpertBackend"/>: the CPU's RoutedExperts, or a GPU's) from the experts held
/// now. Compute is serialized: a layer's experts are not safe to run concurrently, and they parallelize inside.
/// </summary>
public sealed class HostedExperts : IDisposable
{
    private readonly ModelConfig _config;
    private readonly Func<IReadOnlySet<string>, ITensorSource> _open;
    private readonly object _compute = new();
    private readonly SemaphoreSlim _preparing = new(1, 1);
    private readonly ITensorSource?[][] _source;
    private readonly long[][] _bytes;
    private readonly long[][] _tokens;
    private readonly IExpertBackend _backend;
    private IHostedExperts?[] _layers;
    // Ascending by version; replaced, never mutated, so readers need no lock.
    private HeldPlan[] _held = [];
    private long _rows;

    private HostedExperts(ModelConfig config, string nodeId, Func<IReadOnlySet<string>, ITensorSource> open, IExpertBackend backend)
    {
        _config = config;
        _backend = backend;
        NodeId = nodeId;
        _open = open;
        int layers = config.NumHiddenLayers, experts = config.NRoutedExperts;
        _source = new ITensorSource?[layers][];
        _bytes = new long[layers][];
        _tokens = new long[layers][];
        for (int l = 0; l < layers; l++)
        {
            _source[l] = new ITensorSource?[experts];
            _bytes[l] = new long[experts];
            _tokens[l] = new long[experts];
        }
        _layers = new IHostedExperts?[layers];
    }

    public string NodeId { get; }

    /// <summary>The newest plan held.</summary>
    public PlacementPlan Plan => Volatile.Read(ref _held)[^1].Plan;

    /// <summary>Every plan version served, ascending.</summary>
    public ulong[] Versions => Array.ConvertAll(Volatile.Read(ref _held), h => h.Plan.Version);

    /// <summary>Bytes of the expert tensors loaded now (the slots of every held version, each expert once).</summary>
    public long LoadedBytes
    {
        get
        {
            lock (_compute)
            {
                long total = 0;
                foreach (long[] layer in _bytes) foreach (long b in layer) total += b;
                return total;
            }
        }
    }

    /// <summary>Expert rows computed: one per (token, expert) pair served, the node's share of the routed work.</summary>
    public long RowsServed => Interlocked.Read(ref _rows);

    /// <summary>The checkpoint tensors of <paramref name="node"/>'s slots: what Checkpoint.Open should load and nothing else.</summary>
    public static HashSet<string> TensorNames(PlacementPlan plan, int node)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (LayerPlacement layer in plan.Layers)
            foreach (int e in layer.SlotsOn(node))
                foreach (string name in ExpertTensors(layer.Layer, e)) names.Add(name);
        return names;
    }

    private static string Prefix(int layer, int expert) => $"model.layers.{layer}.mlp.experts.{expert}";

    private static string[] ExpertTensors(int layer, int expert) =>
        [Prefix(layer, expert) + ".gate_proj.weight", Prefix(layer, expert) + ".up_proj.weight", Prefix(layer, expert) + ".down_proj.weight"];

    /// <summary>True for routed expert weights, which an attention node with remote experts leaves out of its Checkpoint.Open.</summary>
    public static bool IsRoutedExpertTensor(string name) => name.Contains(".mlp.experts.", StringComparison.Ordinal);

    /// <summary>
    /// Loads node <paramref name="nodeId"/>'s slots of <paramref name="plan"/>. <paramref name="open"/> gives a source
    /// holding exactly the named tensors (a Checkpoint opened with that include filter); it is called again for the
    /// slots of each newer plan, and a source that is disposable is disposed once none of its experts is held.
    /// </summary>
    /// <param name="join">When the plan leaves the node out: serve no slots (until a newer plan gives it some) instead of failing.</param>
    /// <param name="backend">What runs the experts (the CPU backend when null).</param>
    public static HostedExperts Load(ModelConfig config, PlacementPlan plan, string nodeId, Func<IReadOnlySet<string>, ITensorSource> open, bool join = false,
        IExpertBackend? backend = null)
    {
        plan.CheckFits(config);
        if (!join) plan.NodeIndex(nodeId);
        var hosted = new HostedExperts(config, nodeId, open, backend ?? CpuBackend.Default);
        hosted.Add(plan, hosted.LoadMissing(plan));
        return hosted;
    }

    /// <summary>
    /// Loads the slots <paramref name="next"/> gives this node that it does not hold yet, on the caller's thread (the
    /// expert service gives it a thread of its own), then serves
    /// <paramref name="next"/>'s version too. Frames keep being served meanwhile: the compute lock is taken only to
    /// list what is missing and to publish it, never while reading. Returns the slots loaded and their bytes; a
    /// version already held loads nothing.
    /// </summary>
    public (int Slots, long Bytes) Prepare(PlacementPlan next, CancellationToken cancel = default)
    {
        next.CheckFits(_config, $"plan version {next.Version}");
        next.NodeIndex(NodeId);
        _preparing.Wait(cancel);
        try
        {
            HeldPlan[] held = Volatile.Read(ref _held);
            if (Array.Exists(held, h => h.Plan.Version == next.Version)) return (0, 0);
            if (next.Version < held[^1].Plan.Version)
                throw new ArgumentException($"plan version {next.Version} is older than the newest held, {held[^1].Plan.Version}");
            List<Loaded> loaded = LoadMissing(next);
            Add(next, loaded);
            return (loaded.Count, loaded.Sum(l => l.Bytes));
        }
        finally { _preparing.Release(); }
    }

    private readonly record struct Loaded(int Layer, int Expert, ITensorSource Source, long Bytes);

    /// <summary>This node's index in <paramref name="plan"/>; -1 when the plan leaves it out.</summary>
    private int IndexIn(PlacementPlan plan)
    {
        for (int i = 0; i < plan.Nodes.Count; i++) if (plan.Nodes[i].Id == NodeId) return i;
        return -1;
    }

    private List<Loaded> LoadMissing(PlacementPlan plan)
    {
        int node = IndexIn(plan);
        var missing = new List<(int Layer, int Expert)>();
        lock (_compute)
            if (node >= 0)
                foreach (LayerPlacement layer in plan.Layers)
                    foreach (int e in layer.SlotsOn(node))
                        if (_source[layer.Layer][e] is null) missing.Add((layer.Layer, e));
        var result = new List<Loaded>();
        if (missing.Count == 0) return result;
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach ((int l, int e) in missing) names.UnionWith(ExpertTensors(l, e));
        ITensorSource source = _open(names);
        foreach ((int l, int e) in missing)
        {
            long bytes = 0;
            foreach (string name in ExpertTensors(l, e))
            {
                Weight w = source.Get(name);
                bytes += w.TotalBytes;
                Touch(w);
                if (w.ScaleInv is { } scale) Touch(scale);
            }
            result.Add(new Loaded(l, e, source, bytes));
        }
        return result;
    }

    /// <summary>
    /// Reads one byte per page on this thread, so that the first frames after a plan change pay no page faults; one
    /// thread on purpose: a parallel prefault would fill the thread pool that the Dispatch streams need meanwhile.
    /// </summary>
    private static void Touch(Weight w)
    {
        ReadOnlySpan<byte> bytes = w.Bytes;
        int sum = 0;
        for (int i = 0; i < bytes.Length; i += 4096) sum += bytes[i];
        // Kept, so that the reads are not optimized away.
        Volatile.Write(ref s_touched, sum);
    }

    private static int s_touched;

    private void Add(PlacementPlan plan, List<Loaded> loaded)
    {
        var changed = new HashSet<int>();
        lock (_compute)
        {
            foreach (Loaded x in loaded)
            {
                _source[x.Layer][x.Expert] = x.Source;
                _bytes[x.Layer][x.Expert] = x.Bytes;
                changed.Add(x.Layer);
            }
            foreach (LayerPlacement layer in plan.Layers)
                if (_layers[layer.Layer] is null) changed.Add(layer.Layer);
            Rebuild(changed);
            HeldPlan[] held = Volatile.Read(ref _held);
            Volatile.Write(ref _held, [.. held, HeldPlan.Of(plan, IndexIn(plan), _config.NumHiddenLayers)]);
        }
    }

    /// <summary>
    /// Forgets every held version below <paramref name="keepFromVersion"/> (the newest is always kept) and drops the
    /// experts no remaining version gives this node. Returns the slots dropped.
    /// </summary>
    public int Release(ulong keepFromVersion) =>
        Forget(held => Array.FindAll(held, h => h.Plan.Version >= keepFromVersion || h == held[^1]));

    /// <summary>
    /// A rollback of a prepare: forgets <paramref name="version"/> (held or not) and drops the slots only it had, as
    /// long as another version is left to serve; returns the slots dropped.
    /// </summary>
    public int Abandon(ulong version) =>
        Forget(held => held.Length > 1 ? Array.FindAll(held, h => h.Plan.Version != version) : held);

    /// <summary>The newest plan held.</summary>
    public PlacementPlan Newest => Volatile.Read(ref _held)[^1].Plan;

    private int Forget(Func<HeldPlan[], HeldPlan[]> keep)
    {
        var disposable = new HashSet<IDisposable>();
        var unused = new List<(IEvictableTensors Source, string Name)>();
        int dropped;
        // Not while a prepare runs: it may count on an expert this would drop.
        _preparing.Wait();
        try
        {
            lock (_compute) dropped = Drop(keep, disposable, unused);
            // Under the prepare lock, so that a prepare loading one of these experts again touches its pages after.
            foreach ((IEvictableTensors source, string name) in unused) source.Evict(name);
        }
        finally { _preparing.Release(); }
        // Outside the lock, and after no RoutedExperts refers to their weights any more.
        foreach (IDisposable d in disposable) d.Dispose();
        return dropped;
    }

    /// <summary>Under the compute lock: forgets the versions, drops the experts, collects the sources none of the kept experts needs and the dropped tensors whose pages can be given back.</summary>
    private int Drop(Func<HeldPlan[], HeldPlan[]> keep, HashSet<IDisposable> disposable, List<(IEvictableTensors, string)> unused)
    {
        HeldPlan[] held = Volatile.Read(ref _held);
        HeldPlan[] kept = keep(held);
        if (kept.Length == held.Length) return 0;
        Volatile.Write(ref _held, kept);
        var changed = new HashSet<int>();
        var live = new HashSet<ITensorSource>();
        int dropped = 0;
        for (int l = 0; l < _source.Length; l++)
        {
            for (int e = 0; e < _source[l].Length; e++)
            {
                if (_source[l][e] is null) continue;
                if (Array.Exists(kept, h => h.Hosts(l, e)))
                {
                    live.Add(_source[l][e]!);
                    continue;
                }
                if (_source[l][e] is IDisposable d) disposable.Add(d);
                if (_source[l][e] is IEvictableTensors mapped)
                    foreach (string name in ExpertTensors(l, e)) unused.Add((mapped, name));
                _source[l][e] = null;
                _bytes[l][e] = 0;
                changed.Add(l);
                dropped++;
            }
        }
        Rebuild(changed);
        disposable.RemoveWhere(d => d is ITensorSource s && live.Contains(s));
        return dropped;
    }

    /// <summary>A fresh layer from the backend per changed layer, over the experts loaded now (a step running keeps the one it has).</summary>
    private void Rebuild(HashSet<int> layers)
    {
        foreach (int l in layers)
        {
            var held = new List<int>();
            for (int e = 0; e < _source[l].Length; e++) if (_source[l][e] is not null) held.Add(e);
            _layers[l] = _backend.LoadExperts(new LayerExpertsSource(l, (ITensorSource?[])_source[l].Clone()), _config, l, held);
        }
    }

    /// <summary>The held plan of <paramref name="version"/>, or null when the node does not serve that version.</summary>
    public HeldPlan? Held(ulong version)
    {
        foreach (HeldPlan h in Volatile.Read(ref _held)) if (h.Plan.Version == version) return h;
        return null;
    }

    /// <summary>Runs the layer's experts over the rows and counts each (row, expert) pair for its expert.</summary>
    public void Run(int layer, ReadOnlySpan<float> rows, int n, ReadOnlySpan<int> ids, ReadOnlySpan<float> weights, Span<float> output)
    {
        long[] tokens = _tokens[layer];
        int pairs = 0;
        lock (_compute)
        {
            _layers[layer]!.Run(rows, n, ids, weights, output);
            foreach (int e in ids)
                if (e >= 0)
                {
                    tokens[e]++;
                    pairs++;
                }
        }
        Interlocked.Add(ref _rows, pairs);
    }

    /// <summary>Every slot of the newest plan in layer then slot order, with the tokens its expert has served here.</summary>
    public IEnumerable<(int Layer, int Expert, long Tokens)> Slots()
    {
        PlacementPlan plan = Plan;
        int node = IndexIn(plan);
        if (node < 0) yield break;
        foreach (LayerPlacement layer in plan.Layers)
            foreach (int e in layer.SlotsOn(node).ToArray())
                yield return (layer.Layer, e, Interlocked.Read(ref _tokens[layer.Layer][e]));
    }

    public void Dispose()
    {
        var sources = new HashSet<IDisposable>();
        lock (_compute)
            foreach (ITensorSource?[] layer in _source)
                foreach (ITensorSource? s in layer)
                    if (s is IDisposable d) sources.Add(d);
        foreach (IDisposable d in sources) d.Dispose();
    }

    /// <summary>One plan version this node serves, with which (layer, expert) pairs it gives this node.</summary>
    public sealed class HeldPlan
    {
        private readonly bool[]?[] _hosts;

        private HeldPlan(PlacementPlan plan, bool[]?[] hosts)
        {
            Plan = plan;
            _hosts = hosts;
        }

        public PlacementPlan Plan { get; }

        internal static HeldPlan Of(PlacementPlan plan, int node, int layers)
        {
            var hosts = new bool[]?[layers];
            foreach (LayerPlacement layer in plan.Layers)
            {
                hosts[layer.Layer] = new bool[plan.RoutedExperts];
                if (node >= 0)
                    foreach (int e in layer.SlotsOn(node)) hosts[layer.Layer]![e] = true;
            }
            return new HeldPlan(plan, hosts);
        }

        public bool HostsLayer(int layer) => (uint)layer < (uint)_hosts.Length && _hosts[layer] is not null;

        public bool Hosts(int layer, int expert) => HostsLayer(layer) && (uint)expert < (uint)_hosts[layer]!.Length && _hosts[layer]![expert];
    }
}
