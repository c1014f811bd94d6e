using System.IO.Enumeration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Dapo.Cluster.Blobs;

/// <summary>
/// Blobs as files under one root directory (the "container"): <c>runs/r1/policy/3</c> is
/// <c>{root}/runs/r1/policy/3</c>. The embedded default: no server, and a run directory can be copied as a whole.
/// </summary>
/// <remarks>
/// A put writes a temporary file beside the target (<c>.{name}.{guid}.tmp</c>; valid names never start with '.',
/// so listings skip it), flushes it to disk and renames it over the target. The rename is atomic, so a reader sees
/// the old or the new file, and a crash mid-write leaves at most a stray temporary file, never a torn blob.
/// </remarks>
public sealed class LocalDirectoryBlobStore : IBlobStore
{
    private const int CopyBufferSize = 1 << 16;
    private readonly ILogger _logger;

    public LocalDirectoryBlobStore(string root, ILogger<LocalDirectoryBlobStore>? logger = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        Root = Path.GetFullPath(root);
        _logger = logger ?? NullLogger<LocalDirectoryBlobStore>.Instance;
    }

    /// <summary>The absolute directory that holds the blobs.</summary>
    public string Root { get; }

    public string Description => $"local directory {Root}";

    public Task EnsureContainerAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Directory.CreateDirectory(Root);
        BlobLog.ContainerEnsured(_logger, Root, Description);
        return Task.CompletedTask;
    }

    public Task PutAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) =>
        WriteAtomicallyAsync(name, (file, ct) => file.WriteAsync(content, ct), cancellationToken);

    public Task PutAsync(string name, Stream content, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        return WriteAtomicallyAsync(name, (file, ct) => new ValueTask(content.CopyToAsync(file, CopyBufferSize, ct)),
            cancellationToken);
    }

    public async Task<byte[]?> GetAsync(string name, CancellationToken cancellationToken)
    {
        await using var stream = await OpenReadAsync(name, cancellationToken);
        if (stream is null)
            return null;
        var bytes = new byte[stream.Length];
        await stream.ReadExactlyAsync(bytes, cancellationToken);
        return bytes;
    }

    public Task<Stream?> OpenReadAsync(string name, CancellationToken cancellationToken)
    {
        var path = PathOf(name, "Get Blob");
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            // FileShare.Delete: a concurrent put may rename a new file over this one; we keep reading the old one.
            Stream stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete,
                CopyBufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan);
            return Task.FromResult<Stream?>(stream);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return Task.FromResult<Stream?>(null); // a missing blob is a result, not an error
        }
    }

    public Task<BlobInfo?> GetInfoAsync(string name, CancellationToken cancellationToken)
    {
        var path = PathOf(name, "Get Blob Properties");
        cancellationToken.ThrowIfCancellationRequested();
        var file = new FileInfo(path);
        return Task.FromResult(file.Exists
            ? new BlobInfo(name, file.Length, new DateTimeOffset(file.LastWriteTimeUtc, TimeSpan.Zero))
            : null);
    }

    public async IAsyncEnumerable<BlobInfo> ListAsync(string prefix,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        BlobName.ValidatePrefix(prefix);
        EnsureRootExists("List Blobs", null);
        // Walk only the folder the prefix's complete segments name; the partial last segment filters names.
        var slash = prefix.LastIndexOf('/');
        var start = slash < 0 ? Root : Path.Combine(Root, prefix[..slash]);
        if (!Directory.Exists(start))
            yield break;
        var options = new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 };
        var entries = new FileSystemEnumerable<BlobInfo>(start,
            (ref FileSystemEntry entry) => new BlobInfo(
                Path.GetRelativePath(Root, entry.ToFullPath()).Replace(Path.DirectorySeparatorChar, '/'),
                entry.Length, entry.LastWriteTimeUtc),
            options)
        {
            // Temporary files and anything else whose name is not a valid blob name stays invisible.
            ShouldIncludePredicate = (ref FileSystemEntry entry) => !entry.IsDirectory && !entry.FileName.StartsWith('.'),
            ShouldRecursePredicate = (ref FileSystemEntry entry) => !entry.FileName.StartsWith('.'),
        };
        var found = entries.Where(b => b.Name.StartsWith(prefix, StringComparison.Ordinal)).ToList();
        found.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name)); // the order Azure lists in
        foreach (var blob in found)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return blob;
        }
        await Task.CompletedTask;
    }

    public Task<bool> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        var path = PathOf(name, "Delete Blob");
        cancellationToken.ThrowIfCancellationRequested();
        if (!File.Exists(path))
            return Task.FromResult(false);
        File.Delete(path); // no error when a concurrent delete got there first
        return Task.FromResult(true);
    }

    private async Task WriteAtomicallyAsync(string name, Func<FileStream, CancellationToken, ValueTask> write,
        CancellationToken cancellationToken)
    {
        var path = PathOf(name, "Put Blob");
        var directory = Path.GetDirectoryName(path)!;
        Directory.CreateDirectory(directory);
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None,
                             CopyBufferSize, FileOptions.Asynchronous))
            {
                await write(file, cancellationToken);
                file.Flush(flushToDisk: true); // fsync before the rename, so a crash never leaves a renamed empty file
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp); // no-op when the temp file was never created or already renamed
            throw;
        }
    }

    private string PathOf(string name, string operation)
    {
        BlobName.Validate(name);
        EnsureRootExists(operation, name);
        return Path.Combine(Root, name.Replace('/', Path.DirectorySeparatorChar));
    }

    private void EnsureRootExists(string operation, string? name)
    {
        if (Directory.Exists(Root))
            return;
        var e = new BlobStorageException(
            $"{operation} failed: the blob directory {Root} does not exist; call EnsureContainerAsync first (it creates it).",
            operation, Root, name, 404, BlobErrorCodes.ContainerNotFound);
        BlobLog.OperationFailed(_logger, e, operation, Root, name, e.Status, e.ErrorCode);
        throw e;
    }
}
