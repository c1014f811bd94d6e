using Dapo.Torch.Native;

namespace Dapo.Torch;

/// <summary>Full training state as bytes: weights, AdamW moments, step count and options.</summary>
public static unsafe class TrainingState
{
    public static byte[] Save(PolicyModel model, AdamW optimizer)
    {
        CheckPair(model, optimizer);
        using var buffer = NativeMethods.Check(NativeMethods.dapo_state_save(model.Handle, optimizer.Handle));
        return buffer.ToArray();
    }

    /// <summary>Loads a saved state into a model and its optimizer; a rejected state changes neither.</summary>
    public static void Load(ReadOnlySpan<byte> state, PolicyModel model, AdamW optimizer)
    {
        CheckPair(model, optimizer);
        fixed (byte* p = state)
            NativeMethods.Check(NativeMethods.dapo_state_load(model.Handle, optimizer.Handle, p, state.Length));
    }

    /// <summary>A fresh model and optimizer holding the saved state.</summary>
    public static (PolicyModel Model, AdamW Optimizer) Restore(ReadOnlySpan<byte> state)
    {
        var model = PolicyModel.Create(TorchEngine.ReadConfig(state));
        AdamW? optimizer = null;
        try
        {
            optimizer = new AdamW(model);
            Load(state, model, optimizer);
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
