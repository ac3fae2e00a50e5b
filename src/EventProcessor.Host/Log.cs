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

    [LoggerMessage(
        3,
        LogLevel.Error,
        "The audit row of {Action} by {Actor} on [{TargetIds}] could not be written; the change itself is done")]
    public static partial void AuditWriteFailed(ILogger logger, string action, string actor, string targetIds, Exception exception);

    [LoggerMessage(
        4,
        LogLevel.Warning,
        "Removed the sample clients {ClientIds}: their keys are public, so they exist only while the service runs in Development without ADMIN_API_KEY")]
    public static partial void SampleClientsRemoved(ILogger logger, string clientIds);
}
