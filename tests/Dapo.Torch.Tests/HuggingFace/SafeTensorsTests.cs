using System.Buffers.Binary;
using System.Text;
using Dapo.Torch.HuggingFace;

namespace Dapo.Torch.Tests.HuggingFace;

/// <summary>The safetensors reader and writer against PyTorch's reading and writing of the same files.</summary>
public sealed class SafeTensorsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("dapo-safetensors-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string FileIn(string name) => Path.Combine(_directory, name);

    [Fact]
    public void Tensors_torch_wrote_in_fp32_fp16_and_bf16_read_as_torch_reads_them_and_narrow_to_torch_s_bits()
    {
        var path = FileIn("torch.safetensors");
        var expected = TorchPeer.Run("write", path);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(expected.EnumerateObject().Select(p => p.Name).Order(), file.Tensors.Keys.Order());
        foreach (var tensor in expected.EnumerateObject())
        {
            var info = file.Info(tensor.Name);
            Assert.Equal(tensor.Value.GetProperty("dtype").GetString(), info.DType.ToString());
            Assert.Equal(tensor.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()), info.Shape);
            // Widened exactly as torch widens: bit for bit.
            Assert.Equal(TorchPeer.Floats(tensor.Value.GetProperty("values")), file.ReadFloat32(tensor.Name));
            // Narrowed from the fp32 source exactly as torch narrowed it (round to nearest, ties to even).
            var narrowed = SafeTensorsFile.Narrow(TorchPeer.Floats(tensor.Value.GetProperty("source")), info.DType);
            Assert.Equal(file.Bytes(tensor.Name).ToArray(), narrowed);
        }
    }

    [Fact]
    public void A_file_written_here_reads_in_torch_as_written_and_back_here_unchanged()
    {
        var random = new Random(7);
        float[] Values(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        var (a, b, c) = (Values(12), Values(6), Values(8));
        var path = FileIn("ours.safetensors");
        SafeTensorsFile.Write(path,
        [
            new("a", SafeTensorsDType.F32, [3, 4], () => SafeTensorsFile.Narrow(a, SafeTensorsDType.F32)),
            new("b", SafeTensorsDType.BF16, [6], () => SafeTensorsFile.Narrow(b, SafeTensorsDType.BF16)),
            new("c", SafeTensorsDType.F16, [2, 2, 2], () => SafeTensorsFile.Narrow(c, SafeTensorsDType.F16)),
        ], new Dictionary<string, string> { ["format"] = "pt" });

        var torch = TorchPeer.Run("read", path);
        Assert.Equal("pt", torch.GetProperty("__metadata__").GetProperty("format").GetString());
        using var file = SafeTensorsFile.Open(path);
        foreach (var name in new[] { "a", "b", "c" })
        {
            Assert.Equal(torch.GetProperty(name).GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()), file.Info(name).Shape);
            Assert.Equal(TorchPeer.Floats(torch.GetProperty(name).GetProperty("values")), file.ReadFloat32(name));
        }
        Assert.Equal(a, file.ReadFloat32("a"));
        Assert.Equal(b.Select(v => (float)v).Select(v => SafeTensorsFile.Narrow([v], SafeTensorsDType.BF16)).Select(bytes => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes) << 16)), file.ReadFloat32("b"));
        Assert.Equal(c.Select(v => (float)(Half)v), file.ReadFloat32("c"));
        // The data starts 8-byte aligned, as the reference writer pads the header.
        Assert.Equal(0, BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(path).AsSpan(0, 8)) % 8);
    }

    /// <summary>A file with <paramref name="header"/> as its JSON header and <paramref name="dataBytes"/> zero bytes of data.</summary>
    private string Handmade(string name, string header, int dataBytes)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        var path = FileIn(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}""", 20, "tensor 'w'", "not a range inside the 20 bytes")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}""", 20, "tensor 'w'", "F32 [2, 3] is 24 bytes")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"v":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}}""", 10, "tensor 'v'", "overlap")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"v":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""", 12, "tensor 'v'", "a gap")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 12, "the tensors end at byte 4", "12 bytes of data")]
    [InlineData("""{"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}""", 8, "tensor 'w'", "dtype I64")]
    [InlineData("""{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4, "tensor 'w'", "shape")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_off""", 4, "not valid JSON", "")]
    public void A_header_that_lies_is_refused_naming_the_file_and_tensor(string header, int dataBytes, string names, string problem)
    {
        var path = Handmade("bad.safetensors", header, dataBytes);
        var error = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path));
        Assert.Contains(path, error.Message);
        Assert.Contains(names, error.Message);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void A_truncated_file_is_refused_naming_the_file_and_the_tensor_cut_off()
    {
        var path = FileIn("whole.safetensors");
        SafeTensorsFile.Write(path,
        [
            new("first", SafeTensorsDType.F32, [4], () => new byte[16]),
            new("last", SafeTensorsDType.BF16, [8], () => new byte[16]),
        ]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^5]);
        var error = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("tensor 'last'", error.Message);
        Assert.Contains("truncated", error.Message);

        // Cut inside the header, or before its length: the header's own length gives it away.
        File.WriteAllBytes(path, bytes[..20]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path)).Message);
        File.WriteAllBytes(path, bytes[..5]);
        Assert.Contains("shorter than the 8-byte header length", Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path)).Message);
    }

    [Fact]
    public void Asking_for_a_tensor_the_file_lacks_names_it_and_the_file()
    {
        var path = FileIn("one.safetensors");
        SafeTensorsFile.Write(path, [new("only", SafeTensorsDType.F32, [1], () => new byte[4])]);
        using var file = SafeTensorsFile.Open(path);
        var error = Assert.Throws<KeyNotFoundException>(() => file.ReadFloat32("missing"));
        Assert.Contains("'missing'", error.Message);
        Assert.Contains(path, error.Message);
        Assert.Contains("only", error.Message);
    }

    [Fact]
    public void A_writer_given_the_wrong_number_of_bytes_leaves_no_file()
    {
        var path = FileIn("wrong.safetensors");
        var error = Assert.Throws<ArgumentException>(() => SafeTensorsFile.Write(path, [new("w", SafeTensorsDType.F16, [3], () => new byte[4])]));
        Assert.Contains("Tensor 'w'", error.Message);
        Assert.False(File.Exists(path));
        Assert.False(File.Exists(path + ".tmp"));
    }
}
