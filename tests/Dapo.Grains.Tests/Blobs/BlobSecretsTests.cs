using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using Azure.Core.Diagnostics;
using Azure.Storage.Blobs;
using Azure.Storage.Sas;
using Dapo.Grains.Blobs;
using Dapo.Grains.Tests.Infrastructure;
using Dapo.Testing;
using Microsoft.Extensions.Logging;
using static Dapo.Grains.Tests.Blobs.BlobTestData;

namespace Dapo.Grains.Tests.Blobs;

/// <summary>
/// Account keys and SAS signatures never reach a log, an exception or a description: everything the stores and the
/// SDK write while working and while failing (wrong key, wrong signature, read-only SAS, missing container, nothing
/// listening) is captured and searched for them.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class BlobSecretsTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task Keys_and_signatures_never_appear_in_logs_exceptions_or_descriptions()
    {
        var ct = Timeout(120);
        var captured = new ConcurrentQueue<string>();
        // The SDK's own event source, at its most verbose (requests, responses, retries), and our ILogger output.
        using var sdkEvents = new AzureEventSourceListener((e, message) => captured.Enqueue($"{e.EventSource.Name}: {message}"), EventLevel.Verbose);
        using var loggers = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(new CapturingLoggerProvider(captured)));

        var wrongKey = Convert.ToBase64String(Bytes(64, seed: 77));
        var keyService = new BlobServiceClient(azurite.ConnectionString);
        var sas = keyService.GenerateAccountSasUri(AccountSasPermissions.All, DateTimeOffset.UtcNow.AddHours(1), AccountSasResourceTypes.All).Query.TrimStart('?');
        var readOnlySas = keyService.GenerateAccountSasUri(AccountSasPermissions.Read | AccountSasPermissions.List,
            DateTimeOffset.UtcNow.AddHours(1), AccountSasResourceTypes.All).Query.TrimStart('?');
        var signature = Signature(sas);
        var wrongSignature = Convert.ToBase64String(Bytes(32, seed: 78));
        var wrongSas = sas.Replace(signature, Uri.EscapeDataString(wrongSignature), StringComparison.Ordinal);
        var deadEndpoint = $"http://127.0.0.1:{FreePort.Next()}/{AzuriteProcess.AccountName}";
        string[] secrets =
        [
            AzuriteProcess.AccountKey, wrongKey, signature, Uri.UnescapeDataString(signature), wrongSignature,
            Uri.EscapeDataString(wrongSignature), Signature(readOnlySas), Uri.UnescapeDataString(Signature(readOnlySas)),
        ];

        string[] connectionStrings =
        [
            azurite.ConnectionString,
            azurite.ConnectionString.Replace(AzuriteProcess.AccountKey, wrongKey),
            $"BlobEndpoint={azurite.BlobEndpoint};SharedAccessSignature={sas}",
            $"BlobEndpoint={azurite.BlobEndpoint};SharedAccessSignature={wrongSas}",
            $"BlobEndpoint={azurite.BlobEndpoint};SharedAccessSignature={readOnlySas}",
            azurite.ConnectionString.Replace(azurite.BlobEndpoint.ToString(), deadEndpoint),
            $"BlobEndpoint={deadEndpoint};SharedAccessSignature={sas}",
        ];
        var texts = new List<string>();
        var failures = 0;
        foreach (var connectionString in connectionStrings)
        {
            BlobStorageOptions Options() => new()
            {
                Kind = BlobStoreKind.Azure, ConnectionString = connectionString, Container = azurite.NewContainerName(),
                MaxRetries = 1, RetryDelay = TimeSpan.FromMilliseconds(10), MaxRetryDelay = TimeSpan.FromMilliseconds(20),
                SingleUploadLimitBytes = MiB, BlockSizeBytes = MiB,
            };
            var options = Options();
            texts.Add(options.ToString());
            // Settings that do not fit the credential: the validator's messages.
            texts.AddRange(BlobStorageOptionsValidator.Failures(new BlobStorageOptions
            {
                Kind = BlobStoreKind.Azure, ConnectionString = connectionString, Credential = BlobCredentialMode.DefaultAzureCredential,
            }));
            var store = BlobStoreFactory.Create(options, loggers);
            texts.Add(store.Description);
            var missing = BlobStoreFactory.Create(Options(), loggers); // a container never created
            Func<Task>[] operations =
            [
                () => store.EnsureContainerAsync(ct),
                () => store.PutAsync("runs/r1/policy/1", Bytes(10), ct),
                () => store.PutAsync("runs/r1/checkpoints/00000001/state.bin", ScriptedStream.Plain(Bytes(3 * MiB)), ct),
                () => store.TryCreateAsync("runs/r1/policy/1", Bytes(10), ct),
                () => store.GetAsync("runs/r1/checkpoints/00000001/state.bin", ct),
                async () =>
                {
                    await using var stream = await store.OpenReadAsync("runs/r1/policy/1", ct);
                    if (stream is not null) await stream.CopyToAsync(Stream.Null, ct);
                },
                () => store.GetInfoAsync("runs/r1/policy/1", ct),
                async () => { await foreach (var _ in store.ListAsync("runs/", ct)) { } },
                () => store.DeleteAsync("runs/r1/policy/1", ct),
                () => missing.GetAsync("runs/r1/policy/1", ct),
            ];
            foreach (var operation in operations)
            {
                try
                {
                    await operation();
                }
                catch (Exception e)
                {
                    failures++;
                    Assert.IsType<BlobStorageException>(e);
                    texts.Add(e.ToString());
                }
            }
        }

        texts.AddRange(captured);
        // The capture can fail: it holds failures from every kind of credential, and the SDK's request logs.
        Assert.InRange(failures, 30, int.MaxValue);
        Assert.Contains(texts, t => t.Contains("AuthorizationFailure", StringComparison.Ordinal));
        Assert.Contains(texts, t => t.Contains("AuthorizationPermissionMismatch", StringComparison.Ordinal) ||
                                    t.Contains("AuthorizationResourceTypeMismatch", StringComparison.Ordinal));
        Assert.Contains(texts, t => t.Contains(BlobErrorCodes.Unreachable, StringComparison.Ordinal));
        Assert.Contains(texts, t => t.Contains(BlobErrorCodes.ContainerNotFound, StringComparison.Ordinal));
        Assert.Contains(texts, t => t.StartsWith("Azure-Core", StringComparison.Ordinal) && t.Contains("sig=", StringComparison.Ordinal));
        foreach (var secret in secrets)
            Assert.DoesNotContain(texts, t => t.Contains(secret, StringComparison.Ordinal));
    }

    private static string Signature(string sas) => sas.Split("sig=")[1].Split('&')[0];

    /// <summary>Every log line, with its exception, into one queue.</summary>
    private sealed class CapturingLoggerProvider(ConcurrentQueue<string> lines) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, lines);

        public void Dispose() { }

        private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception,
                Func<TState, Exception?, string> formatter) =>
                lines.Enqueue($"{category} {logLevel} {eventId.Id}: {formatter(state, exception)} {exception}");
        }
    }
}
