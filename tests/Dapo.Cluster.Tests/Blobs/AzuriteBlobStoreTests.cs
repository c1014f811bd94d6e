using Azure.Core;
using Azure.Core.Pipeline;
using Dapo.Cluster.Blobs;
using Dapo.Cluster.Tests.Infrastructure;
using Dapo.Testing;
using static Dapo.Cluster.Tests.Blobs.BlobTestData;

namespace Dapo.Cluster.Tests.Blobs;

/// <summary>The blob store contract on <see cref="AzureBlobStore"/> against a real Azurite, plus Azure specifics.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class AzuriteBlobStoreTests(AzuriteFixture azurite) : BlobStoreContractTests
{
    private readonly RequestCounter _requests = new();

    /// <summary>Small sizes so block uploads and paging happen with little data; every request is counted.</summary>
    private AzureBlobClientOptions SmallOptions()
    {
        var options = new AzureBlobClientOptions { SingleUploadLimitBytes = MiB, BlockSizeBytes = MiB, ListPageSize = 2 };
        options.AddPolicy(_requests, HttpPipelinePosition.PerRetry);
        return options;
    }

    protected override IBlobStore CreateStore() => azurite.CreateStore(SmallOptions());

    [Fact]
    public async Task Large_blobs_go_up_in_blocks_and_listing_follows_markers()
    {
        _requests.Clear();
        await Store.PutAsync("runs/r1/policy/1", Bytes(9 * MiB + 5), Ct);
        Assert.Equal(10, _requests.Count("PUT", "comp=block&"));
        Assert.Equal(1, _requests.Count("PUT", "comp=blocklist"));

        for (var i = 2; i <= 5; i++)
            await Store.PutAsync($"runs/r1/policy/{i}", Bytes(10), Ct);
        _requests.Clear();
        Assert.Equal(5, (await ListAsync("runs/r1/")).Count);
        Assert.Equal(3, _requests.Count("GET", "comp=list")); // 2 + 2 + 1 with maxresults=2
        Assert.Equal(2, _requests.Count("GET", "marker="));
    }

    [Fact]
    public async Task The_development_account_works_with_an_explicit_blob_endpoint_on_any_port()
    {
        // UseDevelopmentStorage=true means port 10000; with BlobEndpoint rewritten to this run's port it is the same account.
        var development = BlobConnectionString.Parse("UseDevelopmentStorage=true");
        Assert.Equal(BlobConnectionString.DevelopmentAccountName, development.AccountName);
        var here = BlobConnectionString.Parse(
            $"AccountName={development.AccountName};AccountKey={BlobConnectionString.DevelopmentAccountKey};BlobEndpoint={azurite.BlobEndpoint}");
        var store = new AzureBlobStore(here, azurite.NewContainerName(), SmallOptions());
        await store.EnsureContainerAsync(Ct);
        await store.PutAsync("a/b", Bytes(5), Ct);
        Assert.Equal(Bytes(5), await store.GetAsync("a/b", Ct));
    }

    [Fact]
    public async Task A_wrong_account_key_is_refused_with_a_message_that_does_not_show_the_key()
    {
        var wrongKey = Convert.ToBase64String(Bytes(64, seed: 9));
        var connection = BlobConnectionString.Parse(
            $"AccountName=devstoreaccount1;AccountKey={wrongKey};BlobEndpoint={azurite.BlobEndpoint}");
        var store = new AzureBlobStore(connection, azurite.NewContainerName(), SmallOptions());

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
    public async Task Uploads_carry_an_md5_that_the_service_stores_and_reads_check()
    {
        _requests.Clear();
        await Store.PutAsync("runs/r1/policy/1", Bytes(100), Ct);
        await Store.PutAsync("runs/r1/policy/2", Bytes(2 * MiB), Ct);
        Assert.All(_requests.Sent.Where(r => r.Method == "PUT"), r => Assert.True(r.HasMd5, r.Uri));
        // Both round trips pass the MD5 check in GetAsync.
        Assert.Equal(Bytes(100), await Store.GetAsync("runs/r1/policy/1", Ct));
        Assert.Equal(Bytes(2 * MiB), await Store.GetAsync("runs/r1/policy/2", Ct));
    }

    /// <summary>Records method, URL and whether an MD5 header was sent, for every try.</summary>
    private sealed class RequestCounter : HttpPipelineSynchronousPolicy
    {
        private readonly List<(string Method, string Uri, bool HasMd5)> _sent = [];

        public IReadOnlyList<(string Method, string Uri, bool HasMd5)> Sent
        {
            get { lock (_sent) return _sent.ToList(); }
        }

        public override void OnSendingRequest(HttpMessage message)
        {
            var hasMd5 = message.Request.Headers.Contains("Content-MD5") || message.Request.Headers.Contains("x-ms-blob-content-md5");
            lock (_sent)
                _sent.Add((message.Request.Method.Method, message.Request.Uri.ToString(), hasMd5));
        }

        public int Count(string method, string uriPart) =>
            Sent.Count(r => r.Method == method && r.Uri.Contains(uriPart, StringComparison.Ordinal));

        public void Clear()
        {
            lock (_sent)
                _sent.Clear();
        }
    }
}
