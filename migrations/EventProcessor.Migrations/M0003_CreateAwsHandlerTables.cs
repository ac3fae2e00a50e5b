using FluentMigrator;

namespace EventProcessor.Migrations;

/// <summary>
/// The tables the shipped AWS handlers keep (<c>handlers/EventProcessor.Handlers/Aws</c>): the latest state of each
/// ECS task, CloudWatch Logs entries, and API Gateway WebSocket connections. The handlers own every column here.
/// </summary>
[Migration(3, "executions, log_entries and websocket_connections for the AWS handlers")]
public sealed class M0003_CreateAwsHandlerTables : ForwardOnlyMigration
{
    public override void Up() => Execute.Sql(
        """
        -- One row per ECS task: the newest state seen in its "ECS Task State Change" events, which ECS delivers
        -- out of order. An event older than the row (see version and updated_at) leaves it as it is.
        CREATE TABLE executions (
          task_arn TEXT PRIMARY KEY,
          cluster_arn TEXT,
          task_definition_arn TEXT,
          last_status TEXT,
          desired_status TEXT,
          -- The exit code of the essential container ("essential": true), else of the first container listed.
          exit_code INTEGER,
          stop_code TEXT,
          stopped_reason TEXT,
          started_at TIMESTAMPTZ,
          stopped_at TIMESTAMPTZ,
          -- When ECS last changed the task: detail.updatedAt, else the EventBridge event's time. Orders two states
          -- when either lacks a version.
          updated_at TIMESTAMPTZ,
          -- ECS's detail.version, which grows with every change of the task. Orders two states that both carry one.
          version BIGINT,
          -- The events row this state came from.
          last_event_id UUID NOT NULL,

          CONSTRAINT executions_task_arn_not_blank CHECK (btrim(task_arn) <> '')
        );

        -- CloudWatch Logs entries, appended from subscription batches. A batch handled twice adds nothing the second
        -- time: the key is CloudWatch's own identity of a log event.
        CREATE TABLE log_entries (
          log_group TEXT NOT NULL,
          log_stream TEXT NOT NULL,
          -- CloudWatch's id of the log event (logEvents[].id), not the id of an events row.
          event_id TEXT NOT NULL,
          -- When the log event happened (logEvents[].timestamp, milliseconds since the epoch).
          timestamp TIMESTAMPTZ,
          message TEXT,
          ingested_at TIMESTAMPTZ NOT NULL DEFAULT now(),

          CONSTRAINT log_entries_pkey PRIMARY KEY (log_group, log_stream, event_id)
        );

        -- Reading a stream in time order, the way logs are read.
        CREATE INDEX log_entries_stream_by_time ON log_entries (log_group, log_stream, timestamp);

        -- One row per API Gateway WebSocket connection. CONNECT and DISCONNECT may be handled in either order; each
        -- fills in its own columns and neither clears the other's.
        CREATE TABLE websocket_connections (
          connection_id TEXT PRIMARY KEY,
          connected_at TIMESTAMPTZ,
          -- NULL while the connection is open, or while its DISCONNECT has not been handled.
          disconnected_at TIMESTAMPTZ,
          -- Text, not inet: API Gateway's test invocations send "test-invoke-source-ip".
          source_ip TEXT,
          api_id TEXT,
          stage TEXT,
          -- The latest request time seen for the connection: its CONNECT, MESSAGE or DISCONNECT.
          last_event_at TIMESTAMPTZ NOT NULL,

          CONSTRAINT websocket_connections_connection_id_not_blank CHECK (btrim(connection_id) <> '')
        );
        """);
}
