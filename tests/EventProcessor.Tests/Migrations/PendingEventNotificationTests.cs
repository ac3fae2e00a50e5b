using Dapper;
using EventProcessor.Tests.Support;

namespace EventProcessor.Tests.Migrations;

/// <summary>
/// What the schema sends on <c>events_pending</c>: one notification per transaction that makes events pending, however
/// many rows it writes, and none for the engine's own updates.
/// </summary>
public sealed class PendingEventNotificationTests
{
    private const string Channel = "events_pending";

    // Sent after what is being counted: notifications arrive in commit order, so once this one is in, all are.
    private const string Marker = "test_marker";

    private TestDatabase _db = null!;

    [SetUp]
    public async Task SetUp()
    {
        _db = await TestDatabase.CreateAsync();

        // Already there before anyone listens: 1,000 processed events, and one pending.
        await _db.ExecuteAsync(
            """
            INSERT INTO events (id, event_type, payload, processed, processed_at)
            SELECT gen_random_uuid(), 'test.old', '{}', true, now() FROM generate_series(1, 1000);
            INSERT INTO events (id, event_type, payload) VALUES ('00000000-0000-0000-0000-000000000001', 'test.pending', '{}');
            """);
    }

    [TearDown]
    public async Task TearDown()
    {
        if (_db is not null)
        {
            await _db.DisposeAsync();
        }
    }

    [TestCase(
        "INSERT INTO events (id, event_type, payload) SELECT gen_random_uuid(), 'test.new', '{}' FROM generate_series(1, 1000)",
        1,
        TestName = "An_INSERT_of_1000_rows_sends_one_notification")]
    [TestCase(
        """
        BEGIN;
        INSERT INTO events (id, event_type, payload) VALUES (gen_random_uuid(), 'test.new', '{}');
        INSERT INTO events (id, event_type, payload) VALUES (gen_random_uuid(), 'test.new', '{}');
        INSERT INTO events (id, event_type, payload) VALUES (gen_random_uuid(), 'test.new', '{}');
        COMMIT;
        """,
        1,
        TestName = "Three_single_row_INSERTs_in_one_transaction_send_one_notification")]
    [TestCase(
        "INSERT INTO events (id, event_type, payload) VALUES (gen_random_uuid(), 'test.new', '{}')",
        1,
        TestName = "A_single_row_INSERT_sends_one_notification")]
    [TestCase(
        """UPDATE events SET processed = false, metadata = metadata || '{"replayed": true}'::jsonb WHERE event_type = 'test.old'""",
        1,
        TestName = "A_replay_of_1000_events_in_one_UPDATE_sends_one_notification")]
    [TestCase(
        "UPDATE events SET attempts = attempts + 1, locked_by = 'test', locked_until = now() + interval '30 seconds' WHERE processed = false",
        0,
        TestName = "A_claim_sends_none")]
    [TestCase(
        "UPDATE events SET processed = true, processed_at = now(), locked_by = NULL, locked_until = NULL WHERE processed = false",
        0,
        TestName = "A_completion_sends_none")]
    [TestCase(
        "UPDATE events SET processed = false WHERE processed = false",
        0,
        TestName = "Setting_processed_false_on_a_pending_event_sends_none")]
    public async Task NotificationsSent(string sql, int expected)
    {
        var received = await CountNotificationsAsync(sql);

        Assert.That(received, Is.EqualTo(expected));
    }

    [Test]
    public async Task EachTransactionThatInsertsSendsItsOwn()
    {
        const string Insert = "INSERT INTO events (id, event_type, payload) VALUES (gen_random_uuid(), 'test.new', '{}')";

        var received = await CountNotificationsAsync(Insert, Insert, Insert);

        Assert.That(received, Is.EqualTo(3), "three transactions, three notifications: a listener misses none of them");
    }

    /// <summary>Runs each statement in its own transaction and counts what a session listening meanwhile receives.</summary>
    private async Task<int> CountNotificationsAsync(params string[] statements)
    {
        await using var listener = await _db.DataSource.OpenConnectionAsync();
        var received = 0;
        var markerSeen = false;
        listener.Notification += (_, e) =>
        {
            if (e.Channel == Channel)
            {
                received++;
            }
            else if (e.Channel == Marker)
            {
                markerSeen = true;
            }
        };
        await listener.ExecuteAsync($"LISTEN {Channel}; LISTEN {Marker}");

        await using (var writer = await _db.DataSource.OpenConnectionAsync())
        {
            foreach (var statement in statements)
            {
                await writer.ExecuteAsync(statement);
            }

            await writer.ExecuteAsync($"NOTIFY {Marker}");
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!markerSeen)
        {
            await listener.WaitAsync(timeout.Token);
        }

        return received;
    }
}
