using Dapper;
using EventProcessor.Handling;

namespace EventProcessor.Handlers.Aws;

/// <summary>
/// Records a WebSocket CONNECT in <c>websocket_connections</c>: when it opened, from where, on which API and stage.
/// Safe after the connection's DISCONNECT was handled: the connect never reopens it (<see cref="AwsSql.RecordConnect"/>).
/// </summary>
[HandlesEvent("websocket.connect", Description = "Records the connection in websocket_connections")]
public sealed class WebSocketConnectHandler : IEventHandler<WebSocketRequest>
{
    /// <inheritdoc />
    /// <exception cref="MalformedPayloadException">The request has no <c>requestContext.connectionId</c>.</exception>
    public async Task HandleAsync(EventContext<WebSocketRequest> context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var connection = WebSocketConnectionRow.From(context);

        // A connect request arrives as the connection opens, so its own time stands in for a missing connectedAt.
        connection = connection with { ConnectedAt = connection.ConnectedAt ?? connection.EventAt };

        var db = await context.GetTransactionAsync(cancellationToken);
        await db.Connection.ExecuteAsync(new CommandDefinition(
            AwsSql.RecordConnect, connection, db.Transaction, cancellationToken: cancellationToken));
    }
}
