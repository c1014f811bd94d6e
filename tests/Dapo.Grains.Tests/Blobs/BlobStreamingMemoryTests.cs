using System.Security.Cryptography;
using Dapo.Grains.Blobs;
using Dapo.Grains.Tests.Infrastructure;
using Dapo.Testing;
using Xunit.Abstractions;
using static Dapo.Grains.Tests.Blobs.BlobTestData;

namespace Dapo.Grains.Tests.Blobs;

/// <summary>
/// A blob much larger than any buffer goes up from a generated stream and comes back through a read stream while the
/// managed heap stays small: what lets a checkpoint of several GiB pass through without several GiB of memory.
/// </summary>
/// <remarks>
/// The live heap (after a full collection) is measured from inside the transfer, at several points of the stream,
/// against its size before. Holding the blob whole, or just the part transferred so far, would show at the later
/// points as most of the blob's size; streaming shows as the blocks in flight. Runs alone (<see cref="SoloCollection"/>),
/// so no other test's memory is counted.
/// </remarks>
[Collection(SoloCollection.Name)]
public sealed class BlobStreamingMemoryTests(ITestOutputHelper output)
{
    private const long Size = 128L * MiB;

    [Theory]
    [InlineData("azure")]
    [InlineData("local")]
    public async Task A_large_blob_streams_up_and_down_in_bounded_memory(string kind)
    {
        var ct = Timeout(300);
        var temp = Directory.CreateTempSubdirectory("dapo-blobs-memory-").FullName;
        await using var azurite = kind == "azure" ? await AzuriteProcess.StartNewAsync(ct) : null;
        try
        {
            // The defaults (8 MiB blocks, 4 in flight).
            IBlobStore store = azurite is null
                ? new LocalDirectoryBlobStore(temp)
                : BlobStoreFactory.Create(new BlobStorageOptions { Kind = BlobStoreKind.Azure, ConnectionString = azurite.ConnectionString });
            await store.EnsureContainerAsync(ct);
            const string name = "runs/r1/checkpoints/00000001/state.bin";

            var upload = new HeapProbe(Size);
            var expected = SHA256.HashData(new GeneratedStream(Size, seed: 42));
            upload.Start();
            await store.PutAsync(name, new GeneratedStream(Size, seed: 42, upload.At), ct);
            Assert.Equal(Size, (await store.GetInfoAsync(name, ct))!.Size);

            var download = new HeapProbe(Size);
            download.Start();
            await using (var stream = await store.OpenReadAsync(name, ct))
            {
                using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buffer = new byte[1 << 16];
                long read = 0;
                for (int n; (n = await stream!.ReadAsync(buffer, ct)) > 0;)
                {
                    sha.AppendData(buffer, 0, n);
                    download.At(read += n);
                }
                Assert.Equal(expected, sha.GetHashAndReset());
            }

            output.WriteLine($"{kind}: {Size / MiB} MiB; live heap growth up {upload}, down {download}");
            // Bounded: at most twice what the transfer options let an upload buffer; holding what was transferred so
            // far would pass that by the third of the four measurements (70 % of the blob).
            var bound = 2 * AzureBlobTransferOptions.Default.MaxBufferedBytes;
            Assert.True(bound < 0.7 * Size, $"the bound, {bound / MiB} MiB, must stay well below the blob's size to mean anything");
            Assert.Equal(4, upload.Samples.Count);
            Assert.Equal(4, download.Samples.Count);
            Assert.All(upload.Samples.Concat(download.Samples), growth => Assert.InRange(growth, long.MinValue, bound));
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>Live managed heap growth, measured when a transfer passes 20, 45, 70 and 95 % of the blob.</summary>
    private sealed class HeapProbe(long size)
    {
        private readonly double[] _points = [0.20, 0.45, 0.70, 0.95];
        private long _baseline;

        public List<long> Samples { get; } = [];

        public void Start() => _baseline = GC.GetTotalMemory(forceFullCollection: true);

        public void At(long position)
        {
            if (Samples.Count < _points.Length && position >= _points[Samples.Count] * size)
                Samples.Add(GC.GetTotalMemory(forceFullCollection: true) - _baseline);
        }

        public override string ToString() => string.Join(" / ", Samples.Select(s => $"{s / (double)MiB:F1}")) + " MiB";
    }
}
