using System.Runtime.InteropServices;
using Dapo.Torch.Native;

namespace Dapo.Torch;

/// <summary>
/// Bytes in native memory: the engine's weights (<see cref="PolicyModel.ExportWeights"/>) and training state
/// (<see cref="TrainingState.Save"/>). A real model's go past a managed array's 2 GB (Qwen2.5-0.5B's training state:
/// 5.9 GB), so they never become one: they are streamed to and from blob storage.
/// <para>
/// Each <see cref="Share"/> is a view of the same memory with its own <see cref="Dispose"/>; the memory is freed when
/// the last view is disposed, so a cache can drop its view while a reader still uses its own.
/// </para>
/// </summary>
public sealed class NativeBytes : IDisposable
{
    private readonly Views _memory;
    private readonly IntPtr _data;
    private int _disposed;

    private NativeBytes(Views memory, IntPtr data, long length)
    {
        _memory = memory;
        _data = data;
        Length = length;
    }

    /// <summary>Takes ownership of an engine buffer.</summary>
    internal static unsafe NativeBytes Of(BufferHandle buffer)
    {
        try
        {
            var length = NativeMethods.Check(NativeMethods.dapo_buffer_size(buffer));
            var data = NativeMethods.dapo_buffer_data(buffer);
            if (data == null) throw NativeMethods.TakeError();
            return new NativeBytes(new Views(buffer), (IntPtr)data, length);
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    /// <summary>Bytes in all.</summary>
    public long Length { get; }

    /// <summary>A copy of <paramref name="bytes"/>.</summary>
    public static NativeBytes CopyOf(ReadOnlySpan<byte> bytes)
    {
        var copy = Allocate(bytes.Length);
        copy.Write(0, bytes);
        return copy;
    }

    /// <summary>
    /// Reads <paramref name="source"/> to its end into native memory: <paramref name="length"/> bytes, the stream's
    /// length when not given. A stream that ends early or goes on is an error that says so.
    /// </summary>
    public static async Task<NativeBytes> ReadAsync(Stream source, long? length, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        var total = length ?? (source.CanSeek ? source.Length - source.Position
            : throw new ArgumentException("The stream's length is unknown; give it.", nameof(length)));
        var bytes = Allocate(total);
        try
        {
            var buffer = new byte[1 << 20];
            long read = 0;
            while (true)
            {
                var n = await source.ReadAsync(buffer, cancellationToken);
                if (n == 0) break;
                if (read + n > total) throw new InvalidDataException($"The stream holds more than the {total} bytes expected.");
                bytes.Write(read, buffer.AsSpan(0, n));
                read += n;
            }
            if (read != total) throw new InvalidDataException($"The stream ended after {read} of {total} bytes.");
            return bytes;
        }
        catch
        {
            bytes.Dispose();
            throw;
        }
    }

    /// <summary>Another view of the same memory, disposed on its own.</summary>
    public NativeBytes Share()
    {
        ThrowIfDisposed();
        _memory.Add();
        return new NativeBytes(_memory, _data, Length);
    }

    /// <summary>A stream over the bytes; it keeps them alive until it is disposed.</summary>
    public Stream OpenRead()
    {
        var view = Share();
        return new ViewStream(view);
    }

    /// <summary>The bytes in a managed array (at most <see cref="Array.MaxLength"/>: small models and tests).</summary>
    public byte[] ToArray()
    {
        ThrowIfDisposed();
        if (Length > Array.MaxLength)
            throw new InvalidOperationException($"{Length} bytes do not fit in a managed array (at most {Array.MaxLength}); stream them with OpenRead.");
        return Slice(0, (int)Length).ToArray();
    }

    /// <summary>Whether <paramref name="other"/> holds exactly these bytes (read to its end).</summary>
    public async Task<bool> ContentEqualsAsync(Stream other, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var buffer = new byte[1 << 20];
        long position = 0;
        while (true)
        {
            var n = await other.ReadAsync(buffer, cancellationToken);
            if (n == 0) return position == Length;
            if (position + n > Length || !buffer.AsSpan(0, n).SequenceEqual(Slice(position, n))) return false;
            position += n;
        }
    }

    /// <summary>Runs <paramref name="use"/> on the bytes' address and length, the memory kept alive meanwhile.</summary>
    internal T Use<T>(Func<IntPtr, long, T> use)
    {
        ThrowIfDisposed();
        return use(_data, Length);
    }

    /// <summary>Frees the memory when no other view of it is left.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _memory.Release();
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    private static NativeBytes Allocate(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var memory = new AllocatedMemory(length);
        return new NativeBytes(new Views(memory), memory.DangerousGetHandle(), length);
    }

    private unsafe ReadOnlySpan<byte> Slice(long offset, int length) => new((byte*)_data + offset, length);

    private unsafe void Write(long offset, ReadOnlySpan<byte> bytes) => bytes.CopyTo(new Span<byte>((byte*)_data + offset, bytes.Length));

    /// <summary>The memory and how many views of it are not disposed; the last one frees it.</summary>
    private sealed class Views(SafeHandle memory)
    {
        private int _count = 1;

        /// <summary>A new view of memory an undisposed view holds (so the count is at least 1).</summary>
        public void Add() => Interlocked.Increment(ref _count);

        public void Release()
        {
            if (Interlocked.Decrement(ref _count) == 0) memory.Dispose();
        }
    }

    /// <summary>Memory from <see cref="NativeMemory.Alloc(nuint)"/>, freed by the handle.</summary>
    private sealed class AllocatedMemory : SafeHandle
    {
        public unsafe AllocatedMemory(long length) : base(IntPtr.Zero, ownsHandle: true) =>
            SetHandle((IntPtr)NativeMemory.Alloc((nuint)Math.Max(length, 1)));

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override unsafe bool ReleaseHandle()
        {
            NativeMemory.Free((void*)handle);
            return true;
        }
    }

    /// <summary>An <see cref="UnmanagedMemoryStream"/> that owns a view of the bytes.</summary>
    private sealed unsafe class ViewStream(NativeBytes view) : UnmanagedMemoryStream((byte*)view._data, view.Length)
    {
        protected override void Dispose(bool disposing)
        {
            base.Dispose(disposing);
            if (disposing) view.Dispose();
        }
    }
}
