using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Azure.Core;
using Azure.Core.Pipeline;

namespace Dapo.Cluster.Blobs;

/// <summary>
/// Signs each request (each try: the date changes) with the storage account key, as "Authorize with Shared Key"
/// specifies for the Blob service (version 2009-09-19 and later):
/// <c>Authorization: SharedKey {account}:{base64(HMAC-SHA256(key, UTF-8(StringToSign)))}</c>.
/// </summary>
/// <seealso href="https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key"/>
internal sealed class SharedKeyAuthenticationPolicy : HttpPipelineSynchronousPolicy
{
    private readonly string _accountName;
    private readonly byte[] _accountKey;
    private readonly TimeProvider _time;

    public SharedKeyAuthenticationPolicy(string accountName, byte[] accountKey, TimeProvider? time = null)
    {
        _accountName = accountName;
        _accountKey = accountKey;
        _time = time ?? TimeProvider.System;
    }

    public override void OnSendingRequest(HttpMessage message)
    {
        var request = message.Request;
        // x-ms-date instead of Date: it is signed among the x-ms- headers, and the Date line stays empty.
        request.Headers.SetValue("x-ms-date", _time.GetUtcNow().ToString("R", CultureInfo.InvariantCulture));
        var signature = Sign(BuildStringToSign(request, _accountName), _accountKey);
        request.Headers.SetValue("Authorization", $"SharedKey {_accountName}:{signature}");
    }

    internal static string Sign(string stringToSign, byte[] key) =>
        Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(stringToSign)));

    /// <summary>
    /// VERB, the eleven standard headers (Content-Length empty when 0), then the canonicalized x-ms- headers and the
    /// canonicalized resource, each line ending in '\n' except the last.
    /// </summary>
    internal static string BuildStringToSign(Request request, string accountName)
    {
        string Header(string name) => request.Headers.TryGetValue(name, out var value) ? value : "";

        var contentLength = Header("Content-Length");
        if (contentLength.Length == 0 && request.Content is not null && request.Content.TryComputeLength(out var length))
            contentLength = length.ToString(CultureInfo.InvariantCulture);
        if (contentLength == "0")
            contentLength = "";

        var s = new StringBuilder();
        s.Append(request.Method.Method.ToUpperInvariant()).Append('\n');
        s.Append(Header("Content-Encoding")).Append('\n');
        s.Append(Header("Content-Language")).Append('\n');
        s.Append(contentLength).Append('\n');
        s.Append(Header("Content-MD5")).Append('\n');
        s.Append(Header("Content-Type")).Append('\n');
        s.Append(Header("Date")).Append('\n');
        s.Append(Header("If-Modified-Since")).Append('\n');
        s.Append(Header("If-Match")).Append('\n');
        s.Append(Header("If-None-Match")).Append('\n');
        s.Append(Header("If-Unmodified-Since")).Append('\n');
        s.Append(Header("Range")).Append('\n');
        AppendCanonicalizedHeaders(s, request);
        AppendCanonicalizedResource(s, request.Uri.ToUri(), accountName);
        return s.ToString();
    }

    // Every x-ms- header, name lowercased, sorted ordinally, "name:value\n" with the value trimmed.
    private static void AppendCanonicalizedHeaders(StringBuilder s, Request request)
    {
        var headers = request.Headers
            .Where(h => h.Name.StartsWith("x-ms-", StringComparison.OrdinalIgnoreCase))
            .Select(h => (Name: h.Name.ToLowerInvariant(), Value: h.Value.Trim()))
            .OrderBy(h => h.Name, StringComparer.Ordinal);
        foreach (var (name, value) in headers)
            s.Append(name).Append(':').Append(value).Append('\n');
    }

    // "/{account}{escaped path}", then per query parameter, sorted by lowercased name: "\n{name}:{v1,v2,…}" with
    // the values unescaped and sorted. With a path-style endpoint (Azurite) the account appears twice; that is right.
    private static void AppendCanonicalizedResource(StringBuilder s, Uri uri, string accountName)
    {
        s.Append('/').Append(accountName);
        s.Append(uri.AbsolutePath.Length > 0 ? uri.AbsolutePath : "/");
        var query = uri.Query.TrimStart('?');
        if (query.Length == 0)
            return;
        var parameters = query.Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(p =>
            {
                var eq = p.IndexOf('=');
                return eq < 0
                    ? (Name: Uri.UnescapeDataString(p).ToLowerInvariant(), Value: "")
                    : (Name: Uri.UnescapeDataString(p[..eq]).ToLowerInvariant(), Value: Uri.UnescapeDataString(p[(eq + 1)..]));
            })
            .GroupBy(p => p.Name, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal);
        foreach (var group in parameters)
        {
            var values = group.Select(p => p.Value).OrderBy(v => v, StringComparer.Ordinal);
            s.Append('\n').Append(group.Key).Append(':').Append(string.Join(',', values));
        }
    }
}
