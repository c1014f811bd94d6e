using System.Collections.Concurrent;

namespace Dapo.Grains.Hosting;

/// <summary>
/// A dedicated thread for engine work (sampling, training, evaluation): a grain hands it work and awaits the result,
/// so no grain turn ever blocks an Orleans scheduler thread, and every native object of the grain (model, optimizer)
/// is used from this one thread.
/// </summary>
public sealed class EngineThread : IDisposable
{
    private readonly BlockingCollection<Action> _work = new();
    private readonly Thread _thread;

    private readonly CoordinationTimer? _timer;

    /// <param name="timer">Told when the thread computes, to measure the time outside engine compute.</param>
    public EngineThread(string name, CoordinationTimer? timer = null)
    {
        _timer = timer;
        _thread = new Thread(() =>
        {
            foreach (var work in _work.GetConsumingEnumerable()) work();
        }) { IsBackground = true, Name = name };
        _thread.Start();
    }

    public Task<T> RunAsync<T>(Func<T> work, CancellationToken cancellationToken = default)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _work.Add(() =>
        {
            if (cancellationToken.IsCancellationRequested)
            {
                result.TrySetCanceled(cancellationToken);
                return;
            }
            _timer?.EngineStarted();
            try
            {
                result.TrySetResult(work());
            }
            catch (OperationCanceledException e) when (cancellationToken.IsCancellationRequested)
            {
                result.TrySetCanceled(e.CancellationToken);
            }
            catch (Exception e)
            {
                result.TrySetException(e);
            }
            finally
            {
                _timer?.EngineStopped();
            }
        }, CancellationToken.None);
        return result.Task;
    }

    public Task RunAsync(Action work, CancellationToken cancellationToken = default) =>
        RunAsync(() => { work(); return 0; }, cancellationToken);

    /// <summary>Lets queued work finish, then ends the thread.</summary>
    public void Dispose() => _work.CompleteAdding();
}
