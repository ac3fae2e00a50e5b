using System.Text.Json;
using System.Text.Json.Serialization;
using EventProcessor.Host.Admin;
using EventProcessor.Host.Configuration;
using Npgsql;

namespace EventProcessor.Host.Endpoints;

/// <summary>
/// <c>POST /replay</c> and <c>POST /dead-letters/{id}/retry</c>: the seed's replay over HTTP. Each is one statement
/// with its audit row; the <c>events_reset_on_replay</c> trigger gives every replayed event a fresh start.
/// </summary>
internal static partial class AdminEndpoints
{
    /// <summary>The most ids one replay takes; more is a job for SQL.</summary>
    public const int MaxReplayIds = 1_000;

    /// <summary>The largest body <c>POST /replay</c> reads: room for <see cref="MaxReplayIds"/> ids.</summary>
    public const int MaxReplayBodyBytes = 64 * 1024;

    private static async Task<IResult> ReplayAsync(
        HttpRequest request, AdminStore store, EventEngine engine, ServiceSettings settings, CancellationToken cancellationToken)
    {
        var (ids, problem) = await ReadEventIdsAsync(request);
        if (problem is not null)
        {
            return problem;
        }

        ReplayResult result;
        try
        {
            result = await store.ReplayAsync(ids, Audit(request, settings), cancellationToken);
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
        {
            return DatabaseUnavailable();
        }

        if (result.Unknown.Count == ids.Count)
        {
            return Results.Problem(
                statusCode: StatusCodes.Status404NotFound,
                title: "Events not found",
                detail: $"None of the {ids.Count} event ids is in the events table; nothing was replayed.",
                extensions: new Dictionary<string, object?> { ["unknown_ids"] = result.Unknown });
        }

        if (result.Reset.Count > 0)
        {
            engine.Wake();
        }

        return Results.Json(
            new ReplayResponse(
                true,
                result.Reset.Count == 0 ? "Nothing to replay: the known events are still pending" : "Events replayed",
                result.Reset.Count,
                result.Reset,
                result.AlreadyPending,
                result.Unknown),
            statusCode: StatusCodes.Status202Accepted);
    }

    private static async Task<IResult> RetryDeadLetterAsync(
        string id, HttpRequest request, AdminStore store, EventEngine engine, ServiceSettings settings, CancellationToken cancellationToken)
    {
        if (!Guid.TryParse(id, out var deadLetterId))
        {
            return Problem(StatusCodes.Status400BadRequest, "Malformed dead letter id", "The dead letter id in the path must be a UUID (event_dead_letters.id).");
        }

        if (await ReadNoBodyAsync(request) is { } refused)
        {
            return refused;
        }

        DeadLetterRetry retry;
        try
        {
            retry = await store.RetryDeadLetterAsync(deadLetterId, Audit(request, settings), cancellationToken);
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
        {
            return DatabaseUnavailable();
        }

        var extensions = new Dictionary<string, object?> { ["dead_letter_id"] = deadLetterId, ["event_id"] = retry.EventId };
        switch (retry.Status)
        {
            case DeadLetterRetryStatus.Reset:
                engine.Wake();
                return Results.Json(
                    new DeadLetterRetryResponse(true, "Dead-lettered event replayed", deadLetterId, retry.EventId!.Value),
                    statusCode: StatusCodes.Status202Accepted);
            case DeadLetterRetryStatus.NotFound:
                return Results.Problem(
                    statusCode: StatusCodes.Status404NotFound,
                    title: "Dead letter not found",
                    detail: $"No dead letter has id {deadLetterId} (event_dead_letters.id).",
                    extensions: extensions);
            case DeadLetterRetryStatus.NoEvent:
                return Results.Problem(
                    statusCode: StatusCodes.Status409Conflict,
                    title: "Nothing to retry",
                    detail: "This dead letter is a delivery refused at the door, not an event: there is no event to run. Fix it and send it again.",
                    extensions: extensions);
            default:
                return Results.Problem(
                    statusCode: StatusCodes.Status409Conflict,
                    title: "Event no longer dead-lettered",
                    detail: $"Event {retry.EventId} is not dead-lettered any more (it was replayed since); nothing was changed.",
                    extensions: extensions);
        }
    }

    /// <summary>Reads <c>{"event_ids": ["uuid", ...]}</c>: 1 to <see cref="MaxReplayIds"/> distinct UUIDs, and no other field.</summary>
    private static async Task<(IReadOnlyList<Guid> Ids, IResult? Problem)> ReadEventIdsAsync(HttpRequest request)
    {
        const string Expected = "Send a JSON body {\"event_ids\": [\"<uuid>\", ...]}.";
        var (body, refused) = await RequestBody.ReadJsonAsync(request, MaxReplayBodyBytes, null, request.HttpContext.RequestAborted);
        if (refused is not null)
        {
            return ([], refused);
        }

        using var document = ParseOrNull(body);
        if (document is null)
        {
            return ([], Problem(StatusCodes.Status400BadRequest, "Malformed JSON", $"The body is not valid JSON. {Expected}"));
        }

        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("event_ids", out var value))
        {
            return ([], Problem(StatusCodes.Status400BadRequest, "Missing event_ids", $"event_ids is required. {Expected}"));
        }

        if (UnknownField(root, "event_ids") is { } unknown)
        {
            return ([], Problem(StatusCodes.Status400BadRequest, "Unknown field", $"The body has a field '{unknown}'; it takes event_ids only. {Expected}"));
        }

        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() is 0 or > MaxReplayIds)
        {
            return ([], Problem(
                StatusCodes.Status400BadRequest,
                "Malformed event_ids",
                $"event_ids must be an array of 1 to {MaxReplayIds} UUID strings. {Expected}"));
        }

        var ids = new List<Guid>(value.GetArrayLength());
        var seen = new Dictionary<Guid, int>();
        foreach (var element in value.EnumerateArray())
        {
            var index = ids.Count;
            if (element.ValueKind != JsonValueKind.String || !Guid.TryParse(element.GetString(), out var id))
            {
                return ([], Problem(StatusCodes.Status400BadRequest, "Malformed event id", $"event_ids[{index}] is not a UUID string. {Expected}"));
            }

            if (!seen.TryAdd(id, index))
            {
                return ([], Problem(
                    StatusCodes.Status400BadRequest,
                    "Duplicate event id",
                    $"event_ids[{index}] repeats event_ids[{seen[id]}] ({id}); send each id once."));
            }

            ids.Add(id);
        }

        return (ids, null);
    }

    internal sealed record ReplayResponse(
        bool Success,
        string Message,
        int Reset,
        [property: JsonPropertyName("reset_ids")] IReadOnlyList<Guid> ResetIds,
        [property: JsonPropertyName("already_pending_ids")] IReadOnlyList<Guid> AlreadyPendingIds,
        [property: JsonPropertyName("unknown_ids")] IReadOnlyList<Guid> UnknownIds);

    internal sealed record DeadLetterRetryResponse(
        bool Success,
        string Message,
        [property: JsonPropertyName("dead_letter_id")] Guid DeadLetterId,
        [property: JsonPropertyName("event_id")] Guid EventId);
}
