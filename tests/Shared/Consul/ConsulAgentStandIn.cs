using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Cluster.Transport.Discovery;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cluster.Tests;

/// <summary>
/// A stand-in for a Consul agent (no Consul binary exists here): just the endpoints the roles use, with the
/// documented semantics. PUT /v1/agent/service/register and /v1/agent/service/deregister/&lt;id&gt;; GET
/// /v1/health/service/&lt;name&gt; (with passing=true only instances whose check passes) as a blocking query: with
/// index=N it answers once its state index moves past N or after wait, always with X-Consul-Index. It runs every
/// registered GRPC check itself (grpc.health.v1 Check over Grpc.Net.Client, passing only on SERVING) at its interval,
/// and removes a service critical for longer than its DeregisterCriticalServiceAfter.
/// </summary>
public sealed class ConsulAgentStandIn : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, Instance> _services = new();
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _stop = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ulong _index = 1;
    private int _healthQueries;

    private ConsulAgentStandIn(WebApplication app) => _app = app;

    public Uri Address { get; private set; } = null!;
    /// <summary>GET /v1/health/service calls answered so far.</summary>
    public int HealthQueries => Volatile.Read(ref _healthQueries);
    private ulong? _forcedIndex;

    /// <summary>From now on every health answer carries this X-Consul-Index instead of the real one (a misbehaving agent); blocked queries answer at once.</summary>
    public void ForceIndex(ulong index)
    {
        _forcedIndex = index;
        Changed();
    }

    public static async Task<ConsulAgentStandIn> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        var standIn = new ConsulAgentStandIn(builder.Build());
        standIn.Map();
        await standIn._app.StartAsync();
        string address = standIn._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        standIn.Address = new Uri(address);
        return standIn;
    }

    /// <summary>The instances of <paramref name="name"/> registered now, passing or not.</summary>
    public IReadOnlyList<string> Registered(string name) => [.. _services.Values.Where(s => s.Definition.Name == name).Select(s => s.Definition.Id)];

    /// <summary>The instances of <paramref name="name"/> whose check passes now.</summary>
    public IReadOnlyList<string> Passing(string name) => [.. _services.Values.Where(s => s.Definition.Name == name && s.Passing).Select(s => s.Definition.Id)];

    /// <summary>How many times the check of service <paramref name="id"/> has run (0 when it is not registered).</summary>
    public int CheckRuns(string id) => _services.TryGetValue(id, out var s) ? Volatile.Read(ref s.Runs) : 0;

    private void Map()
    {
        _app.MapPut("/v1/agent/service/register", async (HttpContext http) =>
        {
            var definition = await JsonSerializer.DeserializeAsync(http.Request.Body, ConsulJson.Default.ConsulServiceDefinition);
            if (definition is null || definition.Check.Grpc.Length == 0) return Results.BadRequest("a GRPC check is required by this stand-in");
            var service = new Instance(definition);
            if (_services.TryRemove(definition.Id, out var old)) await old.Stop.CancelAsync();
            _services[definition.Id] = service;
            Changed();
            _ = CheckLoopAsync(service);
            return Results.Ok();
        });
        _app.MapPut("/v1/agent/service/deregister/{id}", async (string id) =>
        {
            if (!_services.TryRemove(id, out var service)) return Results.NotFound($"Unknown service ID \"{id}\"");
            await service.Stop.CancelAsync();
            Changed();
            return Results.Ok();
        });
        _app.MapGet("/v1/health/service/{name}", async (HttpContext http, string name) =>
        {
            Interlocked.Increment(ref _healthQueries);
            bool passing = http.Request.Query.ContainsKey("passing") && http.Request.Query["passing"] != "false";
            ulong index = ulong.TryParse(http.Request.Query["index"], CultureInfo.InvariantCulture, out ulong i) ? i : 0;
            TimeSpan wait = ParseDuration(http.Request.Query["wait"]) ?? TimeSpan.FromMinutes(5);
            Task changed;
            lock (_lock) changed = _changed.Task;
            if (index > 0 && index >= Volatile.Read(ref _index))
                await Task.WhenAny(changed, Task.Delay(wait, http.RequestAborted));
            var entries = new List<ConsulHealthEntry>();
            foreach (Instance s in _services.Values)
                if (s.Definition.Name == name && (!passing || s.Passing))
                    entries.Add(new ConsulHealthEntry
                    {
                        Node = new ConsulNode { Name = "stand-in", Address = "127.0.0.1" },
                        Service = new ConsulServiceInstance { Id = s.Definition.Id, Name = name, Address = s.Definition.Address, Port = s.Definition.Port, Meta = s.Definition.Meta },
                    });
            http.Response.Headers["X-Consul-Index"] = (_forcedIndex ?? Volatile.Read(ref _index)).ToString(CultureInfo.InvariantCulture);
            http.Response.ContentType = "application/json";
            await JsonSerializer.SerializeAsync(http.Response.Body, entries, ConsulJson.Default.ListConsulHealthEntry);
        });
    }

    private void Changed()
    {
        TaskCompletionSource fired;
        lock (_lock)
        {
            _index++;
            fired = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        fired.TrySetResult();
    }

    private async Task CheckLoopAsync(Instance service)
    {
        ConsulCheckDefinition check = service.Definition.Check;
        TimeSpan interval = ParseDuration(check.Interval) ?? TimeSpan.FromSeconds(10);
        TimeSpan timeout = ParseDuration(check.Timeout) ?? TimeSpan.FromSeconds(10);
        TimeSpan? deregisterAfter = ParseDuration(check.DeregisterCriticalServiceAfter);
        // "host:port/service": the service part names the health service asked about.
        int slash = check.Grpc.IndexOf('/');
        string target = slash < 0 ? check.Grpc : check.Grpc[..slash], healthService = slash < 0 ? "" : check.Grpc[(slash + 1)..];
        using GrpcChannel channel = GrpcChannel.ForAddress("http://" + target);
        var client = new Health.HealthClient(channel);
        DateTime? criticalSince = DateTime.UtcNow;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(service.Stop.Token, _stop.Token);
        while (!stop.IsCancellationRequested)
        {
            bool passing;
            try
            {
                var answer = await client.CheckAsync(new HealthCheckRequest { Service = healthService }, deadline: DateTime.UtcNow + timeout, cancellationToken: stop.Token);
                passing = answer.Status == HealthCheckResponse.Types.ServingStatus.Serving;
            }
            catch (RpcException) { passing = false; }
            catch (OperationCanceledException) { return; }
            if (stop.IsCancellationRequested) return;
            Interlocked.Increment(ref service.Runs);
            if (passing != service.Passing)
            {
                service.Passing = passing;
                Changed();
            }
            criticalSince = passing ? null : criticalSince ?? DateTime.UtcNow;
            if (criticalSince is { } since && deregisterAfter is { } after && DateTime.UtcNow - since > after
                && _services.TryRemove(new KeyValuePair<string, Instance>(service.Definition.Id, service)))
            {
                Changed();
                return;
            }
            try { await Task.Delay(interval, stop.Token); }
            catch (OperationCanceledException) { return; }
        }
    }

    /// <summary>Go-style durations as Consul reads them: "10s", "1500ms", "5m", "1h".</summary>
    private static TimeSpan? ParseDuration(string? text)
    {
        if (string.IsNullOrEmpty(text)) return null;
        (string unit, double scale) = text.EndsWith("ms", StringComparison.Ordinal) ? ("ms", 1.0)
            : text.EndsWith('s') ? ("s", 1000.0) : text.EndsWith('m') ? ("m", 60_000.0) : text.EndsWith('h') ? ("h", 3_600_000.0) : ("", 1000.0);
        return TimeSpan.FromMilliseconds(double.Parse(text[..^unit.Length], CultureInfo.InvariantCulture) * scale);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _app.DisposeAsync();
        _stop.Dispose();
    }

    private sealed class Instance(ConsulServiceDefinition definition)
    {
        public ConsulServiceDefinition Definition { get; } = definition;
        public CancellationTokenSource Stop { get; } = new();
        public volatile bool Passing;
        public int Runs;
    }
}
