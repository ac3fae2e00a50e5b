using Dapper;
using EventProcessor.Handling;

namespace EventProcessor.Handlers.Aws;

/// <summary>
/// Moves a known connection's <c>last_event_at</c> to the time of a WebSocket MESSAGE. A message for a connection
/// that has no row yet changes nothing: rows are made by CONNECT and DISCONNECT (<see cref="AwsSql.TouchConnection"/>).
/// </summary>
[HandlesEvent("websocket.message", Description = "Updates last_event_at of a known connection in websocket_connections")]
public sealed class WebSocketMessageHandler : IEventHandler<WebSocketRequest>
{
    /// <inheritdoc />
    /// <exception cref="MalformedPayloadException">The request has no <c>requestContext.connectionId</c>.</exception>
    public async Task HandleAsync(EventContext<WebSocketRequest> context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var connection = WebSocketConnectionRow.From(context);
        var db = await context.GetTransactionAsync(cancellationToken);
        await db.Connection.ExecuteAsync(new CommandDefinition(
            AwsSql.TouchConnection, connection, db.Transaction, cancellationToken: cancellationToken));
    }
}
