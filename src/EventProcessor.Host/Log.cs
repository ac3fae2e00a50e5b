namespace EventProcessor.Host;

internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Critical, "The service stopped on an unexpected error")]
    public static partial void StartFailed(ILogger logger, Exception exception);
}
