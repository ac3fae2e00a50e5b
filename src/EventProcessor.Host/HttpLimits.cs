using EventProcessor.Host.Configuration;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace EventProcessor.Host;

/// <summary>
/// Kestrel's limits, each set here so that no server default decides what a slow or greedy client gets away with.
/// Endpoints read less than <see cref="KestrelServerLimits.MaxRequestBodySize"/> when they take less (admin: 4 KiB).
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
    }
}
