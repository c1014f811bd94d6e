using System.Globalization;
using System.Text;
using System.Xml;
using System.Xml.Linq;

namespace Dapo.Cluster.Blobs;

/// <summary>The XML bodies of the Blob REST API that <see cref="AzureBlobStore"/> reads and writes.</summary>
internal static class AzureBlobXml
{
    /// <summary>One page of List Blobs: the blobs and the marker of the next page (null on the last page).</summary>
    public sealed record ListPage(IReadOnlyList<BlobInfo> Blobs, string? NextMarker);

    /// <summary>
    /// Parses <c>EnumerationResults/Blobs/Blob</c> (Name, Properties/Content-Length, Properties/Last-Modified) and
    /// <c>NextMarker</c>.
    /// </summary>
    public static ListPage ParseListPage(Stream body)
    {
        var root = XDocument.Load(body).Root;
        if (root?.Name.LocalName != "EnumerationResults")
            throw new FormatException($"List Blobs returned <{root?.Name.LocalName}> where <EnumerationResults> was expected.");
        var blobs = new List<BlobInfo>();
        foreach (var blob in root.Element("Blobs")?.Elements("Blob") ?? [])
        {
            var name = blob.Element("Name")?.Value ?? throw new FormatException("List Blobs returned a <Blob> without <Name>.");
            var properties = blob.Element("Properties") ?? throw new FormatException($"List Blobs returned blob '{name}' without <Properties>.");
            var length = long.Parse(properties.Element("Content-Length")?.Value ?? "0", CultureInfo.InvariantCulture);
            var modified = ParseHttpDate(properties.Element("Last-Modified")?.Value
                ?? throw new FormatException($"List Blobs returned blob '{name}' without <Last-Modified>."));
            blobs.Add(new BlobInfo(name, length, modified));
        }
        var next = root.Element("NextMarker")?.Value;
        return new ListPage(blobs, string.IsNullOrEmpty(next) ? null : next);
    }

    /// <summary><c>&lt;BlockList&gt;&lt;Latest&gt;id&lt;/Latest&gt;…&lt;/BlockList&gt;</c>, committing the given blocks in order.</summary>
    public static byte[] BlockList(IEnumerable<string> blockIds)
    {
        var document = new XDocument(new XDeclaration("1.0", "utf-8", null),
            new XElement("BlockList", blockIds.Select(id => new XElement("Latest", id))));
        using var buffer = new MemoryStream();
        using (var writer = XmlWriter.Create(buffer, new XmlWriterSettings { Encoding = new UTF8Encoding(false) }))
            document.Save(writer);
        return buffer.ToArray();
    }

    /// <summary>The Code and Message of an <c>&lt;Error&gt;</c> body; nulls when the body is empty or not such XML.</summary>
    public static (string? Code, string? Message) ParseError(ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty)
            return (null, null);
        try
        {
            var root = XDocument.Parse(Encoding.UTF8.GetString(body).TrimStart('\uFEFF')).Root;
            return root?.Name.LocalName == "Error"
                ? (root.Element("Code")?.Value, root.Element("Message")?.Value?.Split('\n')[0].Trim())
                : (null, null);
        }
        catch (XmlException)
        {
            return (null, null); // an error body that is not XML (a proxy's HTML page): the status says enough
        }
    }

    public static DateTimeOffset ParseHttpDate(string value) =>
        DateTimeOffset.ParseExact(value, "R", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
}
