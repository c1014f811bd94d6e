using System.Net;
using System.Net.Sockets;

namespace Dapo.Testing;

public static class FreePort
{
    /// <summary>
    /// A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). Another process can take it before the
    /// caller binds it; <see cref="AzuriteProcess"/> retries with a new port when that happens.
    /// </summary>
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>True when something accepts TCP connections on 127.0.0.1:<paramref name="port"/>.</summary>
    public static async Task<bool> IsListeningAsync(int port, CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
            return true;
        }
        catch (SocketException)
        {
            return false; // refused: not listening (yet)
        }
    }
}
