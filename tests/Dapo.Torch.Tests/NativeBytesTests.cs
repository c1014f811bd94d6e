using Dapo.Torch;

namespace Dapo.Torch.Tests;

/// <summary>Weights and training state in native memory: streamed out and in, shared views, and the errors of a
/// stream of the wrong length.</summary>
public sealed class NativeBytesTests
{
    [Fact]
    public async Task Weights_and_training_state_travel_through_streams()
    {
        using var model = TinyModels.Create(seed: 8);
        using var optimizer = new AdamW(model);
        using var weights = model.ExportWeights();
        using var state = TrainingState.Save(model, optimizer);

        await using var weightStream = weights.OpenRead();
        using var weightsBack = await NativeBytes.ReadAsync(weightStream, null, CancellationToken.None);
        using var copy = PolicyModel.FromWeights(weightsBack);
        Assert.Equal(weights.ToArray(), copy.ExportWeights().Take());

        await using var stateStream = state.OpenRead();
        using var stateBack = await NativeBytes.ReadAsync(stateStream, state.Length, CancellationToken.None);
        var (restored, restoredOptimizer) = TrainingState.Restore(stateBack);
        using (restored)
        using (restoredOptimizer)
            Assert.Equal(state.ToArray(), TrainingState.Save(restored, restoredOptimizer).Take());
    }

    [Fact]
    public async Task A_view_keeps_the_bytes_after_the_original_is_disposed()
    {
        var original = NativeBytes.CopyOf([1, 2, 3]);
        var view = original.Share();
        await using var stream = original.OpenRead();
        original.Dispose();
        Assert.Throws<ObjectDisposedException>(() => original.ToArray());
        Assert.Equal([1, 2, 3], view.ToArray());
        Assert.True(await view.ContentEqualsAsync(new MemoryStream([1, 2, 3]), CancellationToken.None));
        Assert.False(await view.ContentEqualsAsync(new MemoryStream([1, 2, 3, 4]), CancellationToken.None));
        Assert.False(await view.ContentEqualsAsync(new MemoryStream([1, 2]), CancellationToken.None));
        view.Dispose();
        Assert.Equal(3, stream.Length);  // the stream's own view
        stream.Seek(1, SeekOrigin.Begin);
        Assert.Equal(2, stream.ReadByte());
    }

    [Fact]
    public async Task A_stream_shorter_or_longer_than_said_is_refused()
    {
        var shorter = await Assert.ThrowsAsync<InvalidDataException>(() => NativeBytes.ReadAsync(new MemoryStream(new byte[10]), 12, CancellationToken.None));
        Assert.Contains("ended after 10 of 12 bytes", shorter.Message);
        var longer = await Assert.ThrowsAsync<InvalidDataException>(() => NativeBytes.ReadAsync(new MemoryStream(new byte[10]), 8, CancellationToken.None));
        Assert.Contains("more than the 8 bytes expected", longer.Message);
    }
}
