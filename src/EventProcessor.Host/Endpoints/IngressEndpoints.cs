using System.Text.Json.Serialization;
using EventProcessor.Host.Configuration;
using EventProcessor.Ingress;
using EventProcessor.Ingress.Classification;
using EventProcessor.Ingress.Clients;
using Npgsql;

namespace EventProcessor.Host.Endpoints;

/// <summary>
/// Door 1: <c>POST /process</c> takes one raw Lambda event (admin key), <c>POST /events</c> takes this product's
/// envelope, one or an array (a client's key, or the admin key). Both answer 202 with the ids written and how many
/// were already there, or a problem+json 4xx that says what to fix; nothing is written unless all of it is accepted.
/// A client's events count against its rate (<see cref="ClientRateLimits"/>).
/// </summary>
internal static class IngressEndpoints
{
    public static IEndpointRouteBuilder MapIngressEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost("/process", ProcessAsync).AddEndpointFilter<ApiKeyFilter>();
        endpoints.MapPost("/events", PublishAsync);
        return endpoints;
    }

    private static async Task<IResult> ProcessAsync(
        HttpRequest request, EventClassifier classifier, EventIngress ingress, EventEngine engine, CancellationToken cancellationToken)
    {
        var (body, refused) = await ReadBodyAsync(request, classifier.Limits.MaxBodyBytes, ingress, cancellationToken);
        if (refused is not null)
        {
            return refused;
        }

        return await AcceptAsync(
            () => classifier.ClassifyLambdaEvent(body),
            "ingress:http",
            ingress,
            engine,
            sender: null,
            cancellationToken);
    }

    private static async Task<IResult> PublishAsync(
        HttpRequest request,
        EventClassifier classifier,
        EventIngress ingress,
        EventEngine engine,
        ClientStore clients,
        ClientRateLimits rates,
        ServiceSettings settings,
        CancellationToken cancellationToken)
    {
        Client? client;
        try
        {
            (client, var unidentified) = await IdentifyAsync(request, settings, clients, cancellationToken);
            if (unidentified is not null)
            {
                return unidentified;
            }
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
        {
            return DatabaseUnavailable();
        }

        if (client is not null && rates.Precheck(client) is { } overRate)
        {
            ingress.RecordRejected();
            return overRate;
        }

        var (body, refused) = await ReadBodyAsync(request, classifier.Limits.MaxBodyBytes, ingress, cancellationToken);
        if (refused is not null)
        {
            return refused;
        }

        return await AcceptAsync(
            () => new Classification(classifier.ClassifyEnvelopes(body, client?.Id)),
            client is null ? "ingress:http" : $"client:{client.Id}",
            ingress,
            engine,
            client is null ? null : (client, rates),
            cancellationToken);
    }

    // sender: the client whose rate the delivery's events are taken from; null when no client sent it.
    private static async Task<IResult> AcceptAsync(
        Func<Classification> classify,
        string createdBy,
        EventIngress ingress,
        EventEngine engine,
        (Client Client, ClientRateLimits Rates)? sender,
        CancellationToken cancellationToken)
    {
        try
        {
            Classification classification;
            try
            {
                classification = classify();
            }
            catch (IngressRejectedException)
            {
                ingress.RecordRejected();
                throw;
            }

            if (sender is var (client, rates) && rates.Take(client, classification.Events.Count) is { } overRate)
            {
                ingress.RecordRejected();
                return overRate;
            }

            var receipt = await ingress.AcceptAsync(classification.Events, createdBy, cancellationToken);
            if (receipt.Written > 0)
            {
                engine.Wake();
            }

            return Results.Json(
                new IngressResponse(receipt.Ids, receipt.Written, receipt.Duplicates, classification.Acknowledged),
                statusCode: StatusCodes.Status202Accepted);
        }
        catch (IngressRejectedException rejected)
        {
            return Rejected(rejected);
        }
        catch (PostgresException exception) when (exception.SqlState.StartsWith("22", StringComparison.Ordinal))
        {
            // A data exception: the row itself is what PostgreSQL refuses. The classifier refuses what it knows of
            // (NUL characters, unpaired surrogates, huge exponents); what remains is a number jsonb cannot hold.
            ingress.RecordRejected();
            return Results.Problem(
                statusCode: StatusCodes.Status400BadRequest,
                title: "Payload cannot be stored",
                detail: exception.SqlState == PostgresErrorCodes.NumericValueOutOfRange
                    ? "The event has a number too large or too precise to store (at most 131,072 digits before the point and 16,383 after); send it as a string."
                    : "The event has a value the database cannot store; check its numbers and strings, or send such values as strings.");
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
        {
            return DatabaseUnavailable();
        }
    }

    private static IResult DatabaseUnavailable() =>
        Results.Problem(
            statusCode: StatusCodes.Status503ServiceUnavailable,
            title: "Database unavailable",
            detail: "The database cannot be reached right now; nothing was written. Try again shortly: the same delivery is recognised and written once.");

    /// <summary>
    /// Who is publishing: a client (its id becomes the events' tenant), the admin (no tenant), or, when no
    /// <c>ADMIN_API_KEY</c> is configured (Development, or <c>ALLOW_UNAUTHENTICATED</c>), anyone (no tenant). An
    /// unknown key is refused rather than ignored.
    /// </summary>
    private static async Task<(Client? Client, IResult? Refused)> IdentifyAsync(
        HttpRequest request, ServiceSettings settings, ClientStore clients, CancellationToken cancellationToken)
    {
        var key = ApiKeyFilter.PresentedKey(request);
        if (key is null)
        {
            return settings.AdminApiKey is null
                ? (null, null)
                : (null, Unauthorized("This endpoint needs a client's API key (or the admin key) in X-API-Key or as Authorization: Bearer <key>."));
        }

        if (ApiKeyFilter.IsAdminKey(settings, key))
        {
            return (null, null);
        }

        var client = await clients.FindByApiKeyAsync(key, cancellationToken);
        if (client is null)
        {
            return (null, Unauthorized("The API key belongs to no client. Create one with: EventProcessor.Host clients add --id ID --types TYPE[,TYPE]."));
        }

        return client.Active
            ? (client, null)
            : (null, Results.Problem(
                statusCode: StatusCodes.Status403Forbidden,
                title: "Client disabled",
                detail: $"Client '{client.Id}' is disabled; its key no longer publishes."));
    }

    private static async Task<(byte[] Body, IResult? Refused)> ReadBodyAsync(
        HttpRequest request, int limit, EventIngress ingress, CancellationToken cancellationToken)
    {
        var (body, refused) = await RequestBody.ReadJsonAsync(request, limit, "MAX_BODY_BYTES", cancellationToken);
        if (refused is not null)
        {
            ingress.RecordRejected();
        }

        return (body, refused);
    }

    private static IResult Rejected(IngressRejectedException rejected)
    {
        var (status, title) = rejected.Rejection switch
        {
            IngressRejection.TooLarge => (StatusCodes.Status413PayloadTooLarge, "Payload too large"),
            IngressRejection.Forbidden => (StatusCodes.Status403Forbidden, "Event type not allowed for this client"),
            IngressRejection.SchemaViolation => (StatusCodes.Status422UnprocessableEntity, "Schema violation"),
            IngressRejection.Conflict => (StatusCodes.Status409Conflict, "Event id taken"),
            _ => (StatusCodes.Status400BadRequest, "Malformed event"),
        };
        return Results.Problem(
            statusCode: status,
            title: title,
            detail: rejected.Message,
            extensions: rejected.Violations.Count == 0
                ? null
                : new Dictionary<string, object?> { ["violations"] = rejected.Violations });
    }

    private static IResult Unauthorized(string detail) =>
        Results.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "Unauthorized", detail: detail);

    internal sealed record IngressResponse(
        IReadOnlyList<Guid> Ids,
        int Written,
        int Duplicates,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Acknowledged);
}
