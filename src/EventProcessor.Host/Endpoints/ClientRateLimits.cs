using System.Globalization;
using System.Threading.RateLimiting;
using EventProcessor.Host.Configuration;
using EventProcessor.Ingress.Clients;

namespace EventProcessor.Host.Endpoints;

/// <summary>
/// How many events each client may publish through <c>POST /events</c>: its own rate (<c>clients add/update --rate</c>)
/// or <c>CLIENT_RATE_LIMIT_PER_SECOND</c>, per instance, a token bucket of one second's events. A request takes as
/// many tokens as it carries events; one that finds too few is refused whole with 429 and <c>Retry-After</c>, and
/// writes nothing. The admin key and open doors (no key configured) are not limited here.
/// </summary>
internal sealed class ClientRateLimits(ServiceSettings settings) : IDisposable
{
    // Keyed by client and rate, so that a rate changed with 'clients update' takes effect with the next request.
    private readonly PartitionedRateLimiter<(string ClientId, int Rate)> _limiter =
        PartitionedRateLimiter.Create<(string ClientId, int Rate), (string ClientId, int Rate)>(
            key => RateLimitPartition.GetTokenBucketLimiter(key, k => new TokenBucketRateLimiterOptions
            {
                TokenLimit = k.Rate,
                TokensPerPeriod = k.Rate,
                ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                QueueLimit = 0,
                AutoReplenishment = true,
            }));

    /// <summary>The client's events per second; 0 is no limit.</summary>
    public int RateOf(Client client) => client.RateLimitPerSecond ?? settings.ClientRateLimitPerSecond;

    /// <summary>
    /// Before the body is read: a refusal when the client has no token left at all, so that a client over its rate
    /// costs no parsing. Null when it may go on.
    /// </summary>
    public IResult? Precheck(Client client)
    {
        var rate = RateOf(client);
        if (rate == 0)
        {
            return null;
        }

        using var lease = _limiter.AttemptAcquire((client.Id, rate), 0);
        return lease.IsAcquired ? null : TooMany(client, rate, lease);
    }

    /// <summary>Takes one token per event, or returns the refusal: 413 when one request carries more than a second's events, else 429.</summary>
    public IResult? Take(Client client, int events)
    {
        var rate = RateOf(client);
        if (rate == 0)
        {
            return null;
        }

        if (events > rate)
        {
            return Results.Problem(
                statusCode: StatusCodes.Status413PayloadTooLarge,
                title: "Too many events in one request",
                detail: $"The request carries {events} events; client '{client.Id}' may send {rate} per second, so at most {rate} in one request. Send them in smaller requests.");
        }

        using var lease = _limiter.AttemptAcquire((client.Id, rate), events);
        return lease.IsAcquired ? null : TooMany(client, rate, lease);
    }

    public void Dispose() => _limiter.Dispose();

    private static RetryAfterResult TooMany(Client client, int rate, RateLimitLease lease)
    {
        var seconds = lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter)
            ? Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds))
            : 1;
        return new RetryAfterResult(
            seconds,
            Results.Problem(
                statusCode: StatusCodes.Status429TooManyRequests,
                title: "Too many events",
                detail: $"Client '{client.Id}' may publish {rate} events per second; nothing was written. Try again in {seconds} s."));
    }

    /// <summary>A problem with a <c>Retry-After</c> header.</summary>
    private sealed class RetryAfterResult(int seconds, IResult inner) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            return inner.ExecuteAsync(httpContext);
        }
    }
}
