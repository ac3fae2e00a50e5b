using FluentMigrator;

namespace EventProcessor.Migrations;

/// <summary>
/// The seed's clients (tenants): who may publish which event types. <c>events.tenant_id</c> names the client
/// an event came from.
/// </summary>
[Migration(2, "clients")]
public sealed class M0002_CreateClients : ForwardOnlyMigration
{
    public override void Up() => Execute.Sql(
        """
        CREATE TABLE clients (
          id VARCHAR(100) PRIMARY KEY,
          name TEXT NOT NULL,
          -- SHA-256 of the API key. Keys are 256 random bits, so a fast hash is as good as a slow one, and lets a
          -- request find its client with one index probe. The key itself is shown once, when it is made.
          api_key_hash BYTEA NOT NULL,
          -- Exact types, 'prefix*' patterns or '*'.
          allowed_event_types TEXT[] NOT NULL,
          active BOOLEAN NOT NULL DEFAULT true,
          created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          disabled_at TIMESTAMPTZ,

          CONSTRAINT clients_id_not_blank CHECK (btrim(id) <> ''),
          CONSTRAINT clients_api_key_hash_is_sha256 CHECK (octet_length(api_key_hash) = 32),
          CONSTRAINT clients_allowed_event_types_not_empty CHECK (cardinality(allowed_event_types) > 0)
        );

        CREATE UNIQUE INDEX clients_api_key_hash ON clients (api_key_hash);

        COMMENT ON TABLE clients IS 'Publishers of events (tenants): API key hash and the event types each may send.';
        """);
}
