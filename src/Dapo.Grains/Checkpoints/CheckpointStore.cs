using System.Security.Cryptography;
using System.Text.Json;
using Dapo.Grains.Blobs;
using Dapo.Core.Data;
using Dapo.Torch;

namespace Dapo.Grains.Checkpoints;

/// <summary>What a checkpoint records besides the engine state.</summary>
/// <param name="Step">The last step it includes (0: the warm-started or initial policy).</param>
/// <param name="PolicyVersion">Version of the weights it holds.</param>
/// <param name="Cursor">The dataset cursor after every draw up to <paramref name="Step"/>.</param>
/// <param name="Seed">The run's seed. All other randomness is keyed by (seed, step) or (seed, draw ordinal), so the
/// seed is the whole random state a resumed run needs.</param>
/// <param name="SpecJson">The run's spec (recipe, options), to check a resume against.</param>
public sealed record CheckpointMeta(int Step, int PolicyVersion, CursorState Cursor, ulong Seed, string SpecJson, DateTimeOffset CreatedAt)
{
    /// <summary>Surplus groups of step <see cref="Step"/> to offer the next step (with SurplusGroups = Carry).</summary>
    public IReadOnlyList<PromptEntry>? Carry { get; init; }
}

/// <summary>A verified checkpoint: its metadata and the engine's training state (weights, optimizer, step count), which
/// it owns: dispose it.</summary>
public sealed record Checkpoint(CheckpointMeta Meta, NativeBytes TrainingState) : IDisposable
{
    public void Dispose() => TrainingState.Dispose();
}

/// <summary>How publishing a policy version went (<see cref="CheckpointStore.PublishPolicyAsync"/>).</summary>
public enum PolicyPublication
{
    /// <summary>This call wrote the version.</summary>
    Created,

    /// <summary>The version was there already with exactly these weights: written by an earlier try of this
    /// publication (whose answer was lost) or by a learner that computed the same step.</summary>
    AlreadyPublished,

    /// <summary>The version was there already with other weights, or another publication of it was left half-done
    /// (<see cref="BlobErrorCodes.UncommittedBlocks"/>): another learner published it first, or tried to.</summary>
    Conflict,
}

/// <summary>A checkpoint as listed, with whether its manifest and checksums hold.</summary>
public sealed record CheckpointInfo(int Step, long Size, bool Complete, string? Problem);

/// <summary>
/// Checkpoints and policy versions of a run in blob storage:
/// <c>runs/{run}/policy/{version}</c> holds weights for rollout workers;
/// <c>runs/{run}/checkpoints/{step}/</c> holds <c>state.bin</c> and <c>meta.json</c>, then <c>manifest.json</c> with
/// their sizes and SHA-256 checksums, written last. A checkpoint without a manifest, or whose files do not match it,
/// is never "latest": a torn write or a half-finished delete is skipped and the previous complete one is used.
/// A policy version is written once (create-only), so two learners can never both publish one.
/// </summary>
public sealed class CheckpointStore(IBlobStore blobs, string runId)
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    private string Root => $"runs/{runId}";
    private string CheckpointPrefix => $"{Root}/checkpoints/";
    private string Folder(int step) => $"{CheckpointPrefix}{step:D8}";
    public string PolicyName(int version) => $"{Root}/policy/{version:D8}";

    /// <summary>
    /// Publishes <paramref name="weights"/> as policy version <paramref name="version"/> unless that version exists:
    /// a create-only write, so a version once published is never replaced by this call. When the version exists, its
    /// content says whether it is this publication already (<see cref="PolicyPublication.AlreadyPublished"/>) or
    /// another learner's (<see cref="PolicyPublication.Conflict"/>); what to do about the latter is the caller's call.
    /// </summary>
    public async Task<PolicyPublication> PublishPolicyAsync(int version, NativeBytes weights, CancellationToken cancellationToken)
    {
        var name = PolicyName(version);
        while (true)
        {
            try
            {
                await using var content = weights.OpenRead();
                if (await blobs.TryCreateAsync(name, content, cancellationToken))
                    return PolicyPublication.Created;
            }
            catch (BlobStorageException e) when (e.ErrorCode == BlobErrorCodes.UncommittedBlocks)
            {
                return PolicyPublication.Conflict;
            }
            await using var existing = await blobs.OpenReadAsync(name, cancellationToken);
            if (existing is not null)
                return await weights.ContentEqualsAsync(existing, cancellationToken) ? PolicyPublication.AlreadyPublished : PolicyPublication.Conflict;
            // Deleted (pruned) between the two calls: try to create it again.
        }
    }

    /// <summary>
    /// Overwrites policy version <paramref name="version"/> with <paramref name="weights"/>: only for a caller that
    /// has established that the version in storage is an orphan no one will read (see <c>LearnerLoop</c>).
    /// </summary>
    public async Task ReplacePolicyAsync(int version, NativeBytes weights, CancellationToken cancellationToken)
    {
        await using var content = weights.OpenRead();
        await blobs.PutAsync(PolicyName(version), content, cancellationToken);
    }

    /// <summary>Policy version <paramref name="version"/>, read into native memory; null when it is not there.</summary>
    public Task<NativeBytes?> GetPolicyAsync(int version, CancellationToken cancellationToken) => ReadAsync(PolicyName(version), cancellationToken);

    /// <summary>Writes a checkpoint: data first, manifest last.</summary>
    public async Task WriteAsync(Checkpoint checkpoint, CancellationToken cancellationToken)
    {
        var folder = Folder(checkpoint.Meta.Step);
        var meta = JsonSerializer.SerializeToUtf8Bytes(checkpoint.Meta, Json);
        string stateSha256;
        await using (var state = checkpoint.TrainingState.OpenRead())
            stateSha256 = await Sha256Async(state, cancellationToken);
        await using (var state = checkpoint.TrainingState.OpenRead())
            await blobs.PutAsync($"{folder}/state.bin", state, cancellationToken);
        await blobs.PutAsync($"{folder}/meta.json", meta, cancellationToken);
        var manifest = new Manifest(checkpoint.Meta.Step,
        [
            new ManifestFile("state.bin", checkpoint.TrainingState.Length, stateSha256),
            new ManifestFile("meta.json", meta.Length, Convert.ToHexStringLower(SHA256.HashData(meta))),
        ]);
        await blobs.PutAsync($"{folder}/manifest.json", JsonSerializer.SerializeToUtf8Bytes(manifest, Json), cancellationToken);
    }

    /// <summary>Every checkpoint folder, newest first, checked against its manifest.</summary>
    public async Task<IReadOnlyList<CheckpointInfo>> ListAsync(CancellationToken cancellationToken)
    {
        var infos = new List<CheckpointInfo>();
        foreach (var (step, size, _) in await ScanAsync(cancellationToken))
        {
            var problem = await VerifyAsync(step, cancellationToken);
            infos.Add(new CheckpointInfo(step, size, problem is null, problem));
        }
        return infos;
    }

    /// <summary>The newest complete checkpoint, verified; null when there is none. Older ones are not read.</summary>
    public async Task<Checkpoint?> LatestAsync(Action<int, string>? skipped, CancellationToken cancellationToken)
    {
        foreach (var (step, _, _) in await ScanAsync(cancellationToken))
        {
            var problem = await VerifyAsync(step, cancellationToken);
            if (problem is not null)
            {
                skipped?.Invoke(step, problem);
                continue;
            }
            var folder = Folder(step);
            var meta = await blobs.GetAsync($"{folder}/meta.json", cancellationToken);
            var state = await ReadAsync($"{folder}/state.bin", cancellationToken);
            if (state is null || meta is null)  // deleted since it was verified
            {
                state?.Dispose();
                continue;
            }
            return new Checkpoint(JsonSerializer.Deserialize<CheckpointMeta>(meta)!, state);
        }
        return null;
    }

    /// <summary>Keeps the newest <paramref name="keep"/> checkpoints that have a manifest and deletes older ones,
    /// manifest first (so a half-deleted checkpoint is never taken for complete), and policy versions older than
    /// <paramref name="keepPoliciesFrom"/>. It reads no checkpoint data: the checksums are checked when one is used.</summary>
    public async Task PruneAsync(int keep, int keepPoliciesFrom, CancellationToken cancellationToken)
    {
        var scanned = await ScanAsync(cancellationToken);
        var withManifest = scanned.Where(c => c.HasManifest).Select(c => c.Step).ToList();
        if (withManifest.Count > keep)
        {
            var oldestKept = withManifest[keep - 1];
            var doomed = new List<string>();
            await foreach (var blob in blobs.ListAsync(CheckpointPrefix, cancellationToken))
                if (StepOf(blob.Name) is { } step && step < oldestKept) doomed.Add(blob.Name);
            foreach (var name in doomed.OrderBy(n => n.EndsWith("/manifest.json", StringComparison.Ordinal) ? 0 : 1))
                await blobs.DeleteAsync(name, cancellationToken);
        }
        var policies = new List<string>();
        await foreach (var blob in blobs.ListAsync($"{Root}/policy/", cancellationToken))
            if (int.TryParse(blob.Name[(Root.Length + "/policy/".Length)..], out var version) && version < keepPoliciesFrom)
                policies.Add(blob.Name);
        foreach (var name in policies) await blobs.DeleteAsync(name, cancellationToken);
    }

    /// <summary>Checkpoint folders by listing alone, newest first: step, total size, whether a manifest is there.</summary>
    private async Task<List<(int Step, long Size, bool HasManifest)>> ScanAsync(CancellationToken cancellationToken)
    {
        var folders = new SortedDictionary<int, (long Size, bool Manifest)>(Comparer<int>.Create((a, b) => b.CompareTo(a)));
        await foreach (var blob in blobs.ListAsync(CheckpointPrefix, cancellationToken))
        {
            if (StepOf(blob.Name) is not { } step) continue;
            var (size, manifest) = folders.GetValueOrDefault(step);
            folders[step] = (size + blob.Size, manifest || blob.Name.EndsWith("/manifest.json", StringComparison.Ordinal));
        }
        return folders.Select(kv => (kv.Key, kv.Value.Size, kv.Value.Manifest)).ToList();
    }

    private int? StepOf(string name)
    {
        var rest = name[CheckpointPrefix.Length..];
        var slash = rest.IndexOf('/');
        return slash > 0 && int.TryParse(rest[..slash], out var step) ? step : null;
    }

    /// <summary>Null when the checkpoint's manifest exists and every file matches it; otherwise what is wrong.</summary>
    private async Task<string?> VerifyAsync(int step, CancellationToken cancellationToken)
    {
        var folder = Folder(step);
        var manifestBytes = await blobs.GetAsync($"{folder}/manifest.json", cancellationToken);
        if (manifestBytes is null) return "no manifest (incomplete write)";
        Manifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<Manifest>(manifestBytes);
        }
        catch (JsonException e)
        {
            return $"unreadable manifest: {e.Message}";
        }
        if (manifest is null || manifest.Step != step) return "manifest does not describe this step";
        foreach (var file in manifest.Files)
        {
            await using var data = await blobs.OpenReadAsync($"{folder}/{file.Name}", cancellationToken);
            if (data is null) return $"{file.Name} is missing";
            // The checksum alone decides: equal SHA-256 means equal bytes, so equal sizes too.
            if (await Sha256Async(data, cancellationToken) != file.Sha256) return $"{file.Name} does not match its checksum";
        }
        return null;
    }

    /// <summary>A blob read into native memory (a training state can pass a managed array's 2 GB); null when it is not there.</summary>
    private async Task<NativeBytes?> ReadAsync(string name, CancellationToken cancellationToken)
    {
        var info = await blobs.GetInfoAsync(name, cancellationToken);
        if (info is null) return null;
        await using var content = await blobs.OpenReadAsync(name, cancellationToken);
        return content is null ? null : await NativeBytes.ReadAsync(content, info.Size, cancellationToken);
    }

    private static async Task<string> Sha256Async(Stream data, CancellationToken cancellationToken) =>
        Convert.ToHexStringLower(await SHA256.HashDataAsync(data, cancellationToken));

    private sealed record Manifest(int Step, IReadOnlyList<ManifestFile> Files);

    private sealed record ManifestFile(string Name, long Size, string Sha256);
}
