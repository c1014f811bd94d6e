namespace Dapo.Testing;

/// <summary>A test's own storage server, to make storage unavailable mid-run: stopped, then started on the same ports and data.</summary>
public interface IRestartableServer : IAsyncDisposable
{
    Task StopAsync(CancellationToken cancellationToken = default);

    Task StartAsync(CancellationToken cancellationToken = default);
}
