namespace EventProcessor.Ingress.Writing;

/// <summary>What a write did.</summary>
/// <param name="Ids">The id of every event delivered, in order, written now or before.</param>
/// <param name="Written">How many rows this write added.</param>
/// <param name="Duplicates">How many events were already in the table (or repeated within the delivery).</param>
public sealed record IngressReceipt(IReadOnlyList<Guid> Ids, int Written, int Duplicates);
