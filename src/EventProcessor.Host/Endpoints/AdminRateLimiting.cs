using System.Globalization;
using System.Threading.RateLimiting;
using EventProcessor.Host.Configuration;
using Microsoft.AspNetCore.RateLimiting;
using Npgsql;

namespace EventProcessor.Host.Endpoints;

/// <summary>
/// Limits on the admin endpoints, with ASP.NET Core's rate limiter: at most <c>ADMIN_RATE_LIMIT_PER_MINUTE</c>
/// requests a minute, and at most half the engine's connection pool running at once, so that admin runs can never
/// take the connections the poll loop needs. Beyond either: 429 problem+json with Retry-After, at once (no queue).
/// </summary>
/// <remarks>
/// Callers with the admin key and callers without it count apart: a flood of unauthenticated requests (401s) cannot
/// use up the admin's budget. When the endpoints are open (no key) everyone is one caller.
/// </remarks>
internal static class AdminRateLimiting
{
    public const string Policy = "admin";

    /// <summary>What a request that ran into the concurrency limit is told to wait: a run takes about this long.</summary>
    private static readonly TimeSpan BusyRetryAfter = TimeSpan.FromSeconds(1);

    public static IServiceCollection AddAdminRateLimiting(this IServiceCollection services, ServiceSettings settings)
    {
        var concurrency = ConcurrencyLimit(settings);
        return services.AddRateLimiter(options =>
        {
            options.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            options.OnRejected = (context, _) => RejectAsync(context, settings, concurrency);
            options.AddPolicy(Policy, context => RateLimitPartition.Get(Caller(context, settings), _ => RateLimiter.CreateChained(
                // Concurrency first: a request it turns away spends nothing of the minute's budget.
                new ConcurrencyLimiter(new ConcurrencyLimiterOptions { PermitLimit = concurrency, QueueLimit = 0 }),
                new FixedWindowRateLimiter(new FixedWindowRateLimiterOptions
                {
                    PermitLimit = settings.AdminRateLimitPerMinute,
                    Window = TimeSpan.FromMinutes(1),
                    QueueLimit = 0,
                }))));
        });
    }

    /// <summary>Half the engine's pool (<c>Max Pool Size</c>, Npgsql's default 100), at least one.</summary>
    public static int ConcurrencyLimit(ServiceSettings settings) =>
        Math.Max(1, new NpgsqlConnectionStringBuilder(settings.ConnectionString).MaxPoolSize / 2);

    private static string Caller(HttpContext context, ServiceSettings settings) =>
        settings.AdminApiKey is null ? "anonymous"
        : ApiKeyFilter.PresentedKey(context.Request) is { } key && ApiKeyFilter.IsAdminKey(settings, key) ? "admin"
        : "unauthenticated";

    private static async ValueTask RejectAsync(OnRejectedContext context, ServiceSettings settings, int concurrency)
    {
        var overBudget = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter);
        var wait = overBudget ? retryAfter : BusyRetryAfter;
        var seconds = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));
        context.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        var detail = overBudget
            ? $"More than {settings.AdminRateLimitPerMinute} admin requests this minute (ADMIN_RATE_LIMIT_PER_MINUTE); try again in {seconds} s."
            : $"{concurrency} admin requests are running already; try again in {seconds} s.";
        await Results.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: "Too many requests", detail: detail)
            .ExecuteAsync(context.HttpContext);
    }
}
