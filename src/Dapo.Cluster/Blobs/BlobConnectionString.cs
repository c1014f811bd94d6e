namespace Dapo.Cluster.Blobs;

/// <summary>
/// The blob part of an Azure Storage connection string: where the blob service is and, for SharedKey auth, the
/// account name and key. <see cref="ToString"/> never shows the key.
/// </summary>
/// <remarks>
/// Accepted forms:
/// <list type="bullet">
/// <item><c>DefaultEndpointsProtocol=https;AccountName=NAME;AccountKey=KEY;EndpointSuffix=core.windows.net</c>
/// (protocol and suffix optional, defaulting to https and core.windows.net);</item>
/// <item>the same with <c>BlobEndpoint=URL</c>, which wins over the derived endpoint (Azurite on any port:
/// <c>DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=…;BlobEndpoint=http://127.0.0.1:PORT/devstoreaccount1</c>);</item>
/// <item><c>UseDevelopmentStorage=true</c>, optionally with <c>DevelopmentStorageProxyUri=http://HOST</c>: Azurite's
/// well-known account on port 10000;</item>
/// <item>without AccountKey, for token auth: the endpoint alone (AccountName or BlobEndpoint).</item>
/// </list>
/// Keys are case-insensitive; keys of the other services (QueueEndpoint, TableEndpoint, FileEndpoint, …) are
/// ignored; unknown keys, duplicates and SAS tokens are errors. Error messages name the key, never its value.
/// </remarks>
public sealed class BlobConnectionString
{
    /// <summary>Azurite's (and the old storage emulator's) fixed account; it is public, not a secret.</summary>
    public const string DevelopmentAccountName = "devstoreaccount1";

    /// <summary>The fixed key of <see cref="DevelopmentAccountName"/>, published in Azurite's documentation.</summary>
    public const string DevelopmentAccountKey =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private static readonly HashSet<string> KnownKeys = new(StringComparer.OrdinalIgnoreCase)
    {
        "DefaultEndpointsProtocol", "AccountName", "AccountKey", "EndpointSuffix", "BlobEndpoint",
        "UseDevelopmentStorage", "DevelopmentStorageProxyUri", "SharedAccessSignature",
    };

    // Other services' settings that a portal connection string carries; they do not concern blobs.
    private static readonly HashSet<string> OtherServiceKeys = new(StringComparer.OrdinalIgnoreCase)
    {
        "QueueEndpoint", "TableEndpoint", "FileEndpoint", "BlobSecondaryEndpoint", "QueueSecondaryEndpoint",
        "TableSecondaryEndpoint", "FileSecondaryEndpoint",
    };

    private BlobConnectionString(Uri blobEndpoint, string? accountName, byte[]? accountKey)
    {
        BlobEndpoint = blobEndpoint;
        AccountName = accountName;
        AccountKey = accountKey;
    }

    /// <summary>The blob service's URL, without a trailing '/': containers are <c>{BlobEndpoint}/{container}</c>.</summary>
    public Uri BlobEndpoint { get; }

    /// <summary>The storage account's name, when the string gives one.</summary>
    public string? AccountName { get; }

    public bool HasAccountKey => AccountKey is not null;

    /// <summary>The decoded account key; internal so it is never serialized or printed by accident.</summary>
    internal byte[]? AccountKey { get; }

    public override string ToString() =>
        $"BlobEndpoint={BlobEndpoint};AccountName={AccountName ?? "(none)"};AccountKey={(HasAccountKey ? "***" : "(none)")}";

    /// <summary>Parses <paramref name="connectionString"/>; throws <see cref="FormatException"/> naming the bad or missing key.</summary>
    public static BlobConnectionString Parse(string connectionString)
    {
        var settings = Split(connectionString);
        foreach (var name in settings.Keys)
        {
            if (!KnownKeys.Contains(name) && !OtherServiceKeys.Contains(name))
            {
                // A long "key" is more likely a pasted secret than a misspelt setting name: do not echo it.
                var shown = name.Length <= 32 ? $"'{name}'" : $"of {name.Length} characters (not shown)";
                throw new FormatException(
                    $"The connection string has an unknown key {shown}; known keys: {string.Join(", ", KnownKeys)}.");
            }
        }
        if (settings.ContainsKey("SharedAccessSignature"))
            throw new FormatException(
                "The connection string has a SharedAccessSignature; SAS auth is not supported: use AccountKey (SharedKey) or token auth.");

        if (settings.TryGetValue("UseDevelopmentStorage", out var useDev))
            return ParseDevelopment(settings, useDev);
        if (settings.ContainsKey("DevelopmentStorageProxyUri"))
            throw new FormatException("The connection string has DevelopmentStorageProxyUri without UseDevelopmentStorage=true; add it or remove the proxy.");

        settings.TryGetValue("AccountName", out var accountName);
        if (accountName is not null && accountName.Length == 0)
            throw new FormatException("The connection string's AccountName is empty; set it to the storage account's name.");
        var key = settings.TryGetValue("AccountKey", out var keyText) ? DecodeKey(keyText) : null;
        if (key is not null && accountName is null)
            throw new FormatException("The connection string has AccountKey but no AccountName; add AccountName=<storage account>.");

        Uri endpoint;
        if (settings.TryGetValue("BlobEndpoint", out var blobEndpoint))
        {
            endpoint = ParseEndpoint(blobEndpoint, "BlobEndpoint");
        }
        else
        {
            if (accountName is null)
                throw new FormatException(
                    "The connection string has neither AccountName nor BlobEndpoint; add AccountName=<storage account> (or use UseDevelopmentStorage=true for Azurite).");
            var protocol = settings.GetValueOrDefault("DefaultEndpointsProtocol", "https").ToLowerInvariant();
            if (protocol is not ("http" or "https"))
                throw new FormatException($"The connection string's DefaultEndpointsProtocol is '{protocol}'; use https (or http for Azurite).");
            var suffix = settings.GetValueOrDefault("EndpointSuffix", "core.windows.net").Trim('.');
            if (suffix.Length == 0)
                throw new FormatException("The connection string's EndpointSuffix is empty; remove it or set it (core.windows.net).");
            endpoint = ParseEndpoint($"{protocol}://{accountName}.blob.{suffix}", "AccountName/EndpointSuffix");
        }
        return new BlobConnectionString(endpoint, accountName, key);
    }

    private static BlobConnectionString ParseDevelopment(Dictionary<string, string> settings, string useDev)
    {
        if (!useDev.Equals("true", StringComparison.OrdinalIgnoreCase))
            throw new FormatException($"The connection string's UseDevelopmentStorage is '{useDev}'; the only accepted value is true.");
        var extra = settings.Keys.FirstOrDefault(k =>
            !k.Equals("UseDevelopmentStorage", StringComparison.OrdinalIgnoreCase)
            && !k.Equals("DevelopmentStorageProxyUri", StringComparison.OrdinalIgnoreCase));
        if (extra is not null)
            throw new FormatException(
                $"The connection string combines UseDevelopmentStorage=true with '{extra}'; for Azurite on another port use " +
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=…;BlobEndpoint=http://127.0.0.1:PORT/devstoreaccount1.");
        var proxy = settings.TryGetValue("DevelopmentStorageProxyUri", out var proxyText)
            ? ParseEndpoint(proxyText, "DevelopmentStorageProxyUri")
            : new Uri("http://127.0.0.1");
        var endpoint = new UriBuilder(proxy.Scheme, proxy.Host, 10000, DevelopmentAccountName).Uri;
        return new BlobConnectionString(Trim(endpoint), DevelopmentAccountName, Convert.FromBase64String(DevelopmentAccountKey));
    }

    private static Dictionary<string, string> Split(string connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString))
            throw new FormatException("The connection string is empty; use AccountName=…;AccountKey=… or UseDevelopmentStorage=true.");
        var settings = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var segments = connectionString.Split(';');
        for (var i = 0; i < segments.Length; i++)
        {
            var segment = segments[i].Trim();
            if (segment.Length == 0)
                continue;
            // Split at the first '=' only: base64 keys end in '='. The segment itself is never shown: it may be a key.
            var eq = segment.IndexOf('=');
            var key = eq > 0 ? segment[..eq].Trim() : "";
            if (!ConnectionStrings.IsSettingName(key))
                throw new FormatException($"The connection string's segment {i + 1} is not of the form Key=Value.");
            if (!settings.TryAdd(key, segment[(eq + 1)..].Trim()))
                throw new FormatException($"The connection string sets '{key}' twice; keep one.");
        }
        if (settings.Count == 0)
            throw new FormatException("The connection string has no settings; use AccountName=…;AccountKey=… or UseDevelopmentStorage=true.");
        return settings;
    }

    private static byte[] DecodeKey(string keyText)
    {
        if (keyText.Length == 0)
            throw new FormatException("The connection string's AccountKey is empty; copy the key from the storage account's access keys.");
        var bytes = new byte[keyText.Length];
        if (!Convert.TryFromBase64String(keyText, bytes, out var written))
            throw new FormatException("The connection string's AccountKey is not valid base64; copy the key again from the storage account's access keys.");
        return bytes[..written];
    }

    private static Uri ParseEndpoint(string text, string key)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new FormatException($"The connection string's {key} is not an absolute http or https URL.");
        if (!string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.UserInfo))
            throw new FormatException($"The connection string's {key} has a query or user info; give the plain service URL.");
        return Trim(uri);
    }

    private static Uri Trim(Uri uri) => new(uri.GetLeftPart(UriPartial.Path).TrimEnd('/'));
}
