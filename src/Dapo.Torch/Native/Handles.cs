using System.Runtime.InteropServices;

namespace Dapo.Torch.Native;

/// <summary>Owns one native object; <see cref="SafeHandle.ReleaseHandle"/> calls that type's native free.</summary>
internal abstract class NativeHandle() : SafeHandle(IntPtr.Zero, ownsHandle: true)
{
    public override bool IsInvalid => handle == IntPtr.Zero;
}

internal sealed class ModelHandle : NativeHandle
{
    protected override bool ReleaseHandle() { NativeMethods.dapo_model_free(handle); return true; }
}

internal sealed class SamplesHandle : NativeHandle
{
    protected override bool ReleaseHandle() { NativeMethods.dapo_samples_free(handle); return true; }
}

internal sealed class ScoreHandle : NativeHandle
{
    protected override bool ReleaseHandle() { NativeMethods.dapo_score_free(handle); return true; }
}

internal sealed class OptimizerHandle : NativeHandle
{
    protected override bool ReleaseHandle() { NativeMethods.dapo_optim_free(handle); return true; }
}

internal sealed class BufferHandle : NativeHandle
{
    protected override bool ReleaseHandle() { NativeMethods.dapo_buffer_free(handle); return true; }
}
