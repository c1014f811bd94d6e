using Xunit.Abstractions;

namespace Dapo.Torch.Tests;

[CollectionDefinition(nameof(LeakTests), DisableParallelization = true)]
public sealed class LeakTestCollection;

/// <summary>
/// Runs alone: it counts the process's live native objects, C heap bytes in use and managed bytes in use.
/// </summary>
/// <remarks>
/// Resident memory is not a leak measure: glibc keeps freed blocks for reuse (the engine raises its trim threshold,
/// see NativeMethods), and each OpenMP thread has its own arena, so resident size grows with the machine's thread
/// layout and allocation order without anything being lost. Bytes in use — the allocator's own count of blocks
/// handed out and not freed, and the GC's count of live managed bytes after a full collection — do not.
/// </remarks>
[Collection(nameof(LeakTests))]
public sealed class LeakTests(ITestOutputHelper output)
{
    private const int WarmUpCycles = 200;
    private const int WindowCycles = 400;

    private static long ResidentSetBytes()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }

    private readonly record struct Usage(long Handles, long NativeBytes, long ManagedBytes, long ResidentBytes)
    {
        public static Usage Now()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            return new Usage(TorchEngine.LiveNativeObjects, TorchEngine.HeapBytes().InUse, GC.GetTotalMemory(forceFullCollection: true),
                ResidentSetBytes());
        }

        public override string ToString() =>
            $"handles {Handles}, C heap in use {NativeBytes / 1024.0:F1} KiB, managed {ManagedBytes / 1024.0:F1} KiB, resident {ResidentBytes / 1048576.0:F1} MiB";
    }

    [Fact]
    public void Create_score_backward_dispose_cycles_leave_memory_bounded()
    {
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
            model.ExportWeights().Dispose();
        }

        // The unit of a leak: one model's weights (its optimizer state and graph are larger). Leaked handles of any
        // size show in the handle count.
        long modelBytes;
        using (var probe = TinyModels.Create()) modelBytes = probe.ExportWeights().Take().Length;

        for (var i = 0; i < WarmUpCycles; i++) Cycle(i); // allocator pools, JIT, libtorch's caches
        var warm = Usage.Now();
        for (var i = 0; i < WindowCycles; i++) Cycle(i);
        var first = Usage.Now();
        for (var i = 0; i < WindowCycles; i++) Cycle(i);
        var second = Usage.Now();
        output.WriteLine($"one model's weights: {modelBytes / 1024.0:F1} KiB");
        output.WriteLine($"after warm-up:           {warm}");
        output.WriteLine($"after {WindowCycles} more cycles:   {first}");
        output.WriteLine($"after {2 * WindowCycles} more cycles:   {second}");

        Assert.Equal(warm.Handles, second.Handles);
        // A leak grows every window by the same amount; pools and caches that are still filling, or runtime
        // allocations (the JIT's, libtorch's), move the count by a few hundred KiB up or down, once. So the second
        // window may grow by at most an eighth of a model per cycle: a leak of one cycle's model, its optimizer
        // state or its graph would add 8 to 30 times that (measured here: within ±2 MiB a window, no trend).
        var limit = WindowCycles * modelBytes / 8;
        var nativeGrowth = second.NativeBytes - first.NativeBytes;
        var managedGrowth = second.ManagedBytes - first.ManagedBytes;
        Assert.True(nativeGrowth < limit,
            $"the C heap in use grew by {nativeGrowth / 1024.0:F1} KiB over {WindowCycles} cycles after warm-up " +
            $"({(double)nativeGrowth / WindowCycles:F0} bytes per cycle, limit {limit / 1024} KiB): something native is not freed");
        Assert.True(managedGrowth < limit,
            $"managed memory in use grew by {managedGrowth / 1024.0:F1} KiB over {WindowCycles} cycles after warm-up " +
            $"({(double)managedGrowth / WindowCycles:F0} bytes per cycle, limit {limit / 1024} KiB): something managed is kept alive");
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
