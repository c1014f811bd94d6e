using Microsoft.Extensions.Options;

namespace Dapo.Grains.Blobs;

/// <summary>
/// Checks <see cref="BlobStorageOptions"/> before any work starts. Each message names the option (as its
/// configuration key, <c>Blobs:…</c>) and says how to fix it; none shows a key or password.
/// </summary>
public sealed class BlobStorageOptionsValidator : IValidateOptions<BlobStorageOptions>
{
    private const string S = BlobStorageOptions.SectionName;
    private const int MaxBufferBytes = 256 * AzureBlobTransferOptions.MiB;

    public ValidateOptionsResult Validate(string? name, BlobStorageOptions options)
    {
        var failures = Failures(options).ToList();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Every problem with <paramref name="options"/>; empty when they are valid.</summary>
    public static IEnumerable<string> Failures(BlobStorageOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!Enum.IsDefined(options.Kind))
        {
            yield return $"{S}:Kind is '{options.Kind}'; set it to Local or Azure.";
            yield break;
        }
        if (options.Kind == BlobStoreKind.Local)
        {
            if (string.IsNullOrWhiteSpace(options.LocalRoot))
                yield return $"{S}:LocalRoot is empty; set it to the directory that holds the blobs (for example runs/blobs).";
            yield break;
        }

        if (ContainerName.Problem(options.Container) is { } containerProblem)
            yield return $"{S}:Container '{options.Container}' {containerProblem}; use 3-63 lowercase letters, digits and single hyphens (for example dapo).";
        foreach (var failure in ConnectionFailures(options))
            yield return failure;

        if (options.MaxRetries is < 0 or > 20)
            yield return $"{S}:MaxRetries is {options.MaxRetries}; set 0 to 20 (default 5).";
        if (options.RetryDelay <= TimeSpan.Zero || options.RetryDelay > options.MaxRetryDelay)
            yield return $"{S}:RetryDelay is {options.RetryDelay}; set it above zero and at most {S}:MaxRetryDelay ({options.MaxRetryDelay}).";
        if (options.NetworkTimeout <= TimeSpan.Zero)
            yield return $"{S}:NetworkTimeout is {options.NetworkTimeout}; set a positive time (default 00:01:40).";
        if (options.SingleUploadLimitBytes is < 1 or > MaxBufferBytes)
            yield return $"{S}:SingleUploadLimitBytes is {options.SingleUploadLimitBytes}; set 1 to {MaxBufferBytes} (default 8 MiB).";
        if (options.BlockSizeBytes is < 1 or > MaxBufferBytes)
            yield return $"{S}:BlockSizeBytes is {options.BlockSizeBytes}; set 1 to {MaxBufferBytes} (default 8 MiB).";
        if (options.MaxConcurrency is < 1 or > 64)
            yield return $"{S}:MaxConcurrency is {options.MaxConcurrency}; set 1 to 64 (default 4).";
        if (options.ListPageSize is < 1 or > 5000)
            yield return $"{S}:ListPageSize is {options.ListPageSize}; set 1 to 5000 (default 5000).";
    }

    private static IEnumerable<string> ConnectionFailures(BlobStorageOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            yield return $"{S}:ConnectionString is empty; set it to the storage account's connection string " +
                         "(DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…, or BlobEndpoint=…;SharedAccessSignature=…) " +
                         "or UseDevelopmentStorage=true for Azurite.";
            yield break;
        }
        var (connection, parseError) = TryParse(options.ConnectionString);
        if (connection is null)
        {
            // The parser's messages name keys, never their values.
            yield return $"{S}:ConnectionString is invalid: {parseError}";
            yield break;
        }

        switch (options.Credential)
        {
            case BlobCredentialMode.SharedKey when connection.Credential == BlobConnectionCredential.None:
                yield return $"{S}:ConnectionString has neither AccountKey nor SharedAccessSignature, one of which {S}:Credential=SharedKey " +
                             $"needs; add one, or set {S}:Credential=DefaultAzureCredential for token auth.";
                break;
            case BlobCredentialMode.DefaultAzureCredential when connection.Credential != BlobConnectionCredential.None:
                yield return $"{S}:ConnectionString has {(connection.Credential == BlobConnectionCredential.AccountKey ? "an AccountKey" : "a SharedAccessSignature")} " +
                             $"but {S}:Credential is DefaultAzureCredential; remove it (token auth needs only BlobEndpoint=https://…) " +
                             $"or set {S}:Credential=SharedKey.";
                break;
            case BlobCredentialMode.DefaultAzureCredential when connection.BlobEndpoint.Scheme != Uri.UriSchemeHttps:
                yield return $"{S}:ConnectionString names {connection.BlobEndpoint.GetLeftPart(UriPartial.Authority)}, but token auth " +
                             $"({S}:Credential=DefaultAzureCredential) needs https; use an https endpoint or SharedKey auth.";
                break;
            case BlobCredentialMode.SharedKey or BlobCredentialMode.DefaultAzureCredential:
                break;
            default:
                yield return $"{S}:Credential is '{options.Credential}'; set it to SharedKey or DefaultAzureCredential.";
                break;
        }
    }

    private static (BlobConnectionInfo? Connection, string? Error) TryParse(string connectionString)
    {
        try
        {
            return (AzureBlobConnection.Parse(connectionString), null);
        }
        catch (FormatException e)
        {
            return (null, e.Message);
        }
    }
}
