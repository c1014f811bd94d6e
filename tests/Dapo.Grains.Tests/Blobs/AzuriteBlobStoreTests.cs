using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Specialized;
using Azure.Storage.Sas;
using Dapo.Grains.Blobs;
using Dapo.Grains.Tests.Infrastructure;
using Dapo.Testing;
using static Dapo.Grains.Tests.Blobs.BlobTestData;

namespace Dapo.Grains.Tests.Blobs;

/// <summary>The blob store contract on <see cref="AzureBlobStore"/> against a real Azurite, plus Azure specifics.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class AzuriteBlobStoreTests(AzuriteFixture azurite) : BlobStoreContractTests
{
    private readonly RequestRecorder _requests = new();

    /// <summary>Small sizes so block uploads, parallel transfers and paging happen with little data.</summary>
    internal static AzureBlobTransferOptions Small => new()
    {
        InitialTransferSize = MiB, MaximumTransferSize = MiB, MaximumConcurrency = 4, ListPageSize = 2,
    };

    /// <summary>The SDK's default client options, with every try of every request recorded.</summary>
    private BlobClientOptions Recorded()
    {
        var options = new BlobClientOptions();
        options.AddPolicy(_requests, HttpPipelinePosition.PerRetry);
        return options;
    }

    protected override IBlobStore CreateStore() => azurite.CreateStore(Small, Recorded());

    [Fact]
    public async Task Large_blobs_go_up_and_come_down_in_parallel_blocks_and_listing_follows_markers()
    {
        var content = Bytes(9 * MiB + 5);
        _requests.Clear();
        _requests.Delay = TimeSpan.FromMilliseconds(50); // long enough that parallel requests overlap on any machine
        await Store.PutAsync("runs/r1/policy/1", ScriptedStream.Plain(content), Ct);
        Assert.Equal(10, _requests.Count("PUT", "comp=block&"));
        Assert.Equal(1, _requests.Count("PUT", "comp=blocklist"));
        Assert.InRange(_requests.MostInFlight, 2, Small.MaximumConcurrency);

        _requests.Clear();
        Assert.Equal(content, await Store.GetAsync("runs/r1/policy/1", Ct));
        Assert.Equal(10, _requests.Count("GET", "runs/r1/policy/1")); // ten 1 MiB ranges
        Assert.InRange(_requests.MostInFlight, 2, Small.MaximumConcurrency);
        _requests.Delay = TimeSpan.Zero;

        for (var i = 2; i <= 5; i++)
            await Store.PutAsync($"runs/r1/policy/{i}", Bytes(10), Ct);
        _requests.Clear();
        Assert.Equal(5, (await ListAsync("runs/r1/")).Count);
        Assert.Equal(3, _requests.Count("GET", "comp=list")); // 2 + 2 + 1 with maxresults=2
        Assert.Equal(2, _requests.Count("GET", "marker="));
    }

    [Fact]
    public async Task Every_upload_request_carries_the_MD5_of_its_content_for_the_service_to_check()
    {
        _requests.Clear();
        await Store.PutAsync("runs/r1/policy/1", Bytes(100), Ct);
        await Store.PutAsync("runs/r1/policy/2", ScriptedStream.Plain(Bytes(2 * MiB + 1)), Ct);
        await Store.TryCreateAsync("runs/r1/policy/3", Bytes(3 * MiB), Ct);
        var withContent = _requests.Sent.Where(r => r.Method == "PUT" && !r.Uri.Contains("comp=blocklist", StringComparison.Ordinal)).ToList();
        Assert.Equal(1 + 3 + 3, withContent.Count); // one Put Blob, then 1 MiB blocks
        Assert.All(withContent, r => Assert.True(r.ContentMd5 is not null, r.Uri));
        Assert.Equal(Convert.ToBase64String(System.Security.Cryptography.MD5.HashData(Bytes(100))), withContent[0].ContentMd5);
    }

    [Fact]
    public async Task Blocks_staged_by_a_failed_upload_make_a_create_only_put_fail_with_UncommittedBlocks_until_a_plain_put()
    {
        // What an upload that died after staging a block leaves behind.
        var blob = new BlobServiceClient(azurite.ConnectionString).GetBlobContainerClient(((AzureBlobStore)Store).Container)
            .GetBlockBlobClient("runs/r1/policy/1");
        await blob.StageBlockAsync(Convert.ToBase64String(Bytes(16)), new MemoryStream(Bytes(MiB)), cancellationToken: Ct);

        // Azurite refuses a create-only Put Blob over uncommitted blocks, though there is no blob: not a lost create.
        var e = await Assert.ThrowsAsync<BlobStorageException>(() => Store.TryCreateAsync("runs/r1/policy/1", Bytes(10), Ct));
        Assert.Equal(BlobErrorCodes.UncommittedBlocks, e.ErrorCode);
        Assert.Equal("Create Blob", e.Operation);
        Assert.Contains("A plain put replaces them", e.Message);
        Assert.Null(await Store.GetAsync("runs/r1/policy/1", Ct));

        await Store.PutAsync("runs/r1/policy/1", Bytes(20), Ct);
        Assert.False(await Store.TryCreateAsync("runs/r1/policy/1", Bytes(10), Ct));
        Assert.Equal(Bytes(20), await Store.GetAsync("runs/r1/policy/1", Ct));
    }

    [Fact]
    public async Task A_read_stream_downloads_a_block_at_a_time_as_it_is_read()
    {
        var content = Bytes(5 * MiB + 3);
        await Store.PutAsync("runs/r1/checkpoints/00000001/state.bin", content, Ct);
        _requests.Clear();
        await using var stream = await Store.OpenReadAsync("runs/r1/checkpoints/00000001/state.bin", Ct);
        var head = new byte[100];
        await stream!.ReadExactlyAsync(head, Ct);
        Assert.Equal(content[..100], head);
        Assert.True(_requests.Count("GET", "state.bin") <= 1, "the first read fetches one block, not the blob");

        var rest = new MemoryStream();
        await stream.CopyToAsync(rest, Ct);
        Assert.Equal(content[100..], rest.ToArray());
        Assert.Equal(6, _requests.Count("GET", "state.bin")); // 5 MiB + 3 bytes in 1 MiB blocks
    }

    [Fact]
    public async Task A_wrong_account_key_is_refused_with_a_message_that_does_not_show_the_key()
    {
        var wrongKey = Convert.ToBase64String(Bytes(64, seed: 9));
        var store = BlobStoreFactory.Create(new BlobStorageOptions
        {
            Kind = BlobStoreKind.Azure, Container = azurite.NewContainerName(),
            ConnectionString = azurite.ConnectionString.Replace(AzuriteProcess.AccountKey, wrongKey),
        });

        var e = await Assert.ThrowsAsync<BlobStorageException>(() => store.EnsureContainerAsync(Ct));
        Assert.Equal(403, e.Status);
        // Azure says AuthenticationFailed; Azurite says AuthorizationFailure for a bad signature.
        Assert.Contains(e.ErrorCode, new[] { "AuthenticationFailed", "AuthorizationFailure" });
        Assert.Equal("Create Container", e.Operation);
        Assert.False(e.IsTransient);
        Assert.DoesNotContain(wrongKey, e.ToString());
        Assert.Contains("account key", e.Message);
    }

    [Fact]
    public async Task A_SAS_connection_string_without_the_account_key_puts_gets_lists_and_deletes()
    {
        var sas = AccountSas(AccountSasPermissions.All);
        var connectionString = $"BlobEndpoint={azurite.BlobEndpoint};SharedAccessSignature={sas}";
        Assert.DoesNotContain("AccountKey", connectionString);
        var options = new BlobStorageOptions { Kind = BlobStoreKind.Azure, ConnectionString = connectionString, Container = azurite.NewContainerName() };
        Assert.Equal(BlobConnectionCredential.SharedAccessSignature, AzureBlobConnection.Parse(connectionString).Credential);
        var store = BlobStoreFactory.Create(options);

        await store.EnsureContainerAsync(Ct);
        await store.PutAsync("runs/r1/checkpoints/00000001/state.bin", Bytes(3 * MiB + 1), Ct);
        Assert.True(await store.TryCreateAsync("runs/r1/policy/00000001", Bytes(10), Ct));
        Assert.False(await store.TryCreateAsync("runs/r1/policy/00000001", Bytes(20), Ct));

        Assert.Equal(Bytes(3 * MiB + 1), await store.GetAsync("runs/r1/checkpoints/00000001/state.bin", Ct));
        var listed = new List<string>();
        await foreach (var blob in store.ListAsync("runs/r1/", Ct))
            listed.Add(blob.Name);
        Assert.Equal(["runs/r1/checkpoints/00000001/state.bin", "runs/r1/policy/00000001"], listed);
        Assert.True(await store.DeleteAsync("runs/r1/policy/00000001", Ct));

        // What the SAS key signs never shows: not in the description, nor in the redacted options.
        var signature = Uri.UnescapeDataString(sas.Split("sig=")[1]);
        Assert.DoesNotContain(signature, store.Description);
        Assert.DoesNotContain("sig=", store.Description);
        Assert.DoesNotContain(signature, Uri.UnescapeDataString(options.ToString()));
    }

    [Fact]
    public async Task A_read_only_SAS_reads_but_writes_fail_with_a_clear_permanent_error()
    {
        var writer = azurite.CreateStore(Small);
        await writer.EnsureContainerAsync(Ct);
        await writer.PutAsync("runs/r1/policy/1", Bytes(10), Ct);
        var sas = AccountSas(AccountSasPermissions.Read | AccountSasPermissions.List);
        var reader = BlobStoreFactory.Create(new BlobStorageOptions
        {
            Kind = BlobStoreKind.Azure, Container = writer.Container,
            ConnectionString = $"BlobEndpoint={azurite.BlobEndpoint};SharedAccessSignature={sas}",
        });

        Assert.Equal(Bytes(10), await reader.GetAsync("runs/r1/policy/1", Ct));
        var e = await Assert.ThrowsAsync<BlobStorageException>(() => reader.PutAsync("runs/r1/policy/2", Bytes(10), Ct));
        Assert.Equal(403, e.Status);
        Assert.False(e.IsTransient);
        Assert.Equal("runs/r1/policy/2", e.BlobName);
        Assert.Contains("the SAS (its permissions and expiry)", e.Message);
        Assert.DoesNotContain(Uri.UnescapeDataString(sas.Split("sig=")[1]), e.ToString());
    }

    [Fact]
    public async Task A_stock_Azurite_that_checks_the_API_version_takes_the_version_the_options_pin()
    {
        await using var strict = await AzuriteProcess.StartNewAsync(Ct, checkApiVersion: true);
        var store = BlobStoreFactory.Create(new BlobStorageOptions { Kind = BlobStoreKind.Azure, ConnectionString = strict.ConnectionString });
        await store.EnsureContainerAsync(Ct);
        Assert.True(await store.TryCreateAsync("runs/r1/policy/1", Bytes(9 * MiB), Ct));
        Assert.Equal(Bytes(9 * MiB), await store.GetAsync("runs/r1/policy/1", Ct));

        // The SDK's default version is newer than this Azurite knows: what the pin is for.
        var unpinned = new AzureBlobStore(new BlobServiceClient(strict.ConnectionString).GetBlobContainerClient("dapo"));
        var e = await Assert.ThrowsAsync<BlobStorageException>(() => unpinned.GetInfoAsync("runs/r1/policy/1", Ct));
        Assert.Equal(400, e.Status);
    }

    /// <summary>An account SAS for this Azurite, signed with its key, valid for an hour (the query, without '?').</summary>
    private string AccountSas(AccountSasPermissions permissions) =>
        new BlobServiceClient(azurite.ConnectionString)
            .GenerateAccountSasUri(permissions, DateTimeOffset.UtcNow.AddHours(1), AccountSasResourceTypes.All)
            .Query.TrimStart('?');
}

/// <summary>
/// Records method, URL and Content-MD5 of every try of every request and how many were in flight at once; can hold each request
/// back a little so that requests sent in parallel are seen to overlap.
/// </summary>
internal sealed class RequestRecorder : HttpPipelinePolicy
{
    private readonly List<(string Method, string Uri, string? ContentMd5)> _sent = [];
    private int _inFlight;
    private int _mostInFlight;

    public TimeSpan Delay { get; set; }

    public int MostInFlight => Volatile.Read(ref _mostInFlight);

    public IReadOnlyList<(string Method, string Uri, string? ContentMd5)> Sent
    {
        get { lock (_sent) return _sent.ToList(); }
    }

    public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline) =>
        ProcessAsync(message, pipeline).AsTask().GetAwaiter().GetResult();

    public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        lock (_sent)
            _sent.Add((message.Request.Method.Method, message.Request.Uri.ToString(),
                message.Request.Headers.TryGetValue("Content-MD5", out var md5) ? md5 : null));
        var now = Interlocked.Increment(ref _inFlight);
        for (var most = MostInFlight; now > most; most = MostInFlight)
            Interlocked.CompareExchange(ref _mostInFlight, now, most);
        try
        {
            if (Delay > TimeSpan.Zero)
                await Task.Delay(Delay, message.CancellationToken);
            await ProcessNextAsync(message, pipeline);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    public int Count(string method, string uriPart) =>
        Sent.Count(r => r.Method == method && r.Uri.Contains(uriPart, StringComparison.Ordinal));

    public void Clear()
    {
        lock (_sent)
            _sent.Clear();
        Volatile.Write(ref _mostInFlight, 0);
    }
}
