using System.Net;
using System.Net.Sockets;

namespace RolloutGate.Tests.Infrastructure;

/// <summary>
/// A TCP proxy on a 127.0.0.1 port of its own in front of one real server (the test PostgreSQL), so a test can take the
/// server away from the service without stopping it for everyone else: <see cref="Cut"/> resets every open connection,
/// and from then on every new one is reset as soon as it is accepted, as a server that went away mid-query and stays away
/// (until <see cref="Restore"/>). <see cref="BlackHole"/> is the other way a server or client goes away, as a node that
/// lost power or its network does: nothing is closed or reset, nothing is forwarded any more in either direction.
/// </summary>
public sealed class CuttableTcpProxy : IAsyncDisposable
{
    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private readonly string targetHost;
    private readonly int targetPort;
    private readonly List<Socket> open = [];
    private readonly CancellationTokenSource stopping = new();
    private readonly Task accepting;
    private int accepted;
    private bool cut;
    private volatile bool silent;

    private CuttableTcpProxy(string targetHost, int targetPort)
    {
        this.targetHost = targetHost;
        this.targetPort = targetPort;
        listener.Start();
        accepting = AcceptAsync();
    }

    /// <summary>The port the proxy listens on, on 127.0.0.1.</summary>
    public int Port => ((IPEndPoint)listener.LocalEndpoint).Port;

    /// <summary>Connections accepted so far, forwarded or (after <see cref="Cut"/>) reset.</summary>
    public int Accepted => Volatile.Read(ref accepted);

    /// <summary>Starts forwarding every connection made to <see cref="Port"/> to <paramref name="host"/>:<paramref name="port"/>.</summary>
    public static CuttableTcpProxy Start(string host, int port) => new(host, port);

    /// <summary>Resets every open connection (both sides), and every connection accepted from now on.</summary>
    public void Cut()
    {
        List<Socket> sockets;
        lock (open)
        {
            cut = true;
            sockets = [.. open];
            open.Clear();
        }

        foreach (var socket in sockets)
        {
            Reset(socket);
        }
    }

    /// <summary>
    /// Stops forwarding, in both directions, on every open connection and every one accepted from now on, without closing
    /// or resetting any: what each side has sent is dropped unseen, and each goes on waiting for the other (until
    /// <see cref="Cut"/> or disposal). Both ends' kernels still answer TCP keepalive probes, so only a timeout of the
    /// server's or the client's own ends a connection waiting here.
    /// </summary>
    public void BlackHole() => silent = true;

    /// <summary>Forwards the connections accepted from now on again, as a server that came back (after <see cref="Cut"/>).</summary>
    public void Restore()
    {
        lock (open)
        {
            cut = false;
        }
    }

    private async Task AcceptAsync()
    {
        while (!stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptSocketAsync(stopping.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            Interlocked.Increment(ref accepted);
            _ = ForwardAsync(client);
        }
    }

    private async Task ForwardAsync(Socket client)
    {
        if (!Track(client))
        {
            Reset(client);
            return;
        }

        if (silent)
        {
            await DropAsync(client);
            return;
        }

        var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await server.ConnectAsync(targetHost, targetPort, stopping.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            Reset(client);
            Reset(server);
            return;
        }

        if (!Track(server))
        {
            Reset(client);
            Reset(server);
            return;
        }

        // Either direction ending ends both: the proxy is a wire, not a buffer.
        await Task.WhenAny(PumpAsync(client, server), PumpAsync(server, client));
        Reset(client);
        Reset(server);
    }

    /// <summary>Remembers <paramref name="socket"/> for <see cref="Cut"/>; false once the proxy is cut.</summary>
    private bool Track(Socket socket)
    {
        lock (open)
        {
            if (cut)
            {
                return false;
            }

            open.Add(socket);
            return true;
        }
    }

    private async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, stopping.Token);
                if (read == 0)
                {
                    if (silent)
                    {
                        // A close is not passed on either: the other side waits on (until Cut or disposal).
                        await Task.Delay(Timeout.Infinite, stopping.Token);
                    }

                    return;
                }

                if (silent)
                {
                    continue;
                }

                for (var sent = 0; sent < read;)
                {
                    sent += await to.SendAsync(buffer.AsMemory(sent, read - sent), SocketFlags.None, stopping.Token);
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Reads and drops what <paramref name="socket"/> sends until it is cut or the proxy stops.</summary>
    private async Task DropAsync(Socket socket)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, stopping.Token) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Closes with a TCP reset (linger 0), as a peer that went away does, rather than an orderly FIN.</summary>
    private void Reset(Socket socket)
    {
        lock (open)
        {
            open.Remove(socket);
        }

        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        socket.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync();
        listener.Stop();
        Cut();
        await accepting;
        stopping.Dispose();
    }
}
