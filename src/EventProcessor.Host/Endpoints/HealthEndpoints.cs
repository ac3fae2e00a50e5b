using System.Text.Json.Serialization;
using EventProcessor.Host.Configuration;
using EventProcessor.Ingress.Writing;

namespace EventProcessor.Host.Endpoints;

/// <summary>
/// <c>GET /health</c>: the seed's body, plus the backlog and skipped count. Always open, for probes. The registered
/// event types (<c>registry.eventTypes</c>) name tenants' types and the ingress counts show their traffic, so they are
/// shown only to the admin key, or to everyone with <c>HEALTH_DETAILS</c> (by default in Development only); a client's
/// key shows nothing more than none.
/// </summary>
internal static class HealthEndpoints
{
    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder endpoints)
    {
        // Uptime counts from when this service mapped its endpoints, not from the first probe.
        var startedAt = endpoints.ServiceProvider.GetRequiredService<TimeProvider>().GetUtcNow();
        endpoints.MapGet(
                "/health",
                (HttpRequest request, EventEngine engine, IngressStats ingress, ServiceSettings settings, IHostEnvironment environment,
                    TimeProvider timeProvider, CancellationToken cancellationToken) =>
                    GetHealthAsync(
                        engine,
                        ingress,
                        timeProvider,
                        startedAt,
                        settings.ShowsHealthDetails(environment) || (ApiKeyFilter.PresentedKey(request) is { } key && ApiKeyFilter.IsAdminKey(settings, key)),
                        cancellationToken))
            .AllowAnonymous()
            .DisableRequestTimeout(); // nothing to receive; the database read has its own 5 s
        return endpoints;
    }

    private static async Task<IResult> GetHealthAsync(
        EventEngine engine,
        IngressStats ingress,
        TimeProvider timeProvider,
        DateTimeOffset startedAt,
        bool details,
        CancellationToken cancellationToken)
    {
        Backlog? backlog = null;
        string? problem = null;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            backlog = await engine.ReadBacklogAsync(timeout.Token);
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The reason stays in the logs of the failing component; a probe only needs to know.
            problem = "database unreachable";
        }

        var now = timeProvider.GetUtcNow();
        var stats = engine.Stats;
        var options = engine.Options;
        var body = new HealthResponse(
            Status: problem is null ? "healthy" : "unhealthy",
            Service: "event-processor",
            Timestamp: now,
            Uptime: (long)(now - startedAt).TotalSeconds,
            Stats: new HealthStats(
                stats.TotalProcessed,
                stats.SuccessCount,
                stats.ErrorCount,
                stats.DeadLetterCount,
                stats.LastProcessedAt,
                stats.SkippedCount,
                stats.ReleasedCount,
                stats.InFlight),
            Config: new HealthConfig(
                (long)options.PollInterval.TotalMilliseconds,
                options.BatchSize,
                options.MaxRetries,
                options.EnablePolling,
                options.Workers),
            Registry: new HealthRegistry(engine.Registry.Registrations.Count, details ? engine.Registry.EventTypes : null),
            Backlog: backlog is null ? null : new HealthBacklog(backlog.Pending, backlog.OldestPendingAgeSeconds),
            Ingress: details ? new HealthIngress(ingress.Written, ingress.Duplicates, ingress.Rejected) : null,
            Error: problem);
        return Results.Json(body, statusCode: problem is null ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
    }

    internal sealed record HealthResponse(
        string Status,
        string Service,
        DateTimeOffset Timestamp,
        long Uptime,
        HealthStats Stats,
        HealthConfig Config,
        HealthRegistry Registry,
        HealthBacklog? Backlog,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] HealthIngress? Ingress,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Error);

    internal sealed record HealthStats(
        long TotalProcessed,
        long SuccessCount,
        long ErrorCount,
        long DeadLetterCount,
        DateTimeOffset? LastProcessedAt,
        long SkippedCount,
        long ReleasedCount,
        int InFlight);

    internal sealed record HealthConfig(long PollIntervalMs, int BatchSize, int MaxRetries, bool PollingEnabled, int Workers);

    internal sealed record HealthRegistry(
        int TotalHandlers,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? EventTypes);

    /// <summary>What the ingress doors did since start-up: rows written, redeliveries recognised, deliveries refused.</summary>
    internal sealed record HealthIngress(long Written, long Duplicates, long Rejected);

    internal sealed record HealthBacklog(long Pending, double? OldestPendingAgeSeconds);
}
