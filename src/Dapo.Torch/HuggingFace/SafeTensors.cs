using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;

namespace Dapo.Torch.HuggingFace;

/// <summary>Element types of the safetensors format that model weights use.</summary>
public enum SafeTensorsDType
{
    F32,
    F16,
    BF16,
}

/// <summary>A tensor's entry in a safetensors header: its element type, shape, and bytes within the data section.</summary>
public sealed record SafeTensorInfo(string Name, SafeTensorsDType DType, long[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    public string ShapeText => $"[{string.Join(", ", Shape)}]";
}

/// <summary>A tensor to write: its bytes are asked for when the writer reaches it.</summary>
public sealed record SafeTensorToWrite(string Name, SafeTensorsDType DType, long[] Shape, Func<byte[]> Data)
{
    public long ByteCount => Shape.Aggregate(1L, (a, b) => a * b) * SafeTensorsFile.SizeOf(DType);
}

/// <summary>
/// A safetensors file (Hugging Face's weight format: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the raw little-endian data), mapped into memory rather than read: a
/// tensor's bytes are read when it is asked for, so a model of many gigabytes never passes through managed memory.
/// The header is checked when the file is opened: every range inside the data, of the size its shape and dtype
/// say, none overlapping. Every error names the file and, where there is one, the tensor.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>The format's own limit on the header (the reference implementation refuses larger ones).</summary>
    private const long MaxHeaderBytes = 100_000_000;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _data;
    private bool _disposed;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>The tensors in file order.</summary>
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors { get; }

    private SafeTensorsFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* data,
        IReadOnlyDictionary<string, string> metadata, IReadOnlyDictionary<string, SafeTensorInfo> tensors)
    {
        (Path, _map, _view, Metadata, Tensors) = (path, map, view, metadata, tensors);
        _data = data;
    }

    public static SafeTensorsFile Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such safetensors file.", path);
        var length = new FileInfo(path).Length;
        if (length < 8) throw Bad(path, $"the file is {length} bytes, shorter than the 8-byte header length");
        ulong headerLength;
        byte[] header;
        using (var stream = File.OpenRead(path))
        {
            Span<byte> prefix = stackalloc byte[8];
            stream.ReadExactly(prefix);
            headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLength > MaxHeaderBytes || (long)headerLength > length - 8)
                throw Bad(path, $"the header says it is {headerLength} bytes, but the file has {length - 8} after the length" +
                                (headerLength > MaxHeaderBytes ? $" and the format allows at most {MaxHeaderBytes}" : "") + " (truncated or not safetensors)");
            header = new byte[headerLength];
            stream.ReadExactly(header);
        }
        var dataStart = 8 + (long)headerLength;
        var (metadata, tensors) = ParseHeader(path, header, length - dataStart);
        if (length == dataStart) return new SafeTensorsFile(path, null, null, null, metadata, tensors);

        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        byte* start = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
        return new SafeTensorsFile(path, map, view, start + view.PointerOffset + dataStart, metadata, tensors);
    }

    private static (Dictionary<string, string>, Dictionary<string, SafeTensorInfo>) ParseHeader(string path, byte[] header, long dataLength)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(header); }
        catch (JsonException e) { throw Bad(path, $"the header is not valid JSON ({e.Message})"); }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, "the header is not a JSON object");
            var metadata = new Dictionary<string, string>();
            var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind != JsonValueKind.Object) throw Bad(path, "__metadata__ is not an object of strings");
                    foreach (var entry in property.Value.EnumerateObject())
                        metadata[entry.Name] = entry.Value.ValueKind == JsonValueKind.String
                            ? entry.Value.GetString()!
                            : throw Bad(path, $"__metadata__ entry '{entry.Name}' is not a string");
                    continue;
                }
                var tensor = ParseTensor(path, property.Name, property.Value, dataLength);
                if (!tensors.TryAdd(tensor.Name, tensor)) throw Bad(path, $"tensor '{tensor.Name}' appears twice in the header");
            }
            // As the reference implementation requires: the tensors tile the data section, no overlap, no gap.
            var (covered, before) = (0L, "the start of the data");
            foreach (var tensor in tensors.Values.OrderBy(t => t.Begin).ThenBy(t => t.End))
            {
                if (tensor.Begin != covered)
                    throw Bad(path, $"tensor '{tensor.Name}' starts at byte {tensor.Begin} of the data, but {before} ends at byte {covered} ({(tensor.Begin < covered ? "they overlap" : "a gap")}: a header that lies about offsets)");
                (covered, before) = (tensor.End, $"tensor '{tensor.Name}'");
            }
            if (covered != dataLength)
                throw Bad(path, $"the tensors end at byte {covered} of the data, but the file holds {dataLength} bytes of data after the header");
            return (metadata, tensors);
        }
    }

    private static SafeTensorInfo ParseTensor(string path, string name, JsonElement entry, long dataLength)
    {
        string Where() => $"tensor '{name}'";
        if (entry.ValueKind != JsonValueKind.Object) throw Bad(path, $"{Where()}: its entry is not an object");
        if (!entry.TryGetProperty("dtype", out var dtypeText) || dtypeText.ValueKind != JsonValueKind.String)
            throw Bad(path, $"{Where()}: no dtype");
        var dtype = dtypeText.GetString() switch
        {
            "F32" => SafeTensorsDType.F32,
            "F16" => SafeTensorsDType.F16,
            "BF16" => SafeTensorsDType.BF16,
            var other => throw Bad(path, $"{Where()}: dtype {other} is not one of the weight types F32, F16, BF16"),
        };
        if (!entry.TryGetProperty("shape", out var shapeArray) || shapeArray.ValueKind != JsonValueKind.Array)
            throw Bad(path, $"{Where()}: no shape");
        var shape = shapeArray.EnumerateArray().Select(d => d.TryGetInt64(out var n) && n >= 0 ? n : throw Bad(path, $"{Where()}: shape {shapeArray} has a dimension that is not a count")).ToArray();
        if (!entry.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw Bad(path, $"{Where()}: data_offsets is not [begin, end]");
        var begin = offsets[0].TryGetInt64(out var b) ? b : -1;
        var end = offsets[1].TryGetInt64(out var e) ? e : -1;
        var info = new SafeTensorInfo(name, dtype, shape, begin, end);
        if (begin < 0 || end < begin || end > dataLength)
            throw Bad(path, $"{Where()}: data_offsets [{offsets[0]}, {offsets[1]}] are not a range inside the {dataLength} bytes of data (truncated file, or a header that lies)");
        long expected;
        try { expected = checked(info.ElementCount * SizeOf(dtype)); }
        catch (OverflowException) { throw Bad(path, $"{Where()}: shape {info.ShapeText} is too large"); }
        if (end - begin != expected)
            throw Bad(path, $"{Where()}: {dtype} {info.ShapeText} is {expected} bytes, but its data_offsets [{begin}, {end}] hold {end - begin}");
        return info;
    }

    public static int SizeOf(SafeTensorsDType dtype) => dtype == SafeTensorsDType.F32 ? 4 : 2;

    public SafeTensorInfo Info(string name) => Tensors.TryGetValue(name, out var info)
        ? info
        : throw new KeyNotFoundException($"{Path}: no tensor '{name}' (the file has {Tensors.Count}: {string.Join(", ", Tensors.Keys.Take(8))}{(Tensors.Count > 8 ? ", ..." : "")}).");

    /// <summary>The tensor's raw bytes, as stored.</summary>
    public ReadOnlySpan<byte> Bytes(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var info = Info(name);
        var length = info.End - info.Begin;
        if (length > int.MaxValue) throw Bad(Path, $"tensor '{name}' is {length} bytes, more than one read can hold ({int.MaxValue})");
        return length == 0 ? [] : new ReadOnlySpan<byte>(_data + info.Begin, (int)length);
    }

    /// <summary>The tensor's values in fp32 (bf16 and fp16 widened exactly).</summary>
    public float[] ReadFloat32(string name)
    {
        var info = Info(name);
        var values = new float[checked((int)info.ElementCount)];
        Widen(Bytes(name), info.DType, values);
        return values;
    }

    /// <summary>Little-endian <paramref name="bytes"/> of <paramref name="dtype"/> into fp32.</summary>
    public static void Widen(ReadOnlySpan<byte> bytes, SafeTensorsDType dtype, Span<float> destination)
    {
        switch (dtype)
        {
            case SafeTensorsDType.F32:
                for (var i = 0; i < destination.Length; i++) destination[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(4 * i)..]);
                break;
            case SafeTensorsDType.F16:
                for (var i = 0; i < destination.Length; i++) destination[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes[(2 * i)..]);
                break;
            case SafeTensorsDType.BF16:
                for (var i = 0; i < destination.Length; i++)
                    destination[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..]) << 16);
                break;
        }
    }

    /// <summary>fp32 <paramref name="values"/> as little-endian bytes of <paramref name="dtype"/>, rounded to nearest even as PyTorch rounds.</summary>
    public static byte[] Narrow(ReadOnlySpan<float> values, SafeTensorsDType dtype)
    {
        var bytes = new byte[values.Length * SizeOf(dtype)];
        for (var i = 0; i < values.Length; i++)
        {
            switch (dtype)
            {
                case SafeTensorsDType.F32:
                    BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]);
                    break;
                case SafeTensorsDType.F16:
                    BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(2 * i), (Half)values[i]);
                    break;
                case SafeTensorsDType.BF16:
                    BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), ToBFloat16(values[i]));
                    break;
            }
        }
        return bytes;
    }

    private static ushort ToBFloat16(float value)
    {
        var bits = (uint)BitConverter.SingleToInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x0040);  // stays a (quiet) NaN
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    /// <summary>
    /// Writes a safetensors file: tensors in the order given, packed without gaps, the header padded with spaces to a
    /// multiple of 8 bytes (as the reference writer does, so the data stays aligned). Written beside the target and
    /// renamed over it: a reader never sees half a file.
    /// </summary>
    public static void Write(string path, IReadOnlyList<SafeTensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var header = new MemoryStream();
        using (var json = new Utf8JsonWriter(header))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var tensor in tensors)
            {
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", tensor.DType.ToString());
                json.WriteStartArray("shape");
                foreach (var d in tensor.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + tensor.ByteCount);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += tensor.ByteCount;
            }
            json.WriteEndObject();
        }
        while (header.Length % 8 != 0) header.WriteByte((byte)' ');

        var temporary = path + ".tmp";
        try
        {
            using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
                file.Write(prefix);
                header.Position = 0;
                header.CopyTo(file);
                // One tensor's bytes in memory at a time.
                foreach (var tensor in tensors)
                {
                    var data = tensor.Data();
                    if (data.Length != tensor.ByteCount)
                        throw new ArgumentException($"Tensor '{tensor.Name}': {tensor.DType} [{string.Join(", ", tensor.Shape)}] is {tensor.ByteCount} bytes, but {data.Length} were given.", nameof(tensors));
                    file.Write(data);
                }
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    private static InvalidDataException Bad(string path, string problem) => new($"{path}: {problem}.");

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
