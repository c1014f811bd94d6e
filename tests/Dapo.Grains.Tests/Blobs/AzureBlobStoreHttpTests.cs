using System.Net;
using Azure.Core;
using Azure.Core.Pipeline;
using Dapo.Grains.Blobs;
using static Dapo.Grains.Tests.Blobs.BlobTestData;

namespace Dapo.Grains.Tests.Blobs;

/// <summary>
/// Stores built by <see cref="BlobStoreFactory"/> from <see cref="BlobStorageOptions"/>, with the SDK client's HTTP
/// transport answering by script: no request leaves the process. For what Azurite cannot show: token auth (Azurite
/// takes tokens only over https, which the tests' Azurite does not serve), server errors and the SDK's retries as
/// our options set them.
/// </summary>
public sealed class AzureBlobStoreHttpTests
{
    private const string Key = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==";

    private static BlobStorageOptions Options(string connectionString, int retries = 2,
        BlobCredentialMode credential = BlobCredentialMode.SharedKey) => new()
    {
        Kind = BlobStoreKind.Azure, ConnectionString = connectionString, Credential = credential,
        MaxRetries = retries, RetryDelay = TimeSpan.FromMilliseconds(1), MaxRetryDelay = TimeSpan.FromMilliseconds(5),
    };

    private static IBlobStore Store(BlobStorageOptions options, ScriptedHandler handler, TokenCredential? credential = null) =>
        BlobStoreFactory.Create(options, null, credential, new HttpClientTransport(new HttpClient(handler)));

    private static IBlobStore SharedKeyStore(ScriptedHandler handler, int retries = 2) =>
        Store(Options($"AccountName=acct;AccountKey={Key}", retries), handler);

    [Fact]
    public async Task Token_auth_from_the_options_sends_an_Azure_Identity_style_bearer_token_for_the_storage_scope()
    {
        var handler = new ScriptedHandler(_ => new HttpResponseMessage(HttpStatusCode.Created));
        var credential = new StaticTokenCredential("token-123");
        var store = Store(Options("BlobEndpoint=https://acct.blob.core.windows.net", credential: BlobCredentialMode.DefaultAzureCredential),
            handler, credential);

        await store.EnsureContainerAsync(Timeout());

        var request = Assert.Single(handler.Requests);
        Assert.Equal("PUT https://acct.blob.core.windows.net/dapo?restype=container", $"{request.Method} {request.Uri}");
        Assert.Equal("Bearer token-123", request.Authorization);
        Assert.NotNull(request.Version); // the SDK's x-ms-version
        Assert.Equal([AzureBlobConnection.StorageScope], credential.Scopes.Distinct());
        Assert.Equal("Azure Blob Storage container https://acct.blob.core.windows.net/dapo", store.Description);
    }

    [Fact]
    public async Task The_account_key_signs_every_try_and_server_errors_are_retried_as_configured_then_reported()
    {
        var handler = new ScriptedHandler(_ => Error(HttpStatusCode.ServiceUnavailable, "ServerBusy", "The server is busy."));
        var store = SharedKeyStore(handler, retries: 2);

        var e = await Assert.ThrowsAsync<BlobStorageException>(() => store.PutAsync("runs/r1/policy/1", Bytes(10), Timeout()));

        Assert.Equal(3, handler.Requests.Count); // the first try and Blobs:MaxRetries = 2 retries, by the SDK
        Assert.Equal(503, e.Status);
        Assert.Equal("ServerBusy", e.ErrorCode);
        Assert.True(e.IsTransient);
        Assert.StartsWith("Put Blob of blob 'runs/r1/policy/1' in container 'dapo' failed: 503 ServerBusy (The server is busy.).", e.Message);
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
        Assert.Equal("Delete Blob", e.Operation);
        Assert.False(e.IsTransient);
        Assert.Contains("role on the storage account", e.Message);
    }

    [Fact]
    public async Task A_create_only_put_asks_the_service_for_if_none_match_and_a_refusal_is_a_lost_create()
    {
        // The blob is there: the create is refused, and the properties of what is there are found.
        var handler = new ScriptedHandler(request => request.Method == HttpMethod.Head
            ? new HttpResponseMessage(HttpStatusCode.OK)
            : Error(HttpStatusCode.Conflict, "BlobAlreadyExists", "The specified blob already exists."));
        var store = SharedKeyStore(handler);

        Assert.False(await store.TryCreateAsync("runs/r1/policy/1", Bytes(10), Timeout()));

        Assert.Equal(["PUT *", "HEAD "], handler.Requests.Select(r => $"{r.Method} {r.IfNoneMatch}"));
    }

    private static HttpResponseMessage Error(HttpStatusCode status, string code, string message)
    {
        var response = new HttpResponseMessage(status)
        {
            Content = new StringContent($"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\nRequestId:1</Message></Error>",
                System.Text.Encoding.UTF8, "application/xml"),
        };
        response.Headers.Add("x-ms-error-code", code);
        return response;
    }

    /// <summary>Answers every request with <paramref name="respond"/> and records what was sent.</summary>
    private sealed class ScriptedHandler(Func<HttpRequestMessage, HttpResponseMessage> respond) : HttpMessageHandler
    {
        public List<(HttpMethod Method, Uri Uri, string? Authorization, string? Version, string? IfNoneMatch)> Requests { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            string? Header(string name) => request.Headers.TryGetValues(name, out var v) ? string.Join(",", v) : null;
            lock (Requests)
                Requests.Add((request.Method, request.RequestUri!, request.Headers.Authorization?.ToString(), Header("x-ms-version"),
                    Header("If-None-Match")));
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
