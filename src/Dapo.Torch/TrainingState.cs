using Dapo.Torch.Native;

namespace Dapo.Torch;

/// <summary>Full training state as bytes: weights, AdamW moments, step count and options (12 bytes a parameter, in
/// native memory: see <see cref="NativeBytes"/>).</summary>
public static unsafe class TrainingState
{
    public static NativeBytes Save(PolicyModel model, AdamW optimizer)
    {
        CheckPair(model, optimizer);
        return NativeBytes.Of(NativeMethods.Check(NativeMethods.dapo_state_save(model.Handle, optimizer.Handle)));
    }

    /// <summary>Loads a saved state into a model and its optimizer; a rejected state changes neither.</summary>
    public static void Load(ReadOnlySpan<byte> state, PolicyModel model, AdamW optimizer)
    {
        fixed (byte* p = state) Load(p, state.Length, model, optimizer);
    }

    /// <inheritdoc cref="Load(ReadOnlySpan{byte}, PolicyModel, AdamW)"/>
    public static void Load(NativeBytes state, PolicyModel model, AdamW optimizer) => state.Use((p, length) =>
    {
        Load((byte*)p, length, model, optimizer);
        return 0;
    });

    /// <summary>
    /// A fresh model on <paramref name="device"/> and its optimizer holding the saved state (a state does not say
    /// where it was made: a learner on a GPU restores onto its GPU, not onto the CPU).
    /// </summary>
    public static (PolicyModel Model, AdamW Optimizer) Restore(ReadOnlySpan<byte> state, DeviceType device = DeviceType.Cpu, int deviceIndex = 0)
    {
        fixed (byte* p = state) return Restore(p, state.Length, device, deviceIndex);
    }

    /// <inheritdoc cref="Restore(ReadOnlySpan{byte}, DeviceType, int)"/>
    public static (PolicyModel Model, AdamW Optimizer) Restore(NativeBytes state, DeviceType device = DeviceType.Cpu, int deviceIndex = 0) =>
        state.Use((p, length) => Restore((byte*)p, length, device, deviceIndex));

    private static void Load(byte* state, long length, PolicyModel model, AdamW optimizer)
    {
        CheckPair(model, optimizer);
        NativeMethods.Check(NativeMethods.dapo_state_load(model.Handle, optimizer.Handle, state, length));
    }

    private static (PolicyModel Model, AdamW Optimizer) Restore(byte* state, long length, DeviceType device, int deviceIndex)
    {
        var model = PolicyModel.Create(TorchEngine.ReadConfig(state, length) with { Device = device, DeviceIndex = deviceIndex });
        AdamW? optimizer = null;
        try
        {
            optimizer = new AdamW(model);
            Load(state, length, model, optimizer);
            return (model, optimizer);
        }
        catch
        {
            optimizer?.Dispose();
            model.Dispose();
            throw;
        }
    }

    private static void CheckPair(PolicyModel model, AdamW optimizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        model.ThrowIfDisposed();
        ObjectDisposedException.ThrowIf(optimizer.Handle.IsClosed, optimizer);
        if (!ReferenceEquals(optimizer.Model, model))
            throw new ArgumentException("The optimizer belongs to another model.", nameof(optimizer));
    }
}
