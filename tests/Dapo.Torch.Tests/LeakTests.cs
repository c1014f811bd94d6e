using Xunit.Abstractions;

namespace Dapo.Torch.Tests;

[CollectionDefinition(nameof(LeakTests), DisableParallelization = true)]
public sealed class LeakTestCollection;

/// <summary>Runs alone: it counts the process's live native objects and resident memory.</summary>
[Collection(nameof(LeakTests))]
public sealed class LeakTests(ITestOutputHelper output)
{
    private static long ResidentBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }

    [Fact]
    public void Create_score_backward_dispose_cycles_leave_memory_bounded()
    {
        var liveBefore = TorchEngine.LiveNativeObjects;
        var sequences = TinyModels.Sequences([20, 33, 12], seed: 4)
            .Select(s => new ScoredSequence(s, s.Select((_, t) => t > 1).ToArray())).ToList();
        void Cycle(int i)
        {
            using var model = TinyModels.Create(seed: (ulong)i);
            using var optimizer = new AdamW(model);
            using (var score = model.Score(sequences, requiresGrad: true))
                score.Backward(Enumerable.Repeat(0.01f, score.Count).ToArray());
            optimizer.Step(1e-3);
            model.Sample([[1, 2, 3]], new SampleOptions { MaxNewTokens = 4, SamplesPerPrompt = 2 });
            _ = model.ExportWeights();
        }

        for (var i = 0; i < 100; i++) Cycle(i);  // warm-up: allocator pools, JIT, libtorch caches
        var warm = ResidentBytes();
        for (var i = 0; i < 1000; i++) Cycle(i);
        var after = ResidentBytes();
        var growth = after - warm;
        output.WriteLine($"resident memory after warm-up {warm / 1048576.0:F1} MiB, after 1000 cycles {after / 1048576.0:F1} MiB, growth {growth / 1048576.0:F1} MiB");
        Assert.Equal(liveBefore, TorchEngine.LiveNativeObjects);
        // One cycle's model, optimizer and graph take about 0.5 MiB: a leak of any of them would add 500 MiB.
        Assert.True(growth < 32L * 1048576, $"resident memory grew by {growth / 1048576.0:F1} MiB over 1000 cycles");
    }

    [Fact]
    public void Handles_freed_by_the_finalizer_are_released()
    {
        var liveBefore = TorchEngine.LiveNativeObjects;
        static void Abandon()
        {
            var model = TinyModels.Create();
            _ = new AdamW(model);
            _ = model.Score([ScoredSequence.FromPromptAndResponse([1, 2], [3])], requiresGrad: true);
        }
        Abandon();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(liveBefore, TorchEngine.LiveNativeObjects);
    }
}
