using System.Text.Json.Nodes;
using Dapper;
using static EventProcessor.Tests.Handlers.Aws.AwsHandlersHost;

namespace EventProcessor.Tests.Handlers.Aws;

/// <summary>
/// <c>websocket.connect</c>, <c>websocket.disconnect</c> and <c>websocket.message</c> into <c>websocket_connections</c>:
/// one right row per connection, whichever order the requests are handled in.
/// </summary>
public sealed class WebSocketConnectionHandlerTests
{
    private const string ConnectionId = "QyUg1czHCYcCHXw=";
    private const long ConnectedAt = 1650301649973;
    private const long DisconnectedAt = ConnectedAt + 95_000;

    private AwsHandlersHost _aws = null!;

    [SetUp]
    public async Task SetUp() => _aws = await StartAsync(o => o.MaxRetries = 1);

    [TearDown]
    public async Task TearDown()
    {
        if (_aws is not null)
        {
            await _aws.DisposeAsync();
        }
    }

    [Test]
    public async Task AConnectRecordsAnOpenConnectionAndItsDisconnectClosesIt()
    {
        await _aws.HandleAsync("websocket.connect", AwsSamples.WebSocketConnect);
        Assert.That(await ConnectionAsync(), Is.EqualTo(new Connection(
            ConnectionId, Utc(ConnectedAt), null, "52.95.4.0", "lg10ltpf4f", "production", Utc(ConnectedAt))));

        await _aws.HandleAsync("websocket.disconnect", Request("DISCONNECT", DisconnectedAt));
        Assert.That(await ConnectionAsync(), Is.EqualTo(new Connection(
            ConnectionId, Utc(ConnectedAt), Utc(DisconnectedAt), "52.95.4.0", "lg10ltpf4f", "production", Utc(DisconnectedAt))));
    }

    [Test]
    public async Task ADisconnectHandledBeforeItsConnectStaysAndTheConnectFillsInTheRest()
    {
        // A disconnect that says nothing but its own time, so that everything else must come from the connect.
        var bareDisconnect = new JsonObject
        {
            ["requestContext"] = new JsonObject
            {
                ["eventType"] = "DISCONNECT",
                ["connectionId"] = ConnectionId,
                ["requestTimeEpoch"] = DisconnectedAt,
            },
        }.ToJsonString();
        await _aws.HandleAsync("websocket.disconnect", bareDisconnect);
        Assert.That(await ConnectionAsync(), Is.EqualTo(new Connection(
            ConnectionId, null, Utc(DisconnectedAt), null, null, null, Utc(DisconnectedAt))));

        await _aws.HandleAsync("websocket.connect", AwsSamples.WebSocketConnect);
        Assert.That(await ConnectionAsync(), Is.EqualTo(new Connection(
            ConnectionId, Utc(ConnectedAt), Utc(DisconnectedAt), "52.95.4.0", "lg10ltpf4f", "production", Utc(DisconnectedAt))));
    }

    [Test]
    public async Task HandlingAConnectAgainAfterTheDisconnectDoesNotReopenTheConnection()
    {
        var connect = await _aws.HandleAsync("websocket.connect", AwsSamples.WebSocketConnect);
        await _aws.HandleAsync("websocket.disconnect", Request("DISCONNECT", DisconnectedAt));

        await _aws.ReplayAsync(connect);

        var row = await ConnectionAsync();
        Assert.Multiple(() =>
        {
            Assert.That(row.DisconnectedAt, Is.EqualTo(Utc(DisconnectedAt)));
            Assert.That(row.LastEventAt, Is.EqualTo(Utc(DisconnectedAt)), "last_event_at never moves back");
        });
    }

    [Test]
    public async Task AMessageMovesLastEventAtOfAKnownConnectionForwardOnly()
    {
        await _aws.HandleAsync("websocket.connect", AwsSamples.WebSocketConnect);

        await _aws.HandleAsync("websocket.message", Request("MESSAGE", ConnectedAt + 5_000));
        Assert.That((await ConnectionAsync()).LastEventAt, Is.EqualTo(Utc(ConnectedAt + 5_000)));

        await _aws.HandleAsync("websocket.message", Request("MESSAGE", ConnectedAt + 2_000));
        var row = await ConnectionAsync();
        Assert.Multiple(() =>
        {
            Assert.That(row.LastEventAt, Is.EqualTo(Utc(ConnectedAt + 5_000)), "an older message does not move it back");
            Assert.That(row.DisconnectedAt, Is.Null);
        });
    }

    [Test]
    public async Task AMessageForAnUnknownConnectionCreatesNoRow()
    {
        await _aws.HandleAsync("websocket.message", Request("MESSAGE", ConnectedAt + 5_000));

        Assert.That(await _aws.Db.ScalarAsync<long>("SELECT count(*) FROM websocket_connections"), Is.Zero);
    }

    [Test]
    public async Task ARequestWithoutAConnectionIdIsDeadLetteredWithTheReason()
    {
        var id = await _aws.InsertAndWaitAsync("websocket.connect", """{"requestContext":{"eventType":"CONNECT","connectedAt":1650301649973}}""");

        Assert.Multiple(async () =>
        {
            Assert.That((await _aws.Db.GetEventAsync(id)).LastError, Does.Contain("websocket.connect has no requestContext.connectionId"));
            Assert.That(await _aws.Db.ScalarAsync<long>("SELECT count(*) FROM websocket_connections"), Is.Zero);
        });
    }

    // The sample connect request turned into a later request of the same connection, as API Gateway sends it:
    // connectedAt stays, requestTimeEpoch is the request's own time.
    private static string Request(string eventType, long requestTimeEpoch)
    {
        var request = JsonNode.Parse(AwsSamples.WebSocketConnect)!;
        var context = request["requestContext"]!.AsObject();
        context["eventType"] = eventType;
        context["routeKey"] = eventType switch { "DISCONNECT" => "$disconnect", _ => "$default" };
        context["requestTimeEpoch"] = requestTimeEpoch;
        return request.ToJsonString();
    }

    private async Task<Connection> ConnectionAsync()
    {
        await using var connection = await _aws.Db.DataSource.OpenConnectionAsync();
        return await connection.QuerySingleAsync<Connection>(
            """
            SELECT connection_id AS ConnectionId, connected_at AS ConnectedAt, disconnected_at AS DisconnectedAt,
                   source_ip AS SourceIp, api_id AS ApiId, stage AS Stage, last_event_at AS LastEventAt
            FROM websocket_connections WHERE connection_id = @ConnectionId
            """,
            new { ConnectionId });
    }

    private sealed record Connection(
        string ConnectionId,
        DateTime? ConnectedAt,
        DateTime? DisconnectedAt,
        string? SourceIp,
        string? ApiId,
        string? Stage,
        DateTime LastEventAt);
}
