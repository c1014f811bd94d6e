using Dapo.Grains.Blobs;
using Dapo.Grains.Tests.Infrastructure;
using Dapo.Testing;
using Xunit.Abstractions;
using static Dapo.Grains.Tests.Blobs.BlobTestData;

namespace Dapo.Grains.Tests.Blobs;

/// <summary>
/// Blob storage unavailable: nothing listening, and Azurite stopped in the middle of a block upload (what the
/// checkpoint fault test does to the cluster). The write must fail with a clear, transient error after the
/// SDK's retries (as <see cref="BlobStorageOptions"/> set them), leave nothing half-written, and succeed when retried
/// once storage is back.
/// </summary>
public sealed class AzureBlobStoreOutageTests(ITestOutputHelper output)
{
    private const int Retries = 2;

    private static IBlobStore FastRetries(string connectionString, string container) => BlobStoreFactory.Create(new BlobStorageOptions
    {
        Kind = BlobStoreKind.Azure, ConnectionString = connectionString, Container = container,
        SingleUploadLimitBytes = MiB, BlockSizeBytes = MiB, MaxConcurrency = 2,
        MaxRetries = Retries, RetryDelay = TimeSpan.FromMilliseconds(10), MaxRetryDelay = TimeSpan.FromMilliseconds(50),
        NetworkTimeout = TimeSpan.FromSeconds(5),
    });

    [Fact]
    public async Task Nothing_listening_fails_after_the_retries_with_a_clear_transient_error()
    {
        var port = FreePort.Next(); // free, and nobody binds it
        var store = FastRetries(
            $"AccountName=devstoreaccount1;AccountKey={AzuriteProcess.AccountKey};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1", "dapo");

        var e = await Assert.ThrowsAsync<BlobStorageException>(() =>
            store.PutAsync("runs/r1/checkpoints/000001/manifest.json", Bytes(10), Timeout()));
        output.WriteLine(e.ToString());

        Assert.Equal(0, e.Status);
        Assert.Equal(BlobErrorCodes.Unreachable, e.ErrorCode);
        Assert.True(e.IsTransient);
        Assert.Equal("Put Blob", e.Operation);
        Assert.Equal("runs/r1/checkpoints/000001/manifest.json", e.BlobName);
        Assert.Contains($"no response in {Retries + 1} tries", e.Message);
        Assert.Contains($"127.0.0.1:{port}", e.Message);
        Assert.Contains("runs/r1/checkpoints/000001/manifest.json", e.Message);
        Assert.DoesNotContain(AzuriteProcess.AccountKey, e.ToString());
        Assert.IsAssignableFrom<IOException>(e);
    }

    [Fact]
    public async Task Azurite_stopped_mid_upload_fails_cleanly_keeps_the_old_blob_and_the_retry_succeeds()
    {
        var ct = Timeout(90);
        await using var azurite = await AzuriteProcess.StartNewAsync(ct);
        var store = FastRetries(azurite.ConnectionString, "checkpoints");
        await store.EnsureContainerAsync(ct);
        const string name = "runs/r1/checkpoints/000002/weights.bin";
        var old = Bytes(1000, seed: 1);
        await store.PutAsync(name, old, ct);

        // Stop Azurite once the first 1 MiB block has been read (and sent); the next blocks cannot go up.
        var replacement = Bytes(3 * MiB, seed: 2);
        var source = new ScriptedStream(replacement, MiB + 1, () => azurite.StopAsync(ct));
        var e = await Assert.ThrowsAsync<BlobStorageException>(() => store.PutAsync(name, source, ct));
        output.WriteLine(e.ToString());
        Assert.True(e.IsTransient);
        Assert.Equal("Put Blob", e.Operation);
        Assert.Equal(name, e.BlobName);
        Assert.Contains($"blob '{name}' in container 'checkpoints'", e.Message);
        Assert.False(await FreePort.IsListeningAsync(azurite.Port, ct));

        await azurite.StartAsync(ct);
        Assert.Equal(old, await store.GetAsync(name, ct)); // the staged block never became the blob
        var listed = new List<BlobInfo>();
        await foreach (var blob in store.ListAsync("runs/", ct))
            listed.Add(blob);
        Assert.Equal([(name, 1000L)], listed.Select(b => (b.Name, b.Size)));

        await store.PutAsync(name, replacement, ct); // what the checkpoint writer does next
        Assert.Equal(replacement, await store.GetAsync(name, ct));
    }
}
