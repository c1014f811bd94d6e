using Azure.Core;
using Azure.Core.Pipeline;
using Dapo.Cluster.Blobs;

namespace Dapo.Cluster.Tests.Blobs;

/// <summary>
/// The SharedKey string-to-sign and signature for a known request, written out by hand from the "Authorize with
/// Shared Key" rules; the signature was computed separately (Python's hmac over the same string and the Azurite
/// key). That Azurite accepts our signatures and refuses a wrong key is tested in <see cref="AzuriteBlobStoreTests"/>.
/// </summary>
public sealed class SharedKeyAuthenticationPolicyTests
{
    private const string ExpectedStringToSign =
        "PUT\n" +
        "\n" + // Content-Encoding
        "\n" + // Content-Language
        "11\n" + // Content-Length
        "XrY7u+Ae7tCTyyK7j1rNww==\n" + // Content-MD5
        "application/octet-stream\n" + // Content-Type
        "\n" + // Date (x-ms-date is used)
        "\n\n\n\n" + // If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since
        "\n" + // Range
        "x-ms-client-request-id:ABC\n" + // x-ms- headers lowercased, sorted, values trimmed
        "x-ms-date:Sat, 21 Nov 2026 10:00:00 GMT\n" +
        "x-ms-meta-run:r1\n" +
        "x-ms-version:2021-08-06\n" +
        "/devstoreaccount1/devstoreaccount1/dapo/runs/r1/policy/3" + // account, then the path-style URL's path
        "\nblockid:YWJj+/==" + // query: names lowercased and sorted, values unescaped
        "\ncomp:block";

    private const string ExpectedSignature = "b+tG7e0hfnu4iaXiVTu7LB6PNaBoGWJYXSmBWVcZ5mM=";

    private static readonly DateTimeOffset Now = new(2026, 11, 21, 10, 0, 0, TimeSpan.Zero);

    private static HttpMessage KnownPutBlock()
    {
        var message = HttpPipelineBuilder.Build(new AzureBlobClientOptions()).CreateMessage();
        var request = message.Request;
        request.Method = RequestMethod.Put;
        request.Uri.Reset(new Uri("http://127.0.0.1:10000/devstoreaccount1/dapo/runs/r1/policy/3?comp=block&BlockId=YWJj%2B%2F%3D%3D"));
        request.Headers.SetValue("x-ms-version", "2021-08-06");
        request.Headers.SetValue("X-MS-Meta-Run", " r1 ");
        request.Headers.SetValue("x-ms-client-request-id", "ABC");
        request.Headers.SetValue("Content-Type", "application/octet-stream");
        request.Headers.SetValue("Content-MD5", "XrY7u+Ae7tCTyyK7j1rNww==");
        request.Content = RequestContent.Create("hello world"u8.ToArray());
        return message;
    }

    [Fact]
    public void String_to_sign_follows_the_specification()
    {
        using var message = KnownPutBlock();
        message.Request.Headers.SetValue("x-ms-date", "Sat, 21 Nov 2026 10:00:00 GMT");
        Assert.Equal(ExpectedStringToSign, SharedKeyAuthenticationPolicy.BuildStringToSign(message.Request, "devstoreaccount1"));
    }

    [Fact]
    public void The_policy_dates_and_signs_the_request()
    {
        using var message = KnownPutBlock();
        var policy = new SharedKeyAuthenticationPolicy("devstoreaccount1",
            Convert.FromBase64String(BlobConnectionString.DevelopmentAccountKey), new FixedTime(Now));

        policy.OnSendingRequest(message);

        Assert.True(message.Request.Headers.TryGetValue("x-ms-date", out var date));
        Assert.Equal("Sat, 21 Nov 2026 10:00:00 GMT", date);
        Assert.True(message.Request.Headers.TryGetValue("Authorization", out var authorization));
        Assert.Equal($"SharedKey devstoreaccount1:{ExpectedSignature}", authorization);
    }

    [Fact]
    public void Empty_content_signs_an_empty_length_and_several_query_values_are_joined_in_order()
    {
        using var message = HttpPipelineBuilder.Build(new AzureBlobClientOptions()).CreateMessage();
        message.Request.Method = RequestMethod.Get;
        message.Request.Uri.Reset(new Uri("https://acct.blob.core.windows.net/dapo?restype=container&comp=list&include=snapshots&include=metadata&prefix=runs%2Fr1%2F"));
        message.Request.Content = RequestContent.Create(ReadOnlyMemory<byte>.Empty);

        var lines = SharedKeyAuthenticationPolicy.BuildStringToSign(message.Request, "acct").Split('\n');

        Assert.Equal("GET", lines[0]);
        Assert.Equal("", lines[3]); // Content-Length 0 is signed as empty
        Assert.Equal(["/acct/dapo", "comp:list", "include:metadata,snapshots", "prefix:runs/r1/", "restype:container"], lines[12..]);
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
