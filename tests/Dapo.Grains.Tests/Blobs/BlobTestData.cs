namespace Dapo.Grains.Tests.Blobs;

/// <summary>Deterministic test content and streams that misbehave on purpose.</summary>
internal static class BlobTestData
{
    public const int MiB = 1 << 20;

    /// <summary>Pseudo-random bytes: distinct per seed, so a mixed-up or torn blob cannot pass for the right one.</summary>
    public static byte[] Bytes(int size, int seed = 1)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static CancellationToken Timeout(int seconds = 60) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;
}

/// <summary>The failure a <see cref="ScriptedStream"/> throws: a caller's source failing, not the storage.</summary>
internal sealed class SourceFailedException() : Exception("The source stream failed on purpose.");

/// <summary>
/// A forward-only stream over <paramref name="content"/> (no Length, no Seek, as a network source would be) that
/// runs <paramref name="onPosition"/> once when the reader has consumed <paramref name="triggerAt"/> bytes, before
/// handing out more: to fail the source, cancel, or stop the storage in the middle of an upload.
/// </summary>
internal sealed class ScriptedStream(byte[] content, long triggerAt, Func<Task> onPosition) : Stream
{
    private long _position;
    private bool _triggered;

    public static ScriptedStream FailingAt(byte[] content, long at) =>
        new(content, at, () => throw new SourceFailedException());

    public static ScriptedStream Plain(byte[] content) => new(content, long.MaxValue, () => Task.CompletedTask);

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _position; set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!_triggered && _position >= triggerAt)
        {
            _triggered = true;
            await onPosition();
        }
        var limit = _triggered ? content.Length : (int)Math.Min(content.Length, triggerAt);
        var count = (int)Math.Min(buffer.Length, limit - _position);
        content.AsMemory((int)_position, count).CopyTo(buffer);
        _position += count;
        return count;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
