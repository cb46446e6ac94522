using System.Net;
using Cluster.Transport;
using Cluster.Transport.Discovery;

namespace Cluster.Cli.Commands;

/// <summary>
/// The discovery options every <c>cluster serve</c> role shares: <c>--discovery static|kubernetes|consul</c>,
/// <c>--consul URL</c> (the local agent), <c>--advertise HOST:PORT</c> (what others dial, needed when the role binds
/// 0.0.0.0 or a free port) and <c>--service-name NAME</c> (the Consul service it registers as).
/// </summary>
public sealed class DiscoveryArgs
{
    public const string Usage = "[--discovery static|kubernetes|consul] [--consul http://HOST:8500] [--advertise HOST:PORT] [--service-name NAME]";

    private DiscoveryArgs(string kind, Uri? consul, string? advertise, string? serviceName)
    {
        Kind = kind;
        Consul = consul;
        Advertise = advertise;
        ServiceName = serviceName;
    }

    /// <summary>"static", "kubernetes" or "consul".</summary>
    public string Kind { get; }
    public Uri? Consul { get; }
    public string? Advertise { get; }
    public string? ServiceName { get; }

    public static DiscoveryArgs Parse(CliArgs args)
    {
        string kind = args.String("discovery", "static");
        if (kind is not ("static" or "kubernetes" or "consul")) throw new CliException($"--discovery must be static, kubernetes or consul (got '{kind}')");
        string? consul = args.String("consul"), advertise = args.String("advertise"), name = args.String("service-name");
        if (kind == "consul" && consul is null) throw new CliException("--discovery consul needs --consul http://HOST:8500 (the local Consul agent)");
        if (kind != "consul" && consul is not null) throw new CliException("--consul goes with --discovery consul");
        if (kind != "consul" && (advertise ?? name) is not null) throw new CliException($"--{(advertise is not null ? "advertise" : "service-name")} goes with --discovery consul");
        Uri? agent = null;
        if (consul is not null && (!Uri.TryCreate(consul, UriKind.Absolute, out agent) || agent.Scheme is not ("http" or "https")))
            throw new CliException($"--consul: '{consul}' is not an http:// or https:// address");
        if (advertise is not null && !PeerAddress.TryParse(advertise, out _)) throw new CliException($"--advertise: '{advertise}' is not host:port");
        return new DiscoveryArgs(kind, agent, advertise, name);
    }

    /// <summary>
    /// Runs the role, registered with Consul for the while when <c>--discovery consul</c>: registered before it starts
    /// (its check fails until it answers SERVING, so nobody routes to it early) and deregistered once it has stopped.
    /// </summary>
    public async Task<int> RunAsync(string defaultName, string id, string host, int port, IReadOnlyDictionary<string, string> meta, Func<Task<int>> run, CancellationToken ct)
    {
        if (Consul is null) return await run();
        var settings = new ConsulServiceSettings { Id = id, Name = ServiceName ?? defaultName, Advertise = AdvertisedAddress(host, port), Meta = meta };
        using var agent = new ConsulAgent(Consul);
        ConsulRegistration registration;
        try { registration = await ConsulRegistration.RegisterAsync(agent, settings, ct); }
        catch (HttpRequestException e) { throw new CliException($"--consul {Consul}: {e.Message}"); }
        await using (registration) return await run();
    }

    private string AdvertisedAddress(string host, int port)
    {
        if (Advertise is not null) return Advertise;
        if (port == 0) throw new CliException("--discovery consul needs a fixed port or --advertise HOST:PORT (the address Consul checks and peers dial)");
        if (IPAddress.TryParse(host, out IPAddress? address) && (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any)))
            throw new CliException($"--host {host} is no address to dial: give --advertise HOST:PORT with --discovery consul");
        return address is not null ? new IPEndPoint(address, port).ToString() : $"{host}:{port}";
    }
}
