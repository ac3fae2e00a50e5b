namespace EventProcessor.Handlers.Aws;

/// <summary>
/// Every statement the AWS handlers run, one constant per handler, named like what it does to its table. Each is one
/// statement, so that it is safe when two instances handle events of one row at once, and when an event is replayed.
/// </summary>
internal static class AwsSql
{
    /// <summary>
    /// Inserts the task's execution, or replaces the stored state when the incoming one is newer: by
    /// <c>version</c> when both carry one, else by <c>updated_at</c> (incoming at least as late wins; a row with no
    /// <c>updated_at</c> loses to any event). An older event changes nothing. A field the winning event lacks keeps
    /// its stored value: ECS sends a task's identity and outcome fields once they exist, and never takes them back.
    /// </summary>
    public const string UpsertExecution =
        """
        INSERT INTO executions AS stored (
          task_arn, cluster_arn, task_definition_arn, last_status, desired_status, exit_code,
          stop_code, stopped_reason, started_at, stopped_at, updated_at, version, last_event_id)
        VALUES (
          @TaskArn, @ClusterArn, @TaskDefinitionArn, @LastStatus, @DesiredStatus, @ExitCode,
          @StopCode, @StoppedReason, @StartedAt, @StoppedAt, @UpdatedAt, @Version, @EventId)
        ON CONFLICT (task_arn) DO UPDATE SET
          cluster_arn = coalesce(excluded.cluster_arn, stored.cluster_arn),
          task_definition_arn = coalesce(excluded.task_definition_arn, stored.task_definition_arn),
          last_status = coalesce(excluded.last_status, stored.last_status),
          desired_status = coalesce(excluded.desired_status, stored.desired_status),
          exit_code = coalesce(excluded.exit_code, stored.exit_code),
          stop_code = coalesce(excluded.stop_code, stored.stop_code),
          stopped_reason = coalesce(excluded.stopped_reason, stored.stopped_reason),
          started_at = coalesce(excluded.started_at, stored.started_at),
          stopped_at = coalesce(excluded.stopped_at, stored.stopped_at),
          updated_at = coalesce(excluded.updated_at, stored.updated_at),
          version = coalesce(excluded.version, stored.version),
          last_event_id = excluded.last_event_id
        WHERE CASE
                WHEN excluded.version IS NOT NULL AND stored.version IS NOT NULL THEN excluded.version > stored.version
                ELSE stored.updated_at IS NULL OR excluded.updated_at >= stored.updated_at
              END
        """;

    /// <summary>
    /// Appends a batch of log events of one stream; one already stored (same group, stream and CloudWatch id) is
    /// left alone, which makes handling a batch again a no-op. The arrays are parallel, one element per log event.
    /// </summary>
    public const string AppendLogEntries =
        """
        INSERT INTO log_entries (log_group, log_stream, event_id, timestamp, message)
        SELECT @LogGroup, @LogStream, e.event_id, e.timestamp, e.message
        FROM unnest(@EventIds::text[], @Timestamps::timestamptz[], @Messages::text[]) AS e(event_id, timestamp, message)
        ON CONFLICT (log_group, log_stream, event_id) DO NOTHING
        """;

    /// <summary>
    /// Records a CONNECT. A DISCONNECT handled earlier stays: a connection id names one connection, so its
    /// disconnect is never older than its connect, and a connect never reopens it.
    /// </summary>
    public const string RecordConnect =
        """
        INSERT INTO websocket_connections AS stored (connection_id, connected_at, source_ip, api_id, stage, last_event_at)
        VALUES (@ConnectionId, @ConnectedAt, @SourceIp, @ApiId, @Stage, @EventAt)
        ON CONFLICT (connection_id) DO UPDATE SET
          connected_at = coalesce(excluded.connected_at, stored.connected_at),
          source_ip = coalesce(excluded.source_ip, stored.source_ip),
          api_id = coalesce(excluded.api_id, stored.api_id),
          stage = coalesce(excluded.stage, stored.stage),
          last_event_at = greatest(stored.last_event_at, excluded.last_event_at)
        """;

    /// <summary>
    /// Records a DISCONNECT, creating the row when the CONNECT has not been handled yet. What the connect records
    /// (connected_at, source_ip, api_id, stage) is only filled in here where it is still missing.
    /// </summary>
    public const string RecordDisconnect =
        """
        INSERT INTO websocket_connections AS stored (
          connection_id, connected_at, disconnected_at, source_ip, api_id, stage, last_event_at)
        VALUES (@ConnectionId, @ConnectedAt, @EventAt, @SourceIp, @ApiId, @Stage, @EventAt)
        ON CONFLICT (connection_id) DO UPDATE SET
          connected_at = coalesce(stored.connected_at, excluded.connected_at),
          disconnected_at = greatest(stored.disconnected_at, excluded.disconnected_at),
          source_ip = coalesce(stored.source_ip, excluded.source_ip),
          api_id = coalesce(stored.api_id, excluded.api_id),
          stage = coalesce(stored.stage, excluded.stage),
          last_event_at = greatest(stored.last_event_at, excluded.last_event_at)
        """;

    /// <summary>Moves a known connection's <c>last_event_at</c> forward; a message for an unknown connection changes nothing.</summary>
    public const string TouchConnection =
        """
        UPDATE websocket_connections
        SET last_event_at = greatest(last_event_at, @EventAt)
        WHERE connection_id = @ConnectionId
        """;
}
