using Dapo.Cluster.Blobs;

namespace Dapo.Cluster.Tests.Blobs;

public sealed class BlobConnectionStringTests
{
    private const string Key = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="; // base64("secret-key-for-tests-only")

    [Fact]
    public void A_portal_connection_string_gives_the_account_endpoint_and_key()
    {
        var c = BlobConnectionString.Parse(
            $"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={Key};EndpointSuffix=core.windows.net");
        Assert.Equal(new Uri("https://acct.blob.core.windows.net"), c.BlobEndpoint);
        Assert.Equal("acct", c.AccountName);
        Assert.Equal(Convert.FromBase64String(Key), c.AccountKey);
    }

    [Fact]
    public void Protocol_and_suffix_default_to_https_and_the_public_cloud_and_other_services_are_ignored()
    {
        var c = BlobConnectionString.Parse($" accountname = acct ; ACCOUNTKEY={Key};QueueEndpoint=https://q.example;");
        Assert.Equal(new Uri("https://acct.blob.core.windows.net"), c.BlobEndpoint);
        var china = BlobConnectionString.Parse($"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={Key};EndpointSuffix=core.chinacloudapi.cn");
        Assert.Equal(new Uri("http://acct.blob.core.chinacloudapi.cn"), china.BlobEndpoint);
    }

    [Fact]
    public void BlobEndpoint_wins_and_loses_its_trailing_slash()
    {
        var c = BlobConnectionString.Parse($"AccountName=devstoreaccount1;AccountKey={Key};BlobEndpoint=http://127.0.0.1:41234/devstoreaccount1/");
        Assert.Equal("http://127.0.0.1:41234/devstoreaccount1", c.BlobEndpoint.ToString().TrimEnd('/'));
        Assert.Equal("/devstoreaccount1", c.BlobEndpoint.AbsolutePath);
    }

    [Fact]
    public void UseDevelopmentStorage_is_azurites_well_known_account_on_port_10000()
    {
        var c = BlobConnectionString.Parse("UseDevelopmentStorage=true");
        Assert.Equal(new Uri("http://127.0.0.1:10000/devstoreaccount1"), c.BlobEndpoint);
        Assert.Equal("devstoreaccount1", c.AccountName);
        Assert.Equal(Convert.FromBase64String(BlobConnectionString.DevelopmentAccountKey), c.AccountKey);

        var proxied = BlobConnectionString.Parse("UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://azurite.local");
        Assert.Equal(new Uri("http://azurite.local:10000/devstoreaccount1"), proxied.BlobEndpoint);
    }

    [Fact]
    public void Without_a_key_the_string_only_locates_the_account_for_token_auth()
    {
        var c = BlobConnectionString.Parse("AccountName=acct");
        Assert.False(c.HasAccountKey);
        Assert.Equal(new Uri("https://acct.blob.core.windows.net"), c.BlobEndpoint);
        Assert.False(BlobConnectionString.Parse("BlobEndpoint=https://acct.blob.core.windows.net").HasAccountKey);
    }

    [Fact]
    public void ToString_hides_the_key()
    {
        var text = BlobConnectionString.Parse($"AccountName=acct;AccountKey={Key}").ToString();
        Assert.DoesNotContain(Key, text);
        Assert.Contains("AccountKey=***", text);
    }

    public static TheoryData<string, string> Bad => new()
    {
        { "", "is empty" },
        { " ; ", "has no settings" },
        { "AccountName=acct;AccountKey=!!not-base64!!", "AccountKey is not valid base64" },
        { "AccountName=acct;AccountKey=", "AccountKey is empty" },
        { $"AccountKey={Key}", "AccountKey but no AccountName" },
        { "DefaultEndpointsProtocol=https", "neither AccountName nor BlobEndpoint" },
        { "AccountName=", "AccountName is empty" },
        { "AccountName=a;Acountkey=x", "unknown key 'Acountkey'" },
        { "AccountName=a;accountname=b", "sets 'accountname' twice" },
        { "AccountName=a;SharedAccessSignature=sv=2021&sig=topsecret", "SAS auth is not supported" },
        { "UseDevelopmentStorage=false", "only accepted value is true" },
        { "UseDevelopmentStorage=true;AccountName=x", "combines UseDevelopmentStorage=true with 'AccountName'" },
        { "DevelopmentStorageProxyUri=http://x", "without UseDevelopmentStorage=true" },
        { "AccountName=a;BlobEndpoint=ftp://x", "BlobEndpoint is not an absolute http or https URL" },
        { "AccountName=a;BlobEndpoint=https://x/?sig=topsecret", "BlobEndpoint has a query" },
        { "DefaultEndpointsProtocol=ftp;AccountName=a", "DefaultEndpointsProtocol is 'ftp'" },
        { $"AccountName=a;{BlobConnectionString.DevelopmentAccountKey}", "segment 2 is not of the form Key=Value" },
        { $"AccountName=a;{Key}", "unknown key of 34 characters (not shown)" },
    };

    [Theory]
    [MemberData(nameof(Bad))]
    public void Bad_strings_are_rejected_naming_the_key_but_never_its_value(string connectionString, string expected)
    {
        var e = Assert.Throws<FormatException>(() => BlobConnectionString.Parse(connectionString));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain("!!not-base64!!", e.Message);
        Assert.DoesNotContain("topsecret", e.Message);
        Assert.DoesNotContain(Key.TrimEnd('='), e.Message);
        Assert.DoesNotContain(BlobConnectionString.DevelopmentAccountKey[..20], e.Message);
    }
}
