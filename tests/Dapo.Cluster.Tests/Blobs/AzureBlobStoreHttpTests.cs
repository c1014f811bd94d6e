using System.Net;
using System.Security.Cryptography;
using Azure.Core;
using Azure.Core.Pipeline;
using Dapo.Cluster.Blobs;
using static Dapo.Cluster.Tests.Blobs.BlobTestData;

namespace Dapo.Cluster.Tests.Blobs;

/// <summary>
/// <see cref="AzureBlobStore"/> against scripted HTTP responses, for what Azurite cannot show: token auth (Azurite
/// needs TLS for it), server errors and retries, and a corrupted read.
/// </summary>
public sealed class AzureBlobStoreHttpTests
{
    private static AzureBlobClientOptions Options(ScriptedHandler handler, int retries = 2)
    {
        var options = new AzureBlobClientOptions { Transport = new HttpClientTransport(new HttpClient(handler)) };
        options.Retry.MaxRetries = retries;
        options.Retry.Delay = TimeSpan.FromMilliseconds(1);
        options.Retry.MaxDelay = TimeSpan.FromMilliseconds(5);
        return options;
    }

    private static AzureBlobStore SharedKeyStore(ScriptedHandler handler, int retries = 2) => new(
        BlobConnectionString.Parse($"AccountName=acct;AccountKey={BlobConnectionString.DevelopmentAccountKey}"),
        "dapo", Options(handler, retries));

    [Fact]
    public async Task Token_auth_sends_a_bearer_token_for_the_storage_scope()
    {
        var handler = new ScriptedHandler(_ => new HttpResponseMessage(HttpStatusCode.Created));
        var credential = new StaticTokenCredential("token-123");
        var store = new AzureBlobStore(new Uri("https://acct.blob.core.windows.net"), credential, "dapo", Options(handler));

        await store.EnsureContainerAsync(Timeout());

        var request = Assert.Single(handler.Requests);
        Assert.Equal("PUT https://acct.blob.core.windows.net/dapo?restype=container", $"{request.Method} {request.Uri}");
        Assert.Equal("Bearer token-123", request.Authorization);
        Assert.Equal(AzureBlobClientOptions.ServiceVersion, request.Version);
        Assert.Equal([AzureBlobStore.StorageScope], credential.Scopes);
    }

    [Fact]
    public void Token_auth_refuses_plain_http()
    {
        var e = Assert.Throws<ArgumentException>(() =>
            new AzureBlobStore(new Uri("http://127.0.0.1:10000/devstoreaccount1"), new StaticTokenCredential("t"), "dapo"));
        Assert.Contains("needs an https blob endpoint", e.Message);
    }

    [Fact]
    public async Task Server_errors_are_retried_then_reported_with_status_and_code()
    {
        var handler = new ScriptedHandler(_ => Error(HttpStatusCode.ServiceUnavailable, "ServerBusy", "The server is busy."));
        var store = SharedKeyStore(handler, retries: 2);

        var e = await Assert.ThrowsAsync<BlobStorageException>(() => store.PutAsync("runs/r1/policy/1", Bytes(10), Timeout()));

        Assert.Equal(3, handler.Requests.Count);
        Assert.Equal(503, e.Status);
        Assert.Equal("ServerBusy", e.ErrorCode);
        Assert.True(e.IsTransient);
        Assert.Contains("Put Blob of blob 'runs/r1/policy/1' in container 'dapo' failed: 503 ServerBusy (The server is busy.)", e.Message);
        // Each try was signed afresh.
        Assert.All(handler.Requests, r => Assert.StartsWith("SharedKey acct:", r.Authorization));
    }

    [Fact]
    public async Task Client_errors_are_not_retried()
    {
        var handler = new ScriptedHandler(_ => Error(HttpStatusCode.Forbidden, "AuthorizationPermissionMismatch", "Not allowed."));
        var store = SharedKeyStore(handler);

        var e = await Assert.ThrowsAsync<BlobStorageException>(() => store.DeleteAsync("runs/r1/policy/1", Timeout()));

        Assert.Single(handler.Requests);
        Assert.Equal(403, e.Status);
        Assert.False(e.IsTransient);
        Assert.Contains("role on the storage account", e.Message);
    }

    [Fact]
    public async Task A_read_that_does_not_match_the_stored_md5_is_an_error()
    {
        var handler = new ScriptedHandler(_ =>
        {
            var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(Bytes(100, seed: 1)) };
            response.Content.Headers.ContentMD5 = MD5.HashData(Bytes(100, seed: 2));
            return response;
        });
        var store = SharedKeyStore(handler);

        var e = await Assert.ThrowsAsync<BlobStorageException>(() => store.GetAsync("runs/r1/policy/1", Timeout()));
        Assert.Equal(BlobErrorCodes.Md5Mismatch, e.ErrorCode);
        Assert.True(e.IsTransient);
    }

    private static HttpResponseMessage Error(HttpStatusCode status, string code, string message)
    {
        var response = new HttpResponseMessage(status)
        {
            Content = new StringContent($"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\nRequestId:1</Message></Error>"),
        };
        response.Headers.Add("x-ms-error-code", code);
        return response;
    }

    /// <summary>Answers every request with <paramref name="respond"/> and records what was sent.</summary>
    private sealed class ScriptedHandler(Func<HttpRequestMessage, HttpResponseMessage> respond) : HttpMessageHandler
    {
        public List<(HttpMethod Method, Uri Uri, string? Authorization, string? Version)> Requests { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            lock (Requests)
                Requests.Add((request.Method, request.RequestUri!, request.Headers.Authorization?.ToString(),
                    request.Headers.TryGetValues("x-ms-version", out var v) ? v.Single() : null));
            return Task.FromResult(respond(request));
        }
    }
}

/// <summary>A <see cref="TokenCredential"/> that hands out a fixed token and records the scopes asked for.</summary>
internal sealed class StaticTokenCredential(string token) : TokenCredential
{
    public List<string> Scopes { get; } = [];

    public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken)
    {
        lock (Scopes)
            Scopes.AddRange(requestContext.Scopes);
        return new AccessToken(token, DateTimeOffset.UtcNow.AddHours(1));
    }

    public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
        new(GetToken(requestContext, cancellationToken));
}
