namespace Dapo.Torch.Tests;

public sealed class StateTests
{
    private static readonly int[][] Prompts = TinyModels.Sequences([4, 7, 2], seed: 13);

    private static List<ScoredSequence> Batch() =>
        TinyModels.Sequences([12, 9, 15], seed: 2).Select(s => new ScoredSequence(s, s.Select((_, t) => t > 0).ToArray())).ToList();

    /// <summary>A few optimizer steps so that the weights and Adam moments are not at their initial values.</summary>
    private static void Train(PolicyModel model, AdamW optimizer, int steps)
    {
        for (var i = 0; i < steps; i++)
        {
            using var score = model.Score(Batch(), requiresGrad: true);
            score.Backward(Enumerable.Repeat(-1f / score.Count, score.Count).ToArray());
            optimizer.Step(1e-2);
        }
    }

    private static float[][] NextGradients(PolicyModel model)
    {
        using (var score = model.Score(Batch(), requiresGrad: true))
            score.Backward(Enumerable.Repeat(-1f / score.Count, score.Count).ToArray());
        var grads = model.Parameters.Select(p => model.ReadGradient(p.Index)).ToArray();
        model.ZeroGrad();
        return grads;
    }

    [Fact]
    public void Same_seed_gives_the_same_initial_weights()
    {
        using var a = TinyModels.Create(seed: 1);
        using var b = TinyModels.Create(seed: 1);
        using var c = TinyModels.Create(seed: 2);
        Assert.Equal(a.ExportWeights().Take(), b.ExportWeights().Take());
        Assert.NotEqual(a.ReadParameter(0), c.ReadParameter(0));
    }

    [Fact]
    public void Restored_training_state_gives_identical_samples_gradients_and_steps()
    {
        using var model = TinyModels.Create(seed: 3);
        using var optimizer = new AdamW(model, new AdamWOptions { WeightDecay = 0.05 });
        Train(model, optimizer, 3);
        var state = TrainingState.Save(model, optimizer).Take();

        var (restored, restoredOptimizer) = TrainingState.Restore(state);
        using (restored)
        using (restoredOptimizer)
        {
            Assert.Equal(3, restoredOptimizer.StepCount);
            Assert.Equal(model.Config, restored.Config);
            var options = new SampleOptions { SamplesPerPrompt = 3, MaxNewTokens = 25, Seed = 77 };
            var expected = model.Sample(Prompts, options);
            var actual = restored.Sample(Prompts, options);
            Assert.Equal(expected.Select(r => r.Tokens), actual.Select(r => r.Tokens));
            Assert.Equal(expected.Select(r => r.LogProbs), actual.Select(r => r.LogProbs));
            Assert.Equal(NextGradients(model), NextGradients(restored));

            // The optimizer moments came along: the next step lands on bit-identical weights.
            Train(model, optimizer, 1);
            Train(restored, restoredOptimizer, 1);
            Assert.Equal(model.ExportWeights().Take(), restored.ExportWeights().Take());
            Assert.Equal(TrainingState.Save(model, optimizer).Take(), TrainingState.Save(restored, restoredOptimizer).Take());
        }
    }

    [Fact]
    public void Saved_state_and_weights_are_restored_onto_the_device_asked_for()
    {
        // Saved bytes do not say where they were made: the caller's device is used, not the CPU by default. On a
        // machine without CUDA, asking for it must fail, not quietly give a CPU model (`bench cuda` checks a GPU).
        using var model = TinyModels.Create(seed: 6);
        using var optimizer = new AdamW(model);
        var state = TrainingState.Save(model, optimizer).Take();
        var weights = model.ExportWeights().Take();
        if (TorchEngine.CudaAvailable)
        {
            var (onGpu, onGpuOptimizer) = TrainingState.Restore(state, DeviceType.Cuda);
            using (onGpu)
            using (onGpuOptimizer)
                Assert.Equal(DeviceType.Cuda, onGpu.Config.Device);
        }
        else
        {
            const string noCuda = "config.device_type is 1 (CUDA), but this engine has no CUDA device";
            Assert.StartsWith(noCuda, Assert.ThrowsAny<TorchException>(() => TrainingState.Restore(state, DeviceType.Cuda)).Message);
            Assert.StartsWith(noCuda, Assert.ThrowsAny<TorchException>(() => PolicyModel.FromWeights(weights, DeviceType.Cuda)).Message);
        }
        var (restored, restoredOptimizer) = TrainingState.Restore(state, DeviceType.Cpu);
        using (restored)
        using (restoredOptimizer)
            Assert.Equal(DeviceType.Cpu, restored.Config.Device);
    }

    [Fact]
    public void Weights_round_trip_bit_identically()
    {
        using var source = TinyModels.Create(seed: 4, tie: true);
        using var optimizer = new AdamW(source);
        Train(source, optimizer, 2);
        var weights = source.ExportWeights().Take();
        using var copy = PolicyModel.FromWeights(weights);
        Assert.True(copy.Config.TieEmbeddings);
        Assert.Equal(weights, copy.ExportWeights().Take());
        var options = new SampleOptions { SamplesPerPrompt = 2, MaxNewTokens = 20, Seed = 8 };
        Assert.Equal(source.Sample(Prompts, options).Select(r => r.LogProbs), copy.Sample(Prompts, options).Select(r => r.LogProbs));

        // Importing into an existing model of the same shape replaces its weights (its configuration, seed included,
        // stays its own).
        using var other = TinyModels.Create(seed: 99, tie: true);
        other.ImportWeights(weights);
        foreach (var p in source.Parameters) Assert.Equal(source.ReadParameter(p.Index), other.ReadParameter(p.Index));
    }

    [Fact]
    public void Rejected_imports_leave_the_model_unchanged()
    {
        using var model = TinyModels.Create(seed: 5);
        var original = model.ExportWeights().Take();
        using var wider = PolicyModel.Create(TinyModels.Config() with { DFf = 96 });
        var error = Assert.Throws<TorchException>(() => model.ImportWeights(wider.ExportWeights()));
        Assert.Contains("d_ff: saved 96, this model 64", error.Message);

        var truncated = Assert.Throws<TorchException>(() => model.ImportWeights(original.AsSpan(0, original.Length - 10)));
        Assert.Contains("truncated", truncated.Message);

        var garbage = Assert.Throws<TorchException>(() => model.ImportWeights(new byte[64]));
        Assert.Contains("DAPOENG1", garbage.Message);

        using var optimizer = new AdamW(model);
        var state = TrainingState.Save(model, optimizer).Take();
        var kind = Assert.Throws<TorchException>(() => model.ImportWeights(state));
        Assert.Contains("training state", kind.Message);

        Assert.Equal(original, model.ExportWeights().Take());
    }
}
