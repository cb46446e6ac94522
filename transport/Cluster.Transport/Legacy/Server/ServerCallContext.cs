using Microsoft.AspNetCore.Http;

namespace Cluster.Transport.Legacy;

/// <summary>What a handler knows about its call: headers, deadline, cancellation, and what it sends back.</summary>
public sealed class ServerCallContext
{
    private readonly ServerCallState _state;

    internal ServerCallContext(ServerCallState state, HttpContext httpContext, string method, Metadata requestHeaders,
        DateTime deadline, CancellationToken cancellationToken)
    {
        _state = state;
        HttpContext = httpContext;
        Method = method;
        RequestHeaders = requestHeaders;
        Deadline = deadline;
        CancellationToken = cancellationToken;
    }

    public HttpContext HttpContext { get; }
    public string Method { get; }
    public Metadata RequestHeaders { get; }
    public Metadata ResponseTrailers { get; } = new();
    /// <summary>UTC; DateTime.MaxValue when the client set no deadline.</summary>
    public DateTime Deadline { get; }
    /// <summary>Fires when the client cancels or goes away, or the deadline passes.</summary>
    public CancellationToken CancellationToken { get; }
    /// <summary>The status sent when the handler returns normally; a thrown RpcException overrides it.</summary>
    public Status Status { get; set; } = Status.Ok;
    public string Peer => $"{HttpContext.Connection.RemoteIpAddress}:{HttpContext.Connection.RemotePort}";

    /// <summary>Sends the response headers now, with these entries added; later calls fail.</summary>
    public Task WriteResponseHeadersAsync(Metadata headers) => _state.WriteHeadersAsync(headers, CancellationToken);
}
