using System.Text.Json.Serialization;

namespace EventProcessor.Handlers.Aws;

/// <summary>
/// The payload of <c>aws.ecs.ecs_task_state_change</c>: a whole EventBridge "ECS Task State Change" event. Only the
/// members the handler reads are declared, and any of them may be missing. Names are pinned to AWS's spelling so
/// that the engine's serializer settings cannot change them.
/// </summary>
public sealed record EcsTaskStateChange
{
    /// <summary>When EventBridge recorded the event (<c>time</c>); stands in for <c>detail.updatedAt</c> when that is missing.</summary>
    [JsonPropertyName("time")]
    public DateTimeOffset? Time { get; init; }

    /// <summary>The task as ECS describes it (<c>detail</c>).</summary>
    [JsonPropertyName("detail")]
    public EcsTaskDetail? Detail { get; init; }
}

/// <summary>The <c>detail</c> of an ECS Task State Change: the task after the change.</summary>
public sealed record EcsTaskDetail
{
    /// <summary>The task's ARN, which names the execution (<c>detail.taskArn</c>).</summary>
    [JsonPropertyName("taskArn")]
    public string? TaskArn { get; init; }

    /// <summary>The cluster the task runs in (<c>detail.clusterArn</c>).</summary>
    [JsonPropertyName("clusterArn")]
    public string? ClusterArn { get; init; }

    /// <summary>The task definition, with its revision (<c>detail.taskDefinitionArn</c>).</summary>
    [JsonPropertyName("taskDefinitionArn")]
    public string? TaskDefinitionArn { get; init; }

    /// <summary>PROVISIONING, PENDING, RUNNING, STOPPED and so on (<c>detail.lastStatus</c>).</summary>
    [JsonPropertyName("lastStatus")]
    public string? LastStatus { get; init; }

    /// <summary>The status ECS is moving the task to (<c>detail.desiredStatus</c>).</summary>
    [JsonPropertyName("desiredStatus")]
    public string? DesiredStatus { get; init; }

    /// <summary>Why the task stopped, as a code such as <c>EssentialContainerExited</c> (<c>detail.stopCode</c>).</summary>
    [JsonPropertyName("stopCode")]
    public string? StopCode { get; init; }

    /// <summary>Why the task stopped, in words (<c>detail.stoppedReason</c>).</summary>
    [JsonPropertyName("stoppedReason")]
    public string? StoppedReason { get; init; }

    /// <summary>When the task started running (<c>detail.startedAt</c>).</summary>
    [JsonPropertyName("startedAt")]
    public DateTimeOffset? StartedAt { get; init; }

    /// <summary>When the task stopped (<c>detail.stoppedAt</c>).</summary>
    [JsonPropertyName("stoppedAt")]
    public DateTimeOffset? StoppedAt { get; init; }

    /// <summary>When ECS last changed the task (<c>detail.updatedAt</c>).</summary>
    [JsonPropertyName("updatedAt")]
    public DateTimeOffset? UpdatedAt { get; init; }

    /// <summary>Grows with every change of the task; the higher of two versions is the newer state (<c>detail.version</c>).</summary>
    [JsonPropertyName("version")]
    public long? Version { get; init; }

    /// <summary>The task's containers, in ECS's order (<c>detail.containers</c>).</summary>
    [JsonPropertyName("containers")]
    public IReadOnlyList<EcsContainer?>? Containers { get; init; }
}

/// <summary>One container of an ECS task, as far as the task's exit code is concerned.</summary>
public sealed record EcsContainer
{
    /// <summary>The container's exit code, once it has exited (<c>detail.containers[].exitCode</c>).</summary>
    [JsonPropertyName("exitCode")]
    public int? ExitCode { get; init; }

    /// <summary>Whether the task stops when this container stops (<c>detail.containers[].essential</c>).</summary>
    [JsonPropertyName("essential")]
    public bool? Essential { get; init; }
}
