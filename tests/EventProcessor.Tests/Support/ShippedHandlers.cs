namespace EventProcessor.Tests.Support;

/// <summary>
/// The event types the service handles whatever it is configured with: the <c>[HandlesEvent]</c> classes in
/// handlers/EventProcessor.Handlers, which it registers by scanning that assembly. Written out rather than read by
/// reflection, so that shipping another handler shows up here as a change to what <c>/health</c> reports.
/// </summary>
public static class ShippedHandlers
{
    public static readonly string[] EventTypes =
        ["aws.ecs.ecs_task_state_change", "aws.logs.batch", "websocket.connect", "websocket.disconnect", "websocket.message"];

    /// <summary>The shipped event types plus <paramref name="subscribed"/>, in the registry's (ordinal) order.</summary>
    public static string[] EventTypesWith(params string[] subscribed) =>
        [.. EventTypes.Concat(subscribed).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
}
