using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using Azure.Storage.Sas;
using Dapo.Grains.Blobs;
using Dapo.Testing;

namespace Dapo.Bench;

/// <summary>
/// Blob storage throughput: a 256 MiB blob, generated as it is read and never held whole, goes up to an Azurite started
/// for the run through <see cref="AzureBlobStore"/> (blocks in parallel, the default sizes) and comes back through its
/// read stream and through GetAsync (ranges in parallel). Baselines measured in the same run on the same bytes: one
/// plain HTTP request each way (a single stream, no blocks, authorized by a SAS), and the local disk through
/// <see cref="LocalDirectoryBlobStore"/>. Also the managed heap at its highest during the store's transfers.
/// </summary>
internal static class BlobsBenchmark
{
    private const int MiB = 1 << 20;

    /// <summary>Parses <c>--quick --json</c> and runs.</summary>
    public static int Command(string[] args) =>
        BenchArgs.Parse(args, "--quick", "--json") is { } parsed ? RunAsync(parsed).GetAwaiter().GetResult() : 2;

    public static async Task<int> RunAsync(BenchArgs args)
    {
        var size = (args.Quick ? 64L : 256L) * MiB;
        var repeats = args.Quick ? 1 : 3;
        var ct = CancellationToken.None;
        var defaults = new BlobStorageOptions();
        Console.WriteLine($"blobs benchmark: a {size / MiB} MiB blob generated as it is read, Azurite on 127.0.0.1, best of {repeats}; " +
                          $"the store with {defaults.BlockSizeBytes / MiB} MiB blocks, {defaults.MaxConcurrency} in flight");
        await using var azurite = await AzuriteProcess.StartNewAsync(ct);
        var directory = Directory.CreateTempSubdirectory("dapo-bench-blobs-").FullName;
        try
        {
            var store = BlobStoreFactory.Create(new BlobStorageOptions
            {
                Kind = BlobStoreKind.Azure, ConnectionString = azurite.ConnectionString, Container = "bench",
            });
            await store.EnsureContainerAsync(ct);
            var local = new LocalDirectoryBlobStore(directory);
            await local.EnsureContainerAsync(ct);
            using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
            var sas = new BlobServiceClient(azurite.ConnectionString).GetBlobContainerClient("bench")
                .GenerateSasUri(BlobContainerSasPermissions.All, DateTimeOffset.UtcNow.AddHours(2)).Query;
            var rawUri = new Uri($"{azurite.BlobEndpoint}/bench/raw{sas}");

            var heap = new HeapSampler();
            var storeUp = await BestAsync(repeats, size, () => heap.During(() => store.PutAsync("store", new GeneratedStream(size, 1), ct)));
            var storeRead = await BestAsync(repeats, size, () => heap.During(async () => await DrainAsync(await store.OpenReadAsync("store", ct))));
            var live = await LiveHeapGrowthAsync(store, size, ct);
            var storeGet = await BestAsync(repeats, size, () => store.GetAsync("store", ct));
            var rawUp = await BestAsync(repeats, size, () => RawPutAsync(http, rawUri, size));
            var rawDown = await BestAsync(repeats, size, async () => await DrainAsync(await http.GetStreamAsync(rawUri, ct)));
            var diskUp = await BestAsync(repeats, size, () => local.PutAsync("disk", new GeneratedStream(size, 1), ct));
            var diskDown = await BestAsync(repeats, size, async () => await DrainAsync(await local.OpenReadAsync("disk", ct)));

            static string Row(string what, double mbps, double baseline, string baselineName) =>
                string.Create(CultureInfo.InvariantCulture, $"  {what,-44} {mbps,7:F1} MB/s  ({mbps / baseline:F2}x {baselineName})");
            Console.WriteLine(Row("upload:   AzureBlobStore.PutAsync (stream)", storeUp, rawUp, "one HTTP PUT"));
            Console.WriteLine(Row("download: AzureBlobStore.OpenReadAsync (stream)", storeRead, rawDown, "one HTTP GET"));
            Console.WriteLine(Row("download: AzureBlobStore.GetAsync (one array)", storeGet, rawDown, "one HTTP GET"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  baselines: one HTTP PUT {rawUp:F1} MB/s, one HTTP GET {rawDown:F1} MB/s; local disk write {diskUp:F1} MB/s, read {diskDown:F1} MB/s"));
            var peakWorkingSet = Process.GetCurrentProcess().PeakWorkingSet64;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  managed memory while the store streams the {size / MiB} MiB blob: live heap grows at most {live / (double)MiB:F0} MiB; " +
                $"the heap, garbage included, peaks at {heap.Peak / (double)MiB:F0} MiB (process peak working set {peakWorkingSet / (double)MiB:F0} MiB, " +
                $"GetAsync's arrays included)"));
            if (args.Json)
            {
                var results = new JsonObject
                {
                    ["blob_mib"] = size / MiB,
                    ["store_upload_mb_per_s"] = storeUp, ["store_read_stream_mb_per_s"] = storeRead, ["store_get_mb_per_s"] = storeGet,
                    ["raw_put_mb_per_s"] = rawUp, ["raw_get_mb_per_s"] = rawDown,
                    ["disk_write_mb_per_s"] = diskUp, ["disk_read_mb_per_s"] = diskDown,
                    ["live_heap_growth_mib"] = live / (double)MiB, ["peak_managed_heap_mib"] = heap.Peak / (double)MiB,
                    ["peak_working_set_mib"] = peakWorkingSet / (double)MiB,
                };
                Console.WriteLine(results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            return 0;
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>The best of <paramref name="repeats"/> runs of <paramref name="transfer"/>, in MB/s (10^6 bytes).</summary>
    private static async Task<double> BestAsync(int repeats, long size, Func<Task> transfer)
    {
        var best = TimeSpan.MaxValue;
        for (var i = 0; i < repeats; i++)
        {
            var watch = Stopwatch.StartNew();
            await transfer();
            if (watch.Elapsed < best) best = watch.Elapsed;
        }
        return size / 1e6 / best.TotalSeconds;
    }

    /// <summary>Reads a stream to its end and drops what it read.</summary>
    private static async Task DrainAsync(Stream? stream)
    {
        await using var read = stream ?? throw new InvalidOperationException("The blob is missing.");
        await read.CopyToAsync(Stream.Null, 1 << 16);
    }

    /// <summary>Put Blob in one request, streaming the generated content (the service takes up to 5000 MiB so).</summary>
    private static async Task RawPutAsync(HttpClient http, Uri uri, long size)
    {
        using var content = new StreamContent(new GeneratedStream(size, 1), 1 << 16);
        content.Headers.ContentLength = size;
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var request = new HttpRequestMessage(HttpMethod.Put, uri) { Content = content };
        request.Headers.Add("x-ms-blob-type", "BlockBlob");
        using var response = await http.SendAsync(request);
        response.EnsureSuccessStatusCode();
    }

    /// <summary>
    /// An untimed upload and read of the blob, measuring the live managed heap (after a full collection) against its
    /// size before, at a quarter, half and three quarters of the way: the most it grew.
    /// </summary>
    private static async Task<long> LiveHeapGrowthAsync(IBlobStore store, long size, CancellationToken ct)
    {
        var baseline = GC.GetTotalMemory(forceFullCollection: true);
        long most = 0, next = size / 4;
        void At(long position)
        {
            if (position < next) return;
            most = Math.Max(most, GC.GetTotalMemory(forceFullCollection: true) - baseline);
            next += size / 4;
        }
        await store.PutAsync("live", new GeneratedStream(size, 2, At), ct);
        next = size / 4;
        await using var stream = await store.OpenReadAsync("live", ct) ?? throw new InvalidOperationException("The blob is missing.");
        var buffer = new byte[1 << 16];
        long read = 0;
        for (int n; (n = await stream.ReadAsync(buffer, ct)) > 0;)
            At(read += n);
        return most;
    }

    /// <summary>The highest managed heap (live and not yet collected) seen every 10 ms while work runs.</summary>
    private sealed class HeapSampler
    {
        public long Peak { get; private set; }

        public async Task During(Func<Task> work)
        {
            using var done = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                while (!done.IsCancellationRequested)
                {
                    Peak = Math.Max(Peak, GC.GetTotalMemory(forceFullCollection: false));
                    await Task.Delay(10);
                }
            });
            try
            {
                await work();
            }
            finally
            {
                await done.CancelAsync();
                await sampler;
            }
        }
    }
}
