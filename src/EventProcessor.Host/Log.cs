namespace EventProcessor.Host;

internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Critical, "The service stopped on an unexpected error")]
    public static partial void StartFailed(ILogger logger, Exception exception);

    [LoggerMessage(
        2,
        LogLevel.Warning,
        "No ADMIN_API_KEY ({Reason}): the admin endpoints and POST /events accept requests without a key; keep this service on a private network")]
    public static partial void AdminEndpointsOpen(ILogger logger, string reason);
}
