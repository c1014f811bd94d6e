using Dapo.Cluster.Blobs;

namespace Dapo.Cluster.Tests.Blobs;

public sealed class ConnectionStringsTests
{
    [Theory]
    [InlineData("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc/def==;EndpointSuffix=core.windows.net",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;EndpointSuffix=core.windows.net")]
    [InlineData("BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=2021&sig=abc",
        "BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=***")]
    [InlineData("Host=127.0.0.1;Port=5432;Username=dapo;Password=hunter2;Database=dapo",
        "Host=127.0.0.1;Port=5432;Username=dapo;Password=***;Database=dapo")]
    [InlineData("Server=x;PWD=hunter2", "Server=x;PWD=***")]
    [InlineData("AccountName=acct;abc/def==", "AccountName=acct;***")] // a pasted key without its name
    [InlineData("UseDevelopmentStorage=true", "UseDevelopmentStorage=true")]
    [InlineData("", "")]
    [InlineData(null, "")]
    public void Secrets_are_masked_and_everything_else_kept(string? input, string expected) =>
        Assert.Equal(expected, ConnectionStrings.Redact(input));
}
