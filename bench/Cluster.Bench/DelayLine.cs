using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace Cluster.Bench;

/// <summary>
/// netem in user space, for kernels built without it (CONFIG_NET_SCH_NETEM): a TCP forwarder in front of one pod's
/// port that holds every chunk it reads for <see cref="Delay"/> before writing it on, in each direction, so a round
/// trip through it costs twice the delay as through two netem'd veths. Chunks keep their order; a wait under a
/// timer tick is a yielding spin (the timer's ~1 ms granularity would swamp 0.1 ms), which takes only idle CPU.
/// </summary>
public sealed class DelayLine : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    public TimeSpan Delay { get; set; }

    public DelayLine(IPEndPoint listen, IPEndPoint target)
    {
        _target = target;
        _listener = new TcpListener(listen);
        _listener.Start(256);
        _accepting = AcceptAsync();
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                Socket client = await _listener.AcceptSocketAsync(_stop.Token);
                _ = RelayAsync(client);
            }
        }
        catch (OperationCanceledException) { }
        catch (SocketException) { }
    }

    private async Task RelayAsync(Socket client)
    {
        using var server = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.NoDelay = true;
        try
        {
            await server.ConnectAsync(_target, _stop.Token);
            await Task.WhenAny(PumpAsync(client, server), PumpAsync(server, client));
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or IOException) { }
        finally { client.Dispose(); }
    }

    private async Task PumpAsync(Socket from, Socket to)
    {
        var queue = Channel.CreateUnbounded<(byte[] Buffer, int Length, long Due)>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        Task writer = WriteAsync(queue.Reader, to);
        try
        {
            while (true)
            {
                byte[] buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
                int n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0) { ArrayPool<byte>.Shared.Return(buffer); break; }
                queue.Writer.TryWrite((buffer, n, Stopwatch.GetTimestamp() + (long)(Delay.TotalSeconds * Stopwatch.Frequency)));
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException) { }
        queue.Writer.TryComplete();
        await writer;
        try { to.Shutdown(SocketShutdown.Send); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
    }

    private async Task WriteAsync(ChannelReader<(byte[] Buffer, int Length, long Due)> queue, Socket to)
    {
        long tick = Stopwatch.Frequency / 1000 * 2;
        try
        {
            await foreach (var (buffer, length, due) in queue.ReadAllAsync())
            {
                long left = due - Stopwatch.GetTimestamp();
                if (left > tick) await Task.Delay(TimeSpan.FromSeconds((double)(left - tick) / Stopwatch.Frequency));
                while (Stopwatch.GetTimestamp() < due) Thread.Yield();
                for (int sent = 0; sent < length;) sent += await to.SendAsync(buffer.AsMemory(sent, length - sent), SocketFlags.None);
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accepting;
    }
}
