using EventProcessor.Handling;

namespace EventProcessor.Handlers.Aws;

/// <summary>Registers the handlers that give meaning to the rows the AWS ingress writes.</summary>
public static class AwsHandlerRegistration
{
    /// <summary>
    /// Subscribes the AWS handlers: <c>aws.ecs.ecs_task_state_change</c> (executions), <c>aws.logs.batch</c>
    /// (log_entries), <c>websocket.connect</c>, <c>websocket.disconnect</c> and <c>websocket.message</c>
    /// (websocket_connections). Their tables come with the migrations. The service already registers them through
    /// its scan of this assembly; call this where handlers are registered one by one, and not as well as the scan,
    /// or each event is handled twice (harmlessly, as every write is idempotent, but for nothing).
    /// </summary>
    public static EventProcessorBuilder AddAwsHandlers(this EventProcessorBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder
            .AddHandler<EcsTaskStateChangeHandler>()
            .AddHandler<CloudWatchLogsBatchHandler>()
            .AddHandler<WebSocketConnectHandler>()
            .AddHandler<WebSocketDisconnectHandler>()
            .AddHandler<WebSocketMessageHandler>();
    }
}
