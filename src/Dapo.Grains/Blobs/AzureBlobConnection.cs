extern alias AzureIdentity;

using Azure.Core;
using Azure.Storage.Blobs;

namespace Dapo.Grains.Blobs;

/// <summary>The credential an Azure Storage connection string carries.</summary>
public enum BlobConnectionCredential
{
    /// <summary>None: the string only locates the service (a BlobEndpoint), for token auth.</summary>
    None,

    /// <summary>AccountName and AccountKey (SharedKey), including <c>UseDevelopmentStorage=true</c>'s well-known key.</summary>
    AccountKey,

    /// <summary>A shared access signature (<c>SharedAccessSignature=sv=…&amp;sig=…</c>).</summary>
    SharedAccessSignature,
}

/// <summary>
/// What Azure.Storage.Blobs makes of a connection string: the blob service's URL (without any SAS query, so safe to
/// show), the account's name and the credential it carries.
/// </summary>
public sealed record BlobConnectionInfo(Uri BlobEndpoint, string AccountName, BlobConnectionCredential Credential);

/// <summary>
/// Connection strings and clients of Azure Blob Storage. The SDK parses the strings (<c>new BlobServiceClient(…)</c>)
/// and this class only adds what the SDK's "No valid combination of account information found." leaves out: which
/// setting is at fault. No message shows a value that could be a key or a signature.
/// </summary>
/// <remarks>
/// The forms the SDK takes, all checked by the tests:
/// <list type="bullet">
/// <item><c>DefaultEndpointsProtocol=https;AccountName=NAME;AccountKey=KEY;EndpointSuffix=core.windows.net</c>
/// (protocol and suffix optional);</item>
/// <item>the same with <c>BlobEndpoint=URL</c> instead of the derived endpoint (Azurite on any port:
/// <c>…;BlobEndpoint=http://127.0.0.1:PORT/devstoreaccount1</c>);</item>
/// <item><c>BlobEndpoint=URL;SharedAccessSignature=sv=…&amp;sig=…</c> (SAS);</item>
/// <item><c>UseDevelopmentStorage=true</c> (Azurite's well-known account on 127.0.0.1:10000), optionally with
/// <c>DevelopmentStorageProxyUri</c>;</item>
/// <item><c>BlobEndpoint=https://NAME.blob.core.windows.net</c> alone, for token auth (the SDK does not take an
/// AccountName without a key).</item>
/// </list>
/// </remarks>
public static class AzureBlobConnection
{
    /// <summary>The OAuth scope of Azure Storage's data plane, which the SDK asks token credentials for.</summary>
    public const string StorageScope = "https://storage.azure.com/.default";

    private static readonly HashSet<string> KnownKeys = new(StringComparer.OrdinalIgnoreCase)
    {
        "DefaultEndpointsProtocol", "AccountName", "AccountKey", "EndpointSuffix", "BlobEndpoint",
        "SharedAccessSignature", "UseDevelopmentStorage", "DevelopmentStorageProxyUri",
        // Other services' settings that a portal connection string carries; they do not concern blobs.
        "QueueEndpoint", "TableEndpoint", "FileEndpoint", "BlobSecondaryEndpoint", "QueueSecondaryEndpoint",
        "TableSecondaryEndpoint", "FileSecondaryEndpoint",
    };

    /// <summary>
    /// Parses <paramref name="connectionString"/> with the SDK; throws <see cref="FormatException"/> saying which
    /// setting is wrong (by name, never its value).
    /// </summary>
    public static BlobConnectionInfo Parse(string connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString))
            throw new FormatException("The connection string is empty; use AccountName=…;AccountKey=…, BlobEndpoint=…;SharedAccessSignature=… or UseDevelopmentStorage=true.");
        var settings = ConnectionStrings.Settings(connectionString);
        if (settings.Count == 0)
            throw new FormatException("The connection string has no settings; use AccountName=…;AccountKey=…, BlobEndpoint=…;SharedAccessSignature=… or UseDevelopmentStorage=true.");
        if (settings.Keys.FirstOrDefault(k => !KnownKeys.Contains(k)) is { } unknown)
        {
            // A long "key" is more likely a pasted secret than a misspelt setting name: do not echo it.
            var shown = unknown.Length <= 32 ? $"'{unknown}'" : $"of {unknown.Length} characters (not shown)";
            throw new FormatException($"The connection string has an unknown key {shown}; known keys: {string.Join(", ", KnownKeys)}.");
        }
        if (settings.TryGetValue("AccountKey", out var key) && key.Length == 0)
            throw new FormatException("The connection string's AccountKey is empty; copy the key from the storage account's access keys.");
        if (settings.TryGetValue("BlobEndpoint", out var endpoint))
        {
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                throw new FormatException("The connection string's BlobEndpoint is not an absolute http or https URL.");
            if (uri.Query.Length > 0 || uri.UserInfo.Length > 0)
                throw new FormatException("The connection string's BlobEndpoint has a query or user info; give the plain service URL and a SAS as SharedAccessSignature=….");
        }

        BlobServiceClient client;
        try
        {
            client = new BlobServiceClient(connectionString);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or UriFormatException)
        {
            throw new FormatException(Diagnose(settings) ?? $"Azure.Storage.Blobs cannot read it ({Safe(e.Message, settings)}).", e is FormatException ? null : e);
        }
        var credential = client.CanGenerateAccountSasUri ? BlobConnectionCredential.AccountKey
            : settings.ContainsKey("SharedAccessSignature") ? BlobConnectionCredential.SharedAccessSignature
            : BlobConnectionCredential.None;
        return new BlobConnectionInfo(WithoutQuery(client.Uri), client.AccountName, credential);
    }

    /// <summary>
    /// The service client <paramref name="options"/> describe: from the connection string and its own credential,
    /// or, for <see cref="BlobCredentialMode.DefaultAzureCredential"/>, for the string's BlobEndpoint with tokens from
    /// <paramref name="credential"/> (a new Azure.Identity DefaultAzureCredential when null). Makes no request.
    /// </summary>
    public static BlobServiceClient CreateServiceClient(BlobStorageOptions options, BlobClientOptions clientOptions,
        TokenCredential? credential = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.ConnectionString);
        return options.Credential == BlobCredentialMode.DefaultAzureCredential
            ? new BlobServiceClient(Parse(options.ConnectionString).BlobEndpoint, credential ?? CreateDefaultAzureCredential(), clientOptions)
            : new BlobServiceClient(options.ConnectionString, clientOptions);
    }

    /// <summary>Azure.Identity's DefaultAzureCredential (environment, workload identity, managed identity, Azure CLI, …).</summary>
    public static TokenCredential CreateDefaultAzureCredential() => new AzureIdentity::Azure.Identity.DefaultAzureCredential();

    /// <summary><paramref name="uri"/> without its query (a SAS) and without a trailing '/'.</summary>
    public static Uri WithoutQuery(Uri uri) => new(uri.GetLeftPart(UriPartial.Path).TrimEnd('/'));

    /// <summary>Which setting makes the SDK refuse the string, when it can be told; null otherwise.</summary>
    private static string? Diagnose(Dictionary<string, string> settings)
    {
        string? Get(string name) => settings.GetValueOrDefault(name);
        if (Get("UseDevelopmentStorage") is { } dev)
            return dev.Equals("true", StringComparison.OrdinalIgnoreCase)
                ? "The connection string combines UseDevelopmentStorage=true with other settings; for Azurite on another port use " +
                  "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=…;BlobEndpoint=http://127.0.0.1:PORT/devstoreaccount1."
                : "The connection string's UseDevelopmentStorage has a value other than true, the only one accepted.";
        if (Get("AccountKey") is { } key)
        {
            if (!Convert.TryFromBase64String(key, new byte[key.Length], out _))
                return "The connection string's AccountKey is not valid base64; copy the key again from the storage account's access keys.";
            if (Get("SharedAccessSignature") is not null)
                return "The connection string has both AccountKey and SharedAccessSignature; keep one.";
            if (Get("AccountName") is null)
                return "The connection string has AccountKey but no AccountName; add AccountName=<storage account>.";
        }
        if (Get("DefaultEndpointsProtocol") is { } protocol && protocol.ToLowerInvariant() is not ("http" or "https"))
            return "The connection string's DefaultEndpointsProtocol is neither https nor http.";
        if (Get("SharedAccessSignature") is not null && Get("BlobEndpoint") is null)
            return "The connection string has a SharedAccessSignature but no BlobEndpoint; add BlobEndpoint=https://<account>.blob.core.windows.net.";
        if (Get("AccountName") is null && Get("BlobEndpoint") is null)
            return "The connection string has neither AccountName nor BlobEndpoint; add AccountName=<storage account> (or use UseDevelopmentStorage=true for Azurite).";
        if (Get("AccountKey") is null && Get("SharedAccessSignature") is null)
            return "The connection string has AccountName but neither AccountKey nor SharedAccessSignature; add one, or for token auth " +
                   "give the endpoint alone: BlobEndpoint=https://<account>.blob.core.windows.net.";
        return null;
    }

    /// <summary><paramref name="message"/> unless it repeats a value of the string (which could be a secret).</summary>
    private static string Safe(string message, Dictionary<string, string> settings) =>
        settings.Values.Any(v => v.Length >= 4 && message.Contains(v, StringComparison.Ordinal))
            ? "its message is withheld: it quotes the connection string"
            : message.TrimEnd('.');
}
