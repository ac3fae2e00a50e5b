using System.Text.Json;
using EventProcessor.Host.Admin;
using EventProcessor.Host.Configuration;
using EventProcessor.Processing;
using Npgsql;

namespace EventProcessor.Host.Endpoints;

/// <summary>
/// The admin endpoints, behind the admin key and the admin rate limit. <c>POST /process-event</c> and
/// <c>POST /process-batch</c> run work now, even with polling disabled, and answer 202 with the seed's body once the
/// work is done, with its outcome added; <c>POST /replay</c> and <c>POST /dead-letters/{id}/retry</c> (in
/// AdminEndpoints.Replay.cs) make processed events pending again. Every accepted request is written to
/// <c>audit_log</c>, except a batch that claimed nothing; a refused one changes nothing and is not.
/// </summary>
internal static partial class AdminEndpoints
{
    /// <summary>The largest body an admin endpoint reads: they take an id or nothing, so anything bigger is not for them.</summary>
    public const int MaxBodyBytes = 4 * 1024;

    public static IEndpointRouteBuilder MapAdminEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var admin = endpoints.MapGroup("").AddEndpointFilter<ApiKeyFilter>().RequireRateLimiting(AdminRateLimiting.Policy);
        admin.MapPost("/process-event", ProcessEventAsync);
        admin.MapPost("/process-batch", ProcessBatchAsync);
        admin.MapPost("/replay", ReplayAsync);
        admin.MapPost("/dead-letters/{id}/retry", RetryDeadLetterAsync);
        return endpoints;
    }

    private static async Task<IResult> ProcessEventAsync(
        HttpRequest request, EventEngine engine, AdminStore store, ServiceSettings settings, IHostApplicationLifetime lifetime)
    {
        var (eventId, problem) = await ReadEventIdAsync(request);
        if (problem is not null)
        {
            return problem;
        }

        ProcessEventResult result;
        try
        {
            // The application's stopping token, not the request's: a client that hangs up must not fail the event.
            result = await engine.ProcessEventAsync(eventId, lifetime.ApplicationStopping);
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
        {
            return DatabaseUnavailable();
        }

        var id = eventId.ToString();
        if (result.Status == ProcessEventStatus.Processed)
        {
            await store.RecordAsync(
                Audit(request, settings), "process_event", [eventId], OutcomeName(result.Outcome) ?? "unknown", null, lifetime.ApplicationStopping);
        }

        return result.Status switch
        {
            ProcessEventStatus.Processed => Results.Json(
                new ProcessEventResponse(true, "Event processing started", id, OutcomeName(result.Outcome), Summary(result.Outcome)),
                statusCode: StatusCodes.Status202Accepted),
            ProcessEventStatus.NotFound => Problem(StatusCodes.Status404NotFound, "Event not found", $"No event has id {id}.", id),
            ProcessEventStatus.AlreadyProcessed => Problem(
                StatusCodes.Status409Conflict,
                "Event already processed",
                $"Event {id} is already processed. To run it again, replay it: POST /replay {{\"event_ids\": [\"{id}\"]}}.",
                id),
            ProcessEventStatus.WaitingForEarlierEvent => Problem(
                StatusCodes.Status409Conflict,
                "Event waits for an earlier event of its aggregate",
                $"Event {id} waits for event {result.WaitingFor} of the same aggregate, which is still pending; events of one aggregate run in order.",
                id),
            _ => Problem(StatusCodes.Status409Conflict, "Event is being processed", $"Event {id} is held by a worker right now.", id),
        };
    }

    private static async Task<IResult> ProcessBatchAsync(
        HttpRequest request, EventEngine engine, AdminStore store, ServiceSettings settings, IHostApplicationLifetime lifetime)
    {
        if (await ReadNoBodyAsync(request) is { } refused)
        {
            return refused;
        }

        IReadOnlyList<EventRunResult> ran;
        try
        {
            ran = await engine.RunBatchNowAsync(lifetime.ApplicationStopping);
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
        {
            return DatabaseUnavailable();
        }

        // A batch that claimed nothing changed nothing, and auditing it would let anyone with the key grow the table
        // at the rate limit for free.
        var claimed = ran.Count;
        if (claimed > 0)
        {
            var outcomes = ran.GroupBy(r => OutcomeName(r.Outcome) ?? "unknown").ToDictionary(g => g.Key, g => g.Count());
            await store.RecordAsync(
                Audit(request, settings), "process_batch", [.. ran.Select(r => r.EventId)], "claimed", new { claimed, outcomes }, lifetime.ApplicationStopping);
        }

        return Results.Json(
            new ProcessBatchResponse(true, "Batch processing started", claimed),
            statusCode: StatusCodes.Status202Accepted);
    }

    private static async Task<(Guid EventId, IResult? Problem)> ReadEventIdAsync(HttpRequest request)
    {
        const string Expected = "Send a JSON body {\"event_id\": \"<uuid>\"}.";
        var (body, refused) = await RequestBody.ReadJsonAsync(request, MaxBodyBytes, null, request.HttpContext.RequestAborted);
        if (refused is not null)
        {
            return (default, refused);
        }

        using var document = ParseOrNull(body);
        if (document is null)
        {
            return (default, Problem(StatusCodes.Status400BadRequest, "Malformed JSON", $"The body is not valid JSON. {Expected}"));
        }

        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("event_id", out var value))
        {
            return (default, Problem(StatusCodes.Status400BadRequest, "Missing event_id", $"event_id is required. {Expected}"));
        }

        if (value.ValueKind != JsonValueKind.String || !Guid.TryParse(value.GetString(), out var eventId))
        {
            return (default, Problem(StatusCodes.Status400BadRequest, "Malformed event_id", $"event_id must be a UUID string. {Expected}"));
        }

        return UnknownField(root, "event_id") is { } unknown
            ? (default, Problem(StatusCodes.Status400BadRequest, "Unknown field", $"The body has a field '{unknown}'; it takes event_id only. {Expected}"))
            : (eventId, null);
    }

    /// <summary>A body for an endpoint that takes none: nothing, or an empty JSON object.</summary>
    private static async Task<IResult?> ReadNoBodyAsync(HttpRequest request)
    {
        var (body, refused) = await RequestBody.ReadJsonAsync(request, MaxBodyBytes, null, request.HttpContext.RequestAborted);
        if (refused is not null || body.Length == 0)
        {
            return refused;
        }

        using var document = ParseOrNull(body);
        return document is { RootElement: { ValueKind: JsonValueKind.Object } root } && UnknownField(root) is null
            ? null
            : Problem(StatusCodes.Status400BadRequest, "Unexpected body", $"{request.Path} takes no body; send none, or {{}}.");
    }

    /// <summary>
    /// Parses a small admin body, or returns null when it is not well-formed JSON text: a name given twice is refused
    /// (no two readers can disagree on a value), and so is a string with an unpaired surrogate, which
    /// System.Text.Json parses but then cannot decode (it throws InvalidOperationException, not JsonException).
    /// </summary>
    private static JsonDocument? ParseOrNull(byte[] body)
    {
        JsonDocument? document = null;
        try
        {
            document = JsonDocument.Parse(body, new JsonDocumentOptions { AllowDuplicateProperties = false, MaxDepth = 16 });
            DecodeEveryString(document.RootElement);
            return document;
        }
        catch (Exception exception) when (exception is JsonException or InvalidOperationException)
        {
            document?.Dispose();
            return null;
        }
    }

    private static void DecodeEveryString(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                _ = element.GetString();
                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    DecodeEveryString(item);
                }

                break;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    _ = property.Name;
                    DecodeEveryString(property.Value);
                }

                break;
        }
    }

    /// <summary>The first property of <paramref name="root"/> not in <paramref name="known"/>, shortened for a message; null when there is none.</summary>
    private static string? UnknownField(JsonElement root, params string[] known)
    {
        foreach (var property in root.EnumerateObject())
        {
            if (!known.Contains(property.Name, StringComparer.Ordinal))
            {
                return property.Name.Length <= 64 ? property.Name : string.Concat(property.Name.AsSpan(0, 63), "…");
            }
        }

        return null;
    }

    /// <summary>Who is asking: the admin key's holder, or anyone when the admin endpoints are open. Never the key itself.</summary>
    private static AuditContext Audit(HttpRequest request, ServiceSettings settings) =>
        new(settings.AdminApiKey is null ? "anonymous" : "admin", request.HttpContext.TraceIdentifier);

    private static IResult DatabaseUnavailable() =>
        Results.Problem(
            statusCode: StatusCodes.Status503ServiceUnavailable,
            title: "Database unavailable",
            detail: "The database cannot be reached right now; try again shortly.");

    private static IResult Problem(int status, string title, string detail, string? eventId = null) =>
        Results.Problem(
            statusCode: status,
            title: title,
            detail: detail,
            extensions: eventId is null ? null : new Dictionary<string, object?> { ["event_id"] = eventId });

    /// <summary>
    /// What a caller is told about an outcome that is not a success. Never the engine's reason itself: that quotes
    /// the handler's exception, which may carry anything (a connection string, a customer's data); it stays in the
    /// database, where the admin can read it.
    /// </summary>
    private static string? Summary(OutcomeKind? outcome) => outcome switch
    {
        OutcomeKind.RetryLater => "A handler failed; the event will be retried. The reason is in the event's metadata.last_error.",
        OutcomeKind.DeadLettered => "The event was dead-lettered; the reason is in event_dead_letters.error_message.",
        OutcomeKind.Skipped => "No handler takes this event type; the event is marked processed and skipped.",
        OutcomeKind.Released => "The event was released unfinished (shutdown, or a lost database connection) and will run again.",
        _ => null,
    };

    private static string? OutcomeName(OutcomeKind? outcome) => outcome switch
    {
        OutcomeKind.Completed => "completed",
        OutcomeKind.RetryLater => "retry_scheduled",
        OutcomeKind.DeadLettered => "dead_lettered",
        OutcomeKind.Skipped => "skipped",
        OutcomeKind.Released => "released",
        _ => null,
    };

    internal sealed record ProcessEventResponse(
        bool Success,
        string Message,
        [property: System.Text.Json.Serialization.JsonPropertyName("event_id")] string EventId,
        string? Outcome,
        [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
        string? Error);

    internal sealed record ProcessBatchResponse(bool Success, string Message, int Claimed);
}
