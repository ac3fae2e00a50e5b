using EventProcessor.Host.Configuration;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace EventProcessor.Host;

/// <summary>
/// Kestrel's limits, each set here so that no server default decides what a slow or greedy client gets away with.
/// Endpoints read less than <see cref="KestrelServerLimits.MaxRequestBodySize"/> when they take less (admin: 4 KiB).
/// The data rates alone let a body of 1 MiB take over an hour at 240 bytes/s, so a request also has a deadline
/// (<see cref="ReceiveDeadline"/>), and the connections one instance holds are capped.
/// </summary>
internal static class HttpLimits
{
    /// <summary>How long a client has to send all of a request's headers; a slower one (slowloris) is cut off. 10 s.</summary>
    public static readonly TimeSpan RequestHeadersTimeout = TimeSpan.FromSeconds(10);

    /// <summary>A body being read must arrive at 240 bytes/s or faster, after a 5 s grace; a slower one is cut off.</summary>
    public static readonly MinDataRate MinRequestBodyDataRate = new(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(5));

    /// <summary>A client must read responses at 240 bytes/s or faster, after a 5 s grace.</summary>
    public static readonly MinDataRate MinResponseDataRate = new(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(5));

    public static void Apply(KestrelServerLimits limits, ServiceSettings settings)
    {
        // The largest body any endpoint takes (MAX_BODY_BYTES), never Kestrel's 28.6 MB default.
        limits.MaxRequestBodySize = settings.MaxBodyBytes;
        limits.RequestHeadersTimeout = RequestHeadersTimeout;
        limits.MinRequestBodyDataRate = MinRequestBodyDataRate;
        limits.MinResponseDataRate = MinResponseDataRate;
        limits.MaxRequestHeadersTotalSize = 32 * 1024;
        limits.MaxRequestLineSize = 8 * 1024;
        limits.KeepAliveTimeout = TimeSpan.FromSeconds(130);

        // Beyond it Kestrel accepts a connection and closes it at once; the connections it holds are served as usual.
        limits.MaxConcurrentConnections = settings.MaxConcurrentConnections;
    }

    /// <summary>
    /// The deadline for receiving a request: <c>REQUEST_TIMEOUT_MS</c> from when its headers are read until its body
    /// is read (<see cref="Endpoints.RequestBody"/> lifts it then). What the endpoint does next is bounded by its own
    /// limits, so a run of <c>POST /process-event</c> may take up to <c>HANDLER_TIMEOUT_MS</c>, whichever is longer.
    /// Past it the body's read is cancelled and the answer is 408, a problem (written by the status-code pages, once
    /// the request's own token is back), with <c>Connection: close</c>: Kestrel then reads what more arrives for at most
    /// 5 s, so that the client reads the answer rather than a reset, and closes the connection.
    /// </summary>
    public static RequestTimeoutPolicy ReceiveDeadline(ServiceSettings settings) => new()
    {
        Timeout = TimeSpan.FromMilliseconds(settings.RequestTimeoutMs),
        TimeoutStatusCode = StatusCodes.Status408RequestTimeout,
        WriteTimeoutResponse = static context =>
        {
            context.Response.Headers.Connection = "close";
            return Task.CompletedTask;
        },
    };
}
