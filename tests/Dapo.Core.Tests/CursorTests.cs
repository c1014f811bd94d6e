using Dapo.Core.Data;

namespace Dapo.Core.Tests;

public class CursorTests
{
    [Fact]
    public void Resumed_from_its_serialised_state_it_yields_the_same_sequence()
    {
        const int size = 37;
        var uninterrupted = new DatasetCursor(size, seed: 2024).Take(200); // more than five epochs

        // Stop and resume at awkward points: mid-epoch, at an epoch boundary, right after a boundary.
        var resumed = new List<int>();
        var cursor = new DatasetCursor(size, seed: 2024);
        foreach (var chunk in new[] { 5, 32, 1, 50, 37, 75 })
        {
            resumed.AddRange(cursor.Take(chunk));
            var json = cursor.State.ToJson();
            cursor = DatasetCursor.Resume(CursorState.FromJson(json), size);
        }
        Assert.Equal(uninterrupted, resumed);
    }

    [Fact]
    public void Each_epoch_is_a_permutation_and_epochs_differ()
    {
        var cursor = new DatasetCursor(50, seed: 1);
        var first = cursor.Take(50);
        var second = cursor.Take(50);
        Assert.Equal(Enumerable.Range(0, 50), first.Order());
        Assert.Equal(Enumerable.Range(0, 50), second.Order());
        Assert.NotEqual(first, second);
        Assert.NotEqual(Enumerable.Range(0, 50), first); // shuffled
        Assert.Equal(2, cursor.Epoch);
        Assert.Equal(0, cursor.Position);
        Assert.NotEqual(first, new DatasetCursor(50, seed: 2).Take(50)); // the seed matters
    }

    [Fact]
    public void Without_shuffling_it_walks_in_file_order()
    {
        var cursor = new DatasetCursor(3, seed: 9, shuffle: false);
        Assert.Equal([0, 1, 2, 0, 1, 2, 0], cursor.Take(7));
        Assert.Equal(new CursorState(3, 9, false, 2, 1), cursor.State);
    }

    [Fact]
    public void The_state_is_a_small_record()
    {
        var cursor = new DatasetCursor(17000, seed: 42);
        cursor.Take(12345);
        var json = cursor.State.ToJson();
        Assert.Equal("""{"DatasetSize":17000,"Seed":42,"Shuffle":true,"Epoch":0,"Position":12345}""", json);
    }

    [Fact]
    public void Resuming_against_another_dataset_or_a_bad_state_fails_clearly()
    {
        var e = Assert.Throws<InvalidOperationException>(() => DatasetCursor.Resume(new CursorState(10, 1, true, 0, 3), 11));
        Assert.Contains("10 examples", e.Message);
        Assert.Throws<FormatException>(() => CursorState.FromJson("""{"DatasetSize":10,"Seed":1,"Shuffle":true,"Epoch":0,"Position":10}"""));
        Assert.Throws<FormatException>(() => CursorState.FromJson("""{"DatasetSize":10,"Seed":1,"Shuffle":true,"Epoch":0,"Position":1,"Extra":2}"""));
        Assert.Throws<FormatException>(() => CursorState.FromJson("nope"));
        Assert.Throws<ArgumentException>(() => new DatasetCursor(0, 1));
    }
}
