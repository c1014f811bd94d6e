using Dapo.Grains.Blobs;

namespace Dapo.Grains.Tests.Blobs;

/// <summary>Connection strings as Azure.Storage.Blobs reads them, and our messages when it refuses one.</summary>
public sealed class AzureBlobConnectionTests
{
    private const string Key = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="; // base64("secret-key-for-tests-only")
    private const string Signature = "c2lnbmF0dXJlLWZvci10ZXN0cw%3D%3D";
    private const string Sas = $"sv=2025-01-05&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00%3A00%3A00Z&sig={Signature}";

    public static TheoryData<string, string, string, BlobConnectionCredential> Forms => new()
    {
        // The portal's form, and the same with protocol and suffix left to their defaults.
        { $"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={Key};EndpointSuffix=core.windows.net",
            "https://acct.blob.core.windows.net", "acct", BlobConnectionCredential.AccountKey },
        { $"AccountName=acct;AccountKey={Key};QueueEndpoint=https://q.example;TableEndpoint=https://t.example;",
            "https://acct.blob.core.windows.net", "acct", BlobConnectionCredential.AccountKey },
        { $"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={Key};EndpointSuffix=core.chinacloudapi.cn",
            "http://acct.blob.core.chinacloudapi.cn", "acct", BlobConnectionCredential.AccountKey },
        // An explicit BlobEndpoint wins over the derived one (Azurite on any port).
        { $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={Key};BlobEndpoint=http://127.0.0.1:41234/devstoreaccount1/",
            "http://127.0.0.1:41234/devstoreaccount1", "devstoreaccount1", BlobConnectionCredential.AccountKey },
        // SAS.
        { $"BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature={Sas}",
            "https://acct.blob.core.windows.net", "acct", BlobConnectionCredential.SharedAccessSignature },
        { $"BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=?{Sas}",
            "https://acct.blob.core.windows.net", "acct", BlobConnectionCredential.SharedAccessSignature },
        // Azurite's well-known account, on its default port or behind a proxy host.
        { "UseDevelopmentStorage=true", "http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1", BlobConnectionCredential.AccountKey },
        { "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://azurite.local",
            "http://azurite.local:10000/devstoreaccount1", "devstoreaccount1", BlobConnectionCredential.AccountKey },
        // The endpoint alone, for token auth.
        { "BlobEndpoint=https://acct.blob.core.windows.net", "https://acct.blob.core.windows.net", "acct", BlobConnectionCredential.None },
    };

    [Theory]
    [MemberData(nameof(Forms))]
    public void Every_standard_form_gives_the_endpoint_account_and_credential(string connectionString, string endpoint,
        string account, BlobConnectionCredential credential)
    {
        var info = AzureBlobConnection.Parse(connectionString);
        Assert.Equal(new Uri(endpoint), info.BlobEndpoint);
        Assert.Equal(account, info.AccountName);
        Assert.Equal(credential, info.Credential);
        Assert.DoesNotContain(Signature, info.ToString());
        Assert.DoesNotContain(Key, info.ToString());
    }

    public static TheoryData<string, string> Bad => new()
    {
        { "", "is empty" },
        { " ; ", "has no settings" },
        { "AccountName=acct;AccountKey=!!not-base64!!", "AccountKey is not valid base64" },
        { "AccountName=acct;AccountKey=", "AccountKey is empty" },
        { $"AccountKey={Key}", "AccountKey but no AccountName" },
        { "DefaultEndpointsProtocol=https", "neither AccountName nor BlobEndpoint" },
        { "AccountName=acct", "neither AccountKey nor SharedAccessSignature; add one, or for token auth give the endpoint alone" },
        { "AccountName=a;Acountkey=x", "unknown key 'Acountkey'" },
        { "AccountName=a;accountname=b", "sets 'accountname' twice" },
        { $"AccountName=a;AccountKey={Key};SharedAccessSignature=sv=2021&sig=topsecret", "both AccountKey and SharedAccessSignature" },
        { "SharedAccessSignature=sv=2021&sig=topsecret", "SharedAccessSignature but no BlobEndpoint" },
        { "UseDevelopmentStorage=false", "UseDevelopmentStorage has a value other than true" },
        { "UseDevelopmentStorage=true;AccountName=x", "combines UseDevelopmentStorage=true with other settings" },
        { $"AccountName=a;AccountKey={Key};BlobEndpoint=ftp://x", "BlobEndpoint is not an absolute http or https URL" },
        { "BlobEndpoint=https://x/?sv=1&sig=topsecret", "BlobEndpoint has a query" },
        { $"DefaultEndpointsProtocol=ftp;AccountName=a;AccountKey={Key}", "DefaultEndpointsProtocol is neither https nor http" },
        { $"AccountName=a;{AzuriteKey}", "segment 2 is not of the form Key=Value" },
        { $"AccountName=a;{Key}", "unknown key of 34 characters (not shown)" },
    };

    private const string AzuriteKey = Dapo.Testing.AzuriteProcess.AccountKey;

    [Theory]
    [MemberData(nameof(Bad))]
    public void Bad_strings_are_refused_naming_the_setting_but_never_its_value(string connectionString, string expected)
    {
        var e = Assert.Throws<FormatException>(() => AzureBlobConnection.Parse(connectionString));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain("!!not-base64!!", e.ToString());
        Assert.DoesNotContain("topsecret", e.ToString());
        Assert.DoesNotContain(Key.TrimEnd('='), e.ToString());
        Assert.DoesNotContain(AzuriteKey[..20], e.ToString());
    }

    [Theory]
    [InlineData("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc/def==;EndpointSuffix=core.windows.net",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;EndpointSuffix=core.windows.net")]
    [InlineData("BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=2021&sig=abc",
        "BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=***")]
    [InlineData("BlobEndpoint=https://a.blob.core.windows.net/?sv=2021&sig=abc%3D&sp=r",
        "BlobEndpoint=https://a.blob.core.windows.net/?sv=2021&sig=***&sp=r")]
    [InlineData("Host=127.0.0.1;Port=5432;Username=dapo;Password=hunter2;Database=dapo",
        "Host=127.0.0.1;Port=5432;Username=dapo;Password=***;Database=dapo")]
    [InlineData("Server=x;PWD=hunter2", "Server=x;PWD=***")]
    [InlineData("AccountName=acct;abc/def==", "AccountName=acct;***")] // a pasted key without its name
    [InlineData("UseDevelopmentStorage=true", "UseDevelopmentStorage=true")]
    [InlineData("", "")]
    [InlineData(null, "")]
    public void Redaction_masks_keys_passwords_and_signatures_and_keeps_everything_else(string? input, string expected) =>
        Assert.Equal(expected, ConnectionStrings.Redact(input));
}
