using Dapo.Grains.Blobs;
using Dapo.Grains.Hosting;
using Dapo.Torch;
using Dapo.Torch.HuggingFace;

namespace Dapo.Grains.Checkpoints;

/// <summary>
/// A run's Hugging Face model: loaded from its directory at the start, and the trained policy written back in the same
/// format (config.json, model.safetensors in the directory's dtype, its tokenizer files) to blob storage when the run
/// completes, so that it loads wherever the original did.
/// </summary>
public static class HuggingFaceModel
{
    /// <summary>Where a run's exported model lives in blob storage (a folder: the files are under it).</summary>
    public static string ExportPrefix(string runId) => $"runs/{runId}/model/";

    /// <summary>The engine's model with the weights of <paramref name="directory"/>, which must have the recipe's shape
    /// <paramref name="expected"/>.</summary>
    public static PolicyModel Load(string directory, ModelConfig expected)
    {
        var model = Qwen2Checkpoint.Load(directory, expected.MaxSeqLen, expected.Device, expected.DeviceIndex);
        if (model.Config with { Seed = expected.Seed } == expected) return model;
        model.Dispose();
        throw new InvalidOperationException($"{directory} holds a model of another shape ({model.Config}) than the recipe's ({expected}).");
    }

    /// <summary>
    /// Writes <paramref name="model"/> (on its engine thread) as a copy of <paramref name="directory"/> with the trained
    /// weights, under <see cref="ExportPrefix"/> in <paramref name="blobs"/>; returns the file names.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ExportAsync(EngineThread engine, PolicyModel model, string directory, IBlobStore blobs,
        string runId, CancellationToken cancellationToken)
    {
        var staging = Directory.CreateTempSubdirectory("dapo-export-").FullName;
        try
        {
            var config = Qwen2Config.Read(directory);
            await engine.RunAsync(() =>
            {
                Qwen2Checkpoint.Save(model, config, staging, config.StoredDType);
                return 0;
            }, cancellationToken);
            // The tokenizer and the other small files (generation_config.json, ...) as they are; the weights and config.json are new.
            foreach (var file in Directory.EnumerateFiles(directory))
            {
                var name = Path.GetFileName(file);
                if (name.EndsWith(".safetensors", StringComparison.Ordinal) || name == "model.safetensors.index.json" || name == Qwen2Config.FileName) continue;
                File.Copy(file, Path.Combine(staging, name));
            }
            var names = Directory.EnumerateFiles(staging).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray();
            foreach (var name in names)
            {
                await using var content = File.OpenRead(Path.Combine(staging, name));
                await blobs.PutAsync(ExportPrefix(runId) + name, content, cancellationToken);
            }
            return names;
        }
        finally
        {
            Directory.Delete(staging, recursive: true);
        }
    }
}
