using EventProcessor.Handling;

namespace EventProcessor.Handlers.Aws;

/// <summary>
/// What one WebSocket request says about its connection: the parameters of the <c>websocket_connections</c>
/// statements in <see cref="AwsSql"/>. Times are UTC: Npgsql writes only UTC values to timestamptz.
/// </summary>
/// <param name="ConnectionId">The connection (the row's key).</param>
/// <param name="ConnectedAt">When the connection was opened, if the request says.</param>
/// <param name="EventAt">When the request arrived: <c>requestTimeEpoch</c>, else when its events row was written.</param>
/// <param name="SourceIp">The client's address.</param>
/// <param name="ApiId">The API's id.</param>
/// <param name="Stage">The API's stage.</param>
internal sealed record WebSocketConnectionRow(
    string ConnectionId,
    DateTimeOffset? ConnectedAt,
    DateTimeOffset EventAt,
    string? SourceIp,
    string? ApiId,
    string? Stage)
{
    /// <exception cref="MalformedPayloadException">The request has no <c>requestContext.connectionId</c>.</exception>
    public static WebSocketConnectionRow From(EventContext<WebSocketRequest> context)
    {
        var request = context.Payload.RequestContext;
        if (request is null || string.IsNullOrWhiteSpace(request.ConnectionId))
        {
            throw new MalformedPayloadException(
                $"{context.Event.EventType} has no requestContext.connectionId, so it names no connection to record.");
        }

        return new WebSocketConnectionRow(
            request.ConnectionId,
            FromEpochMilliseconds(request.ConnectedAt),
            FromEpochMilliseconds(request.RequestTimeEpoch) ?? context.Event.CreatedAt.ToUniversalTime(),
            request.Identity?.SourceIp,
            request.ApiId,
            request.Stage);
    }

    private static DateTimeOffset? FromEpochMilliseconds(long? milliseconds) =>
        milliseconds is { } value ? DateTimeOffset.FromUnixTimeMilliseconds(value) : null;
}
