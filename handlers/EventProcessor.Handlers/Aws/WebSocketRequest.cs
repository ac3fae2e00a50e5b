using System.Text.Json.Serialization;

namespace EventProcessor.Handlers.Aws;

/// <summary>
/// The payload of <c>websocket.connect</c>, <c>websocket.disconnect</c> and <c>websocket.message</c>: a whole API
/// Gateway WebSocket request. Only <c>requestContext</c> is read. Names are pinned to AWS's spelling.
/// </summary>
public sealed record WebSocketRequest
{
    /// <summary>What API Gateway knows about the request and its connection (<c>requestContext</c>).</summary>
    [JsonPropertyName("requestContext")]
    public WebSocketRequestContext? RequestContext { get; init; }
}

/// <summary>The <c>requestContext</c> of an API Gateway WebSocket request.</summary>
public sealed record WebSocketRequestContext
{
    /// <summary>The connection the request belongs to (<c>requestContext.connectionId</c>).</summary>
    [JsonPropertyName("connectionId")]
    public string? ConnectionId { get; init; }

    /// <summary><c>CONNECT</c>, <c>MESSAGE</c> or <c>DISCONNECT</c> (<c>requestContext.eventType</c>).</summary>
    [JsonPropertyName("eventType")]
    public string? EventType { get; init; }

    /// <summary>When the connection was opened, in milliseconds since the Unix epoch; sent with every request (<c>requestContext.connectedAt</c>).</summary>
    [JsonPropertyName("connectedAt")]
    public long? ConnectedAt { get; init; }

    /// <summary>When this request arrived, in milliseconds since the Unix epoch (<c>requestContext.requestTimeEpoch</c>).</summary>
    [JsonPropertyName("requestTimeEpoch")]
    public long? RequestTimeEpoch { get; init; }

    /// <summary>Who sent the request (<c>requestContext.identity</c>).</summary>
    [JsonPropertyName("identity")]
    public WebSocketIdentity? Identity { get; init; }

    /// <summary>The API's id (<c>requestContext.apiId</c>).</summary>
    [JsonPropertyName("apiId")]
    public string? ApiId { get; init; }

    /// <summary>The API's stage (<c>requestContext.stage</c>).</summary>
    [JsonPropertyName("stage")]
    public string? Stage { get; init; }
}

/// <summary>The <c>requestContext.identity</c> of an API Gateway WebSocket request.</summary>
public sealed record WebSocketIdentity
{
    /// <summary>The client's address as API Gateway saw it (<c>requestContext.identity.sourceIp</c>).</summary>
    [JsonPropertyName("sourceIp")]
    public string? SourceIp { get; init; }
}
