using Azure.Core;
using Dapo.Grains.Blobs;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Dapo.Grains.Tests.Blobs;

/// <summary>Options validation, the factory and the hosting registration.</summary>
public sealed class BlobStorageOptionsTests
{
    private const string Key = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==";
    private const string SharedKeyString = $"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={Key}";

    private static BlobStorageOptions Azure(string? connectionString = SharedKeyString,
        BlobCredentialMode credential = BlobCredentialMode.SharedKey) =>
        new() { Kind = BlobStoreKind.Azure, ConnectionString = connectionString, Credential = credential };

    private static List<string> Failures(BlobStorageOptions options) => BlobStorageOptionsValidator.Failures(options).ToList();

    [Fact]
    public void Valid_settings_pass()
    {
        Assert.Empty(Failures(new BlobStorageOptions { LocalRoot = "runs/blobs" }));
        Assert.Empty(Failures(Azure()));
        Assert.Empty(Failures(Azure("UseDevelopmentStorage=true")));
        Assert.Empty(Failures(Azure("BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=2025-01-05&sig=abc")));
        Assert.Empty(Failures(Azure("BlobEndpoint=https://acct.blob.core.windows.net", BlobCredentialMode.DefaultAzureCredential)));
    }

    public static TheoryData<BlobStorageOptions, string> Invalid => new()
    {
        { new BlobStorageOptions { LocalRoot = " " }, "Blobs:LocalRoot is empty; set it to the directory" },
        { Azure(null), "Blobs:ConnectionString is empty; set it to the storage account's connection string" },
        { Azure("AccountName=acct;AccountKey=%%%"), "Blobs:ConnectionString is invalid: The connection string's AccountKey is not valid base64" },
        { Azure("BlobEndpoint=https://acct.blob.core.windows.net"), "Blobs:ConnectionString has neither AccountKey nor SharedAccessSignature, one of which Blobs:Credential=SharedKey needs" },
        { Azure("AccountName=acct", BlobCredentialMode.DefaultAzureCredential), "Blobs:ConnectionString is invalid: The connection string has AccountName but neither AccountKey nor SharedAccessSignature" },
        { Azure(SharedKeyString, BlobCredentialMode.DefaultAzureCredential), "has an AccountKey but Blobs:Credential is DefaultAzureCredential; remove it" },
        { Azure("BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=1&sig=abc", BlobCredentialMode.DefaultAzureCredential), "has a SharedAccessSignature but Blobs:Credential is DefaultAzureCredential" },
        { Azure("BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1", BlobCredentialMode.DefaultAzureCredential), "token auth (Blobs:Credential=DefaultAzureCredential) needs https" },
        { new BlobStorageOptions { Kind = BlobStoreKind.Azure, ConnectionString = SharedKeyString, Container = "Dapo_Runs" }, "Blobs:Container 'Dapo_Runs' may hold only lowercase letters" },
        { new BlobStorageOptions { Kind = BlobStoreKind.Azure, ConnectionString = SharedKeyString, Container = "ab" }, "Blobs:Container 'ab' has 2 characters where 3 to 63 are allowed" },
        { new BlobStorageOptions { Kind = BlobStoreKind.Azure, ConnectionString = SharedKeyString, MaxRetries = -1 }, "Blobs:MaxRetries is -1; set 0 to 20" },
        { new BlobStorageOptions { Kind = BlobStoreKind.Azure, ConnectionString = SharedKeyString, RetryDelay = TimeSpan.FromMinutes(1) }, "Blobs:RetryDelay is 00:01:00; set it above zero and at most Blobs:MaxRetryDelay" },
        { new BlobStorageOptions { Kind = BlobStoreKind.Azure, ConnectionString = SharedKeyString, BlockSizeBytes = 0 }, "Blobs:BlockSizeBytes is 0; set 1 to" },
        { new BlobStorageOptions { Kind = BlobStoreKind.Azure, ConnectionString = SharedKeyString, ListPageSize = 6000 }, "Blobs:ListPageSize is 6000; set 1 to 5000" },
        { new BlobStorageOptions { Kind = BlobStoreKind.Azure, ConnectionString = SharedKeyString, MaxConcurrency = 0 }, "Blobs:MaxConcurrency is 0; set 1 to 64" },
        { new BlobStorageOptions { Kind = (BlobStoreKind)7 }, "Blobs:Kind is '7'; set it to Local or Azure" },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Each_problem_names_the_option_and_the_fix_without_the_key(BlobStorageOptions options, string expected)
    {
        var failures = Failures(options);
        Assert.Contains(failures, f => f.Contains(expected, StringComparison.Ordinal));
        Assert.All(failures, f => Assert.DoesNotContain(Key, f));
        Assert.Equal(failures, new BlobStorageOptionsValidator().Validate(null, options).Failures ?? []);
    }

    [Fact]
    public void ToString_redacts_the_connection_string()
    {
        var text = Azure().ToString();
        Assert.Contains("AccountKey=***", text);
        Assert.DoesNotContain(Key, text);
    }

    [Fact]
    public void The_options_set_the_SDK_clients_retries_timeout_and_transfer_sizes()
    {
        var options = new BlobStorageOptions
        {
            MaxRetries = 3, RetryDelay = TimeSpan.FromSeconds(1), MaxRetryDelay = TimeSpan.FromSeconds(7), NetworkTimeout = TimeSpan.FromSeconds(9),
            SingleUploadLimitBytes = 1000, BlockSizeBytes = 2000, MaxConcurrency = 6, ListPageSize = 10,
        };
        var client = options.ToClientOptions();
        Assert.Equal((RetryMode.Exponential, 3, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(7), TimeSpan.FromSeconds(9)),
            (client.Retry.Mode, client.Retry.MaxRetries, client.Retry.Delay, client.Retry.MaxDelay, client.Retry.NetworkTimeout));
        var transfer = options.ToTransferOptions().ToStorageTransferOptions();
        Assert.Equal((1000, 2000, 6), (transfer.InitialTransferSize, transfer.MaximumTransferSize, transfer.MaximumConcurrency));
        Assert.Equal(10, options.ToTransferOptions().ListPageSize);
    }

    [Fact]
    public void The_factory_builds_the_store_the_options_describe_without_touching_the_network()
    {
        var local = Assert.IsType<LocalDirectoryBlobStore>(BlobStoreFactory.Create(new BlobStorageOptions { LocalRoot = "some/dir" }));
        Assert.Equal(Path.GetFullPath("some/dir"), local.Root);

        var azure = Assert.IsType<AzureBlobStore>(BlobStoreFactory.Create(Azure()));
        Assert.Equal(new Uri("https://acct.blob.core.windows.net/dapo"), azure.ContainerUri);
        Assert.DoesNotContain(Key, azure.Description);

        const string sas = "sv=2025-01-05&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00%3A00%3A00Z&sig=c2lnbmF0dXJl";
        var withSas = Assert.IsType<AzureBlobStore>(BlobStoreFactory.Create(Azure($"BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature={sas}")));
        Assert.Equal("Azure Blob Storage container https://acct.blob.core.windows.net/dapo", withSas.Description);

        var development = Assert.IsType<AzureBlobStore>(BlobStoreFactory.Create(Azure("UseDevelopmentStorage=true")));
        Assert.Equal(new Uri("http://127.0.0.1:10000/devstoreaccount1/dapo"), development.ContainerUri);

        // Token auth: Azurite over plain http cannot take tokens, so this checks the client that is built (no request
        // is made); AzureBlobStoreHttpTests checks that its requests carry the bearer token.
        var token = Assert.IsType<AzureBlobStore>(BlobStoreFactory.Create(
            Azure("BlobEndpoint=https://acct.blob.core.windows.net", BlobCredentialMode.DefaultAzureCredential),
            credential: new StaticTokenCredential("t")));
        Assert.Equal(new Uri("https://acct.blob.core.windows.net/dapo"), token.ContainerUri);
        var defaultCredential = Assert.IsType<AzureBlobStore>(BlobStoreFactory.Create(
            Azure("BlobEndpoint=https://acct.blob.core.windows.net", BlobCredentialMode.DefaultAzureCredential)));
        Assert.Equal("dapo", defaultCredential.Container);
    }

    [Fact]
    public void The_factory_refuses_invalid_options_listing_every_problem()
    {
        var options = new BlobStorageOptions { Kind = BlobStoreKind.Azure, Container = "X", MaxRetries = 99 };
        var e = Assert.Throws<OptionsValidationException>(() => BlobStoreFactory.Create(options));
        Assert.Equal(3, e.Failures.Count());
        Assert.Contains("Blobs:Container", e.Message);
        Assert.Contains("Blobs:ConnectionString", e.Message);
        Assert.Contains("Blobs:MaxRetries", e.Message);
    }

    [Fact]
    public void DefaultAzureCredential_comes_from_the_Azure_Identity_package()
    {
        var credential = AzureBlobConnection.CreateDefaultAzureCredential();
        Assert.Equal("Azure.Identity.DefaultAzureCredential", credential.GetType().FullName);
        Assert.Equal("Azure.Identity", credential.GetType().Assembly.GetName().Name);
    }

    [Fact]
    public void The_hosting_registration_binds_validates_and_creates_the_store()
    {
        using var good = Provider(new() { ["Blobs:Kind"] = "Local", ["Blobs:LocalRoot"] = "x/blobs" });
        Assert.IsType<LocalDirectoryBlobStore>(good.GetRequiredService<IBlobStore>());

        using var bad = Provider(new() { ["Blobs:Kind"] = "Azure", ["Blobs:ConnectionString"] = "AccountName=acct" });
        var e = Assert.Throws<OptionsValidationException>(() => bad.GetRequiredService<IBlobStore>());
        Assert.Contains("Blobs:ConnectionString is invalid", e.Message);

        using var misspelt = Provider(new() { ["Blobs:LocalRot"] = "x" });
        var unknown = Assert.Throws<InvalidOperationException>(() => misspelt.GetRequiredService<IOptions<BlobStorageOptions>>().Value);
        Assert.Contains("LocalRot", unknown.Message);
    }

    private static ServiceProvider Provider(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        return new ServiceCollection().AddLogging().AddDapoBlobStorage(configuration.GetSection("Blobs")).BuildServiceProvider();
    }
}
