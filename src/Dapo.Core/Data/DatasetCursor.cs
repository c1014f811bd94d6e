using System.Text.Json;
using Dapo.Core.Common;

namespace Dapo.Core.Data;

/// <summary>
/// Where a <see cref="DatasetCursor"/> stands: small, serialisable, and enough to continue exactly where it was.
/// </summary>
/// <param name="DatasetSize">Examples in the dataset (a resume against another size is refused).</param>
/// <param name="Seed">Shuffle seed.</param>
/// <param name="Shuffle">Whether each epoch is shuffled.</param>
/// <param name="Epoch">Current epoch (0-based).</param>
/// <param name="Position">Next position within the epoch's order, in [0, DatasetSize).</param>
public sealed record CursorState(int DatasetSize, ulong Seed, bool Shuffle, int Epoch, int Position)
{
    /// <summary>The state as compact JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this);

    /// <summary>A state from <see cref="ToJson"/>.</summary>
    /// <exception cref="FormatException">Malformed JSON or an impossible state.</exception>
    public static CursorState FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        CursorState? state;
        try
        {
            state = JsonSerializer.Deserialize<CursorState>(json,
                new JsonSerializerOptions { UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow });
        }
        catch (JsonException e)
        {
            throw new FormatException($"Not a dataset cursor state: {e.Message}", e);
        }
        if (state is null) throw new FormatException("Not a dataset cursor state: null.");
        var problem = state.Problem();
        if (problem is not null) throw new FormatException($"Invalid dataset cursor state: {problem}");
        return state;
    }

    internal string? Problem() =>
        DatasetSize < 1 ? $"DatasetSize must be at least 1; got {DatasetSize}." :
        Epoch < 0 ? $"Epoch must be non-negative; got {Epoch}." :
        Position < 0 || Position >= DatasetSize ? $"Position must be in [0, {DatasetSize}); got {Position}." :
        null;
}

/// <summary>
/// A deterministic, resumable walk over a dataset's indices: epoch after epoch, each a permutation drawn from
/// (seed, epoch) by <see cref="DeterministicRandom"/> (or the identity when shuffling is off). Save
/// <see cref="State"/> with a checkpoint; a cursor rebuilt from it yields exactly the indices the original would
/// have yielded next. Not thread-safe: one owner (the learner, or the store transaction drawing refills) at a time.
/// </summary>
public sealed class DatasetCursor
{
    private int[] _order = [];
    private int _orderEpoch = -1;

    /// <summary>A cursor at the start of epoch 0.</summary>
    public DatasetCursor(int datasetSize, ulong seed, bool shuffle = true)
        : this(new CursorState(datasetSize, seed, shuffle, 0, 0)) { }

    /// <summary>A cursor at <paramref name="state"/>.</summary>
    public DatasetCursor(CursorState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var problem = state.Problem();
        if (problem is not null) throw new ArgumentException($"Invalid dataset cursor state: {problem}", nameof(state));
        DatasetSize = state.DatasetSize;
        Seed = state.Seed;
        Shuffle = state.Shuffle;
        Epoch = state.Epoch;
        Position = state.Position;
    }

    /// <summary>A cursor resumed from <paramref name="state"/> over a dataset of <paramref name="datasetSize"/>
    /// examples; refuses a state saved for a dataset of another size.</summary>
    public static DatasetCursor Resume(CursorState state, int datasetSize)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.DatasetSize != datasetSize)
            throw new InvalidOperationException(
                $"The saved cursor is for a dataset of {state.DatasetSize} examples but this dataset has {datasetSize}; " +
                "resuming would draw different prompts.");
        return new DatasetCursor(state);
    }

    /// <summary>Examples in the dataset.</summary>
    public int DatasetSize { get; }

    /// <summary>Shuffle seed.</summary>
    public ulong Seed { get; }

    /// <summary>Whether epochs are shuffled.</summary>
    public bool Shuffle { get; }

    /// <summary>Current epoch.</summary>
    public int Epoch { get; private set; }

    /// <summary>Next position in the current epoch's order.</summary>
    public int Position { get; private set; }

    /// <summary>The state to save.</summary>
    public CursorState State => new(DatasetSize, Seed, Shuffle, Epoch, Position);

    /// <summary>The next dataset index; moves to the next epoch after the last one.</summary>
    public int Next()
    {
        var index = Order()[Position];
        if (++Position == DatasetSize)
        {
            Position = 0;
            Epoch = checked(Epoch + 1);
        }
        return index;
    }

    /// <summary>The next <paramref name="count"/> indices.</summary>
    public int[] Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var indices = new int[count];
        for (var i = 0; i < count; i++) indices[i] = Next();
        return indices;
    }

    /// <summary>The order of epoch <paramref name="epoch"/> (a permutation of 0 .. DatasetSize − 1).</summary>
    public int[] EpochOrder(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        var order = new int[DatasetSize];
        for (var i = 0; i < order.Length; i++) order[i] = i;
        if (Shuffle) new DeterministicRandom(DeterministicRandom.Mix(Seed, (ulong)epoch)).Shuffle(order.AsSpan());
        return order;
    }

    private int[] Order()
    {
        if (_orderEpoch != Epoch)
        {
            _order = EpochOrder(Epoch);
            _orderEpoch = Epoch;
        }
        return _order;
    }
}
