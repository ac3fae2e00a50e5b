using EventProcessor.Events;

namespace EventProcessor.Processing;

/// <summary>
/// One poll loop's share of a claim made for every loop that was waiting to claim: claims are serialised anyway (the
/// claim lock), so the loops that queue behind one claim are served by the next, one statement for all of them.
/// </summary>
/// <param name="Events">This loop's events, in the claim's order. Every claimed event of an aggregate is in one share.</param>
/// <param name="More">More may be due now (see <see cref="ClaimedBatch.More"/>).</param>
internal sealed record SharedClaim(List<StoredEvent> Events, bool More)
{
    /// <summary>
    /// Splits <paramref name="claimed"/> (in the claim's order) into <paramref name="shares"/> shares, cut as the loops' own claims
    /// would have been: the first <paramref name="batchSize"/> events to the first share, the next to the second, and
    /// so on, except that every event of an aggregate goes to the share that has its first one, in order, so that
    /// per-aggregate order holds across the loops. A share can hold more than a batch only then; the loop runs it in
    /// batches, one after the other.
    /// </summary>
    public static List<StoredEvent>[] Split(IReadOnlyList<StoredEvent> claimed, int shares, int batchSize)
    {
        var split = new List<StoredEvent>[shares];
        for (var i = 0; i < shares; i++)
        {
            split[i] = [];
        }

        Dictionary<AggregateKey, int>? shareOfAggregate = null;
        var filling = 0;
        foreach (var storedEvent in claimed)
        {
            if (storedEvent.Aggregate is { } aggregate && shareOfAggregate?.GetValueOrDefault(aggregate, -1) is int taken and >= 0)
            {
                split[taken].Add(storedEvent);
                continue;
            }

            while (filling < shares - 1 && split[filling].Count >= batchSize)
            {
                filling++;
            }

            split[filling].Add(storedEvent);
            if (storedEvent.Aggregate is { } first)
            {
                (shareOfAggregate ??= [])[first] = filling;
            }
        }

        return split;
    }
}
