using Dapper;
using EventProcessor.Handling;

namespace EventProcessor.Handlers.Aws;

/// <summary>
/// Records a WebSocket DISCONNECT in <c>websocket_connections</c>, creating the row when the CONNECT has not been
/// handled yet; the connect fills in the rest when it comes (<see cref="AwsSql.RecordDisconnect"/>).
/// </summary>
[HandlesEvent("websocket.disconnect", Description = "Marks the connection disconnected in websocket_connections")]
public sealed class WebSocketDisconnectHandler : IEventHandler<WebSocketRequest>
{
    /// <inheritdoc />
    /// <exception cref="MalformedPayloadException">The request has no <c>requestContext.connectionId</c>.</exception>
    public async Task HandleAsync(EventContext<WebSocketRequest> context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var connection = WebSocketConnectionRow.From(context);
        var db = await context.GetTransactionAsync(cancellationToken);
        await db.Connection.ExecuteAsync(new CommandDefinition(
            AwsSql.RecordDisconnect, connection, db.Transaction, cancellationToken: cancellationToken));
    }
}
