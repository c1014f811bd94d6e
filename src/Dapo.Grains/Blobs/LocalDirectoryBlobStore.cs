using System.IO.Enumeration;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Dapo.Grains.Blobs;

/// <summary>
/// Blobs as files under one root directory (the "container"): <c>runs/r1/policy/3</c> is
/// <c>{root}/runs/r1/policy/3</c>. The embedded default: no server, and a run directory can be copied as a whole.
/// </summary>
/// <remarks>
/// <para>A put writes a temporary file beside the target (<c>.{name}.{guid}.tmp</c>; valid names never start with
/// '.', so listings skip it), flushes it to disk and renames it over the target. The rename is atomic, so a reader
/// sees the old or the new file, and a crash mid-write leaves at most a stray temporary file, never a torn blob.</para>
/// <para>A create-only put writes its temporary file the same way, then gives it the target's name with link(2),
/// which fails when the name exists: of concurrent creators exactly one links, atomically. (.NET's
/// <c>File.Move(overwrite: false)</c> checks for the target and then renames, which two creators can both pass.)
/// The file system must support hard links, as every Linux one in use for run directories does.</para>
/// <para>A delete also removes the folders it leaves empty, up to the root (never the root), so pruning old
/// checkpoints leaves no empty folders behind. Empty folders left by older versions are ignored.</para>
/// </remarks>
public sealed partial class LocalDirectoryBlobStore : IBlobStore
{
    private const int CopyBufferSize = 1 << 16;
    private readonly ILogger _logger;

    public LocalDirectoryBlobStore(string root, ILogger<LocalDirectoryBlobStore>? logger = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        Root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
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
        WriteAtomicallyAsync(name, Writer(content), replace: true, cancellationToken);

    public Task PutAsync(string name, Stream content, CancellationToken cancellationToken) =>
        WriteAtomicallyAsync(name, Writer(content), replace: true, cancellationToken);

    public Task<bool> TryCreateAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) =>
        WriteAtomicallyAsync(name, Writer(content), replace: false, cancellationToken);

    public Task<bool> TryCreateAsync(string name, Stream content, CancellationToken cancellationToken) =>
        WriteAtomicallyAsync(name, Writer(content), replace: false, cancellationToken);

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
        RemoveEmptyFolders(Path.GetDirectoryName(path)!);
        return Task.FromResult(true);
    }

    private static Func<FileStream, CancellationToken, ValueTask> Writer(ReadOnlyMemory<byte> content) =>
        (file, ct) => file.WriteAsync(content, ct);

    private static Func<FileStream, CancellationToken, ValueTask> Writer(Stream content)
    {
        ArgumentNullException.ThrowIfNull(content);
        return (file, ct) => new ValueTask(content.CopyToAsync(file, CopyBufferSize, ct));
    }

    /// <summary>
    /// Writes a temporary file, then renames it over the target (<paramref name="replace"/>) or links it to the
    /// target's name unless that exists. False when a create-only write found the name taken.
    /// </summary>
    private async Task<bool> WriteAtomicallyAsync(string name, Func<FileStream, CancellationToken, ValueTask> write,
        bool replace, CancellationToken cancellationToken)
    {
        var path = PathOf(name, replace ? "Put Blob" : "Create Blob");
        var directory = Path.GetDirectoryName(path)!;
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            await using (var file = CreateTemporaryFile(directory, temp))
            {
                await write(file, cancellationToken);
                file.Flush(flushToDisk: true); // fsync before the rename, so a crash never leaves a renamed empty file
            }
            if (!replace)
                return TryLink(temp, path);
            File.Move(temp, path, overwrite: true);
            return true;
        }
        finally
        {
            DeleteIfPresent(temp); // the temporary file after a link, a failure or a lost create; no-op after a rename
        }
    }

    /// <summary>Creates the temporary file, and its folder, which a concurrent delete may remove just after it is made.</summary>
    private static FileStream CreateTemporaryFile(string directory, string temp)
    {
        for (var attempt = 1; ; attempt++)
        {
            Directory.CreateDirectory(directory);
            try
            {
                return new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, CopyBufferSize,
                    FileOptions.Asynchronous);
            }
            catch (DirectoryNotFoundException) when (attempt < 10)
            {
                // A delete emptied the folder and removed it between our CreateDirectory and this create: again.
            }
        }
    }

    /// <summary>Gives <paramref name="temp"/>'s file the name <paramref name="path"/> too, unless that name exists.</summary>
    private static bool TryLink(string temp, string path)
    {
        if (Link(temp, path) == 0)
            return true;
        var errno = Marshal.GetLastPInvokeError();
        if (errno == EExist && !Directory.Exists(path))
            return false;
        throw new IOException($"Could not create {path}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).");
    }

    /// <summary>Removes <paramref name="directory"/> and then its parents while they are empty, stopping below the root.</summary>
    private void RemoveEmptyFolders(string directory)
    {
        while (directory.Length > Root.Length && directory.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            try
            {
                Directory.Delete(directory); // only an empty folder: a blob or a put's temporary file keeps it
            }
            catch (IOException)
            {
                return; // not empty, or removed by a concurrent delete that goes on upwards itself
            }
            directory = Path.GetDirectoryName(directory)!;
        }
    }

    private static void DeleteIfPresent(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (DirectoryNotFoundException)
        {
            // the folder went with the last blob in it
        }
    }

    private const int EExist = 17; // EEXIST on Linux (and macOS)

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string existingPath, string newPath);

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
