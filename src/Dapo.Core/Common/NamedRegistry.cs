namespace Dapo.Core.Common;

/// <summary>
/// An explicit table of algorithmic pieces chosen by name (a loss aggregation, a reward function, ...), in the manner
/// of verl's <c>register_adv_est</c> / <c>get_policy_loss_fn</c>. Asking for an unknown name fails and lists the
/// known ones; registering a name twice fails instead of silently replacing the first entry. Thread-safe.
/// </summary>
/// <typeparam name="T">What the table holds: an instance or a factory.</typeparam>
public sealed class NamedRegistry<T> where T : class
{
    private readonly Dictionary<string, T> _items = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>A table of <paramref name="kind"/> (used in messages, e.g. "loss aggregation").</summary>
    public NamedRegistry(string kind) => Kind = kind;

    /// <summary>What the table holds, in words.</summary>
    public string Kind { get; }

    /// <summary>The registered names, sorted ordinally.</summary>
    public IReadOnlyList<string> Names
    {
        get
        {
            lock (_lock) return _items.Keys.Order(StringComparer.Ordinal).ToArray();
        }
    }

    /// <summary>Adds <paramref name="item"/> under <paramref name="name"/>; fails if the name is taken.</summary>
    /// <exception cref="InvalidOperationException">The name is already registered.</exception>
    public void Register(string name, T item)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(item);
        lock (_lock)
        {
            if (!_items.TryAdd(name, item))
                throw new InvalidOperationException($"A {Kind} named '{name}' is already registered.");
        }
    }

    /// <summary>The entry named <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No such name; the message lists the known names.</exception>
    public T Get(string name)
    {
        if (TryGet(name, out var item)) return item;
        throw new KeyNotFoundException(UnknownMessage(name));
    }

    /// <summary>The entry named <paramref name="name"/>, if there is one.</summary>
    public bool TryGet(string? name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out T? item)
    {
        item = null;
        if (name is null) return false;
        lock (_lock) return _items.TryGetValue(name, out item);
    }

    /// <summary>Whether <paramref name="name"/> is registered.</summary>
    public bool Contains(string? name) => TryGet(name, out _);

    /// <summary>The message for an unknown name: "Unknown {kind} 'x'. Known: a, b."</summary>
    public string UnknownMessage(string? name) =>
        $"Unknown {Kind} '{name}'. Known: {string.Join(", ", Names)}.";
}
