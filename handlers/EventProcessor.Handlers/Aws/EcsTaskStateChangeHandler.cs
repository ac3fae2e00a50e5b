using Dapper;
using EventProcessor.Handling;

namespace EventProcessor.Handlers.Aws;

/// <summary>
/// Keeps <c>executions</c> at the newest known state of each ECS task. ECS delivers state changes out of order and
/// more than once, so the write is one upsert that an older event cannot win (<see cref="AwsSql.UpsertExecution"/>).
/// </summary>
[HandlesEvent("aws.ecs.ecs_task_state_change", Description = "Upserts the task's row in executions unless the stored state is newer")]
public sealed class EcsTaskStateChangeHandler : IEventHandler<EcsTaskStateChange>
{
    /// <inheritdoc />
    /// <exception cref="MalformedPayloadException">The event has no <c>detail.taskArn</c>.</exception>
    public async Task HandleAsync(EventContext<EcsTaskStateChange> context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var detail = context.Payload.Detail;
        if (detail is null || string.IsNullOrWhiteSpace(detail.TaskArn))
        {
            throw new MalformedPayloadException(
                "ECS Task State Change has no detail.taskArn, so it names no execution to update.");
        }

        var execution = new ExecutionRow(
            detail.TaskArn,
            detail.ClusterArn,
            detail.TaskDefinitionArn,
            detail.LastStatus,
            detail.DesiredStatus,
            ExitCodeOf(detail.Containers),
            detail.StopCode,
            detail.StoppedReason,
            detail.StartedAt?.ToUniversalTime(),
            detail.StoppedAt?.ToUniversalTime(),
            (detail.UpdatedAt ?? context.Payload.Time)?.ToUniversalTime(),
            detail.Version,
            context.Event.Id);

        var db = await context.GetTransactionAsync(cancellationToken);
        await db.Connection.ExecuteAsync(new CommandDefinition(
            AwsSql.UpsertExecution, execution, db.Transaction, cancellationToken: cancellationToken));
    }

    // The task's outcome is its essential container's: ECS stops the task when that one exits. Task definitions need
    // not mark one (a single container is essential by default), so the first container stands in.
    private static int? ExitCodeOf(IReadOnlyList<EcsContainer?>? containers)
    {
        if (containers is null || containers.Count == 0)
        {
            return null;
        }

        var essential = containers.FirstOrDefault(c => c?.Essential == true);
        return (essential ?? containers[0])?.ExitCode;
    }

    // Parameters of AwsSql.UpsertExecution. Times are UTC: Npgsql writes only UTC values to timestamptz.
    private sealed record ExecutionRow(
        string TaskArn,
        string? ClusterArn,
        string? TaskDefinitionArn,
        string? LastStatus,
        string? DesiredStatus,
        int? ExitCode,
        string? StopCode,
        string? StoppedReason,
        DateTimeOffset? StartedAt,
        DateTimeOffset? StoppedAt,
        DateTimeOffset? UpdatedAt,
        long? Version,
        Guid EventId);
}
