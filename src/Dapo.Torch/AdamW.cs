using Dapo.Torch.Native;

namespace Dapo.Torch;

/// <summary>AdamW hyper-parameters other than the learning rate, which each step takes.</summary>
public sealed record AdamWOptions
{
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Eps { get; init; } = 1e-8;
    /// <summary>Decoupled weight decay, applied to every parameter as torch.optim.AdamW does.</summary>
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>Global gradient-norm clip; 0 or less turns clipping off.</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    internal NativeAdamWOptions ToNative() => new()
    {
        Beta1 = Beta1, Beta2 = Beta2, Eps = Eps, WeightDecay = WeightDecay, MaxGradNorm = MaxGradNorm,
    };
}

/// <summary>Outcome of one optimizer step.</summary>
/// <param name="GradNorm">Global gradient norm before clipping.</param>
/// <param name="Applied">False when the norm was not finite: the update was skipped and the gradient dropped.</param>
public readonly record struct OptimizerStep(double GradNorm, bool Applied);

/// <summary>
/// AdamW over all parameters of one model, with global gradient-norm clipping. A step consumes the accumulated
/// gradient (sets it to zero).
/// </summary>
public sealed class AdamW : IDisposable
{
    internal OptimizerHandle Handle { get; }
    internal PolicyModel Model { get; }

    public AdamW(PolicyModel model, AdamWOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        model.ThrowIfDisposed();
        var native = (options ?? new AdamWOptions()).ToNative();
        Model = model;
        Handle = NativeMethods.Check(NativeMethods.dapo_optim_adamw_create(model.Handle, in native));
    }

    /// <summary>Steps taken (restored by <see cref="TrainingState.Load"/>).</summary>
    public long StepCount
    {
        get
        {
            ObjectDisposedException.ThrowIf(Handle.IsClosed, this);
            return NativeMethods.Check(NativeMethods.dapo_optim_step_count(Handle));
        }
    }

    public OptimizerStep Step(double learningRate)
    {
        ObjectDisposedException.ThrowIf(Handle.IsClosed, this);
        NativeMethods.Check(NativeMethods.dapo_optim_step(Handle, learningRate, out var norm, out var applied));
        return new OptimizerStep(norm, applied != 0);
    }

    public void Dispose() => Handle.Dispose();
}
