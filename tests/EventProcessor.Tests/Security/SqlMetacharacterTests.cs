using System.Net;
using System.Text.Json;
using Dapper;
using EventProcessor.Tests.Host;
using EventProcessor.Tests.Support;

namespace EventProcessor.Tests.Security;

/// <summary>
/// SQL metacharacters in fields that may hold any text are data: stored exactly as sent, with every table intact.
/// (Where a field must be a UUID or an event type, the corpus shows they are refused.)
/// </summary>
public sealed class SqlMetacharacterTests
{
    private static readonly string[] Hostile =
    [
        "'; DROP TABLE events; --",
        "\" OR \"\"=\"",
        "$$; DELETE FROM clients; $$",
        "\\'; SELECT pg_sleep(10); --",
        "%' OR '1'='1",
        "E'\\x00'",
        "$tag$ unterminated",
    ];

    [Test]
    public async Task Metacharacters_in_an_envelope_are_stored_verbatim_and_harm_nothing()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var service = await ServiceAppFixture.StartAsync(db);
        var sent = Hostile.Select((text, i) => new
        {
            id = $"{text} #{i}",
            event_type = "sql.metacharacters",
            aggregate_id = text,
            aggregate_type = text.Length <= 50 ? text : text[..50],
            payload = new Dictionary<string, string> { [text] = text },
            metadata = new Dictionary<string, string> { ["note"] = text },
        }).ToList();

        using var response = await service.PostAsync("/events", JsonSerializer.Serialize(sent));
        var (json, text) = await ResponseJson.ReadAsync(response);
        var ids = json.GetProperty("ids").EnumerateArray().Select(e => e.GetGuid()).ToList();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), text);
        await using var connection = await db.DataSource.OpenConnectionAsync();
        for (var i = 0; i < sent.Count; i++)
        {
            var row = await connection.QuerySingleAsync<(string EventType, string AggregateType, string Payload, string Metadata)>(
                "SELECT event_type, aggregate_type, payload::text, metadata::text FROM events WHERE id = @id", new { id = ids[i] });
            using var payload = JsonDocument.Parse(row.Payload);
            using var metadata = JsonDocument.Parse(row.Metadata);
            Assert.Multiple(() =>
            {
                Assert.That(row.EventType, Is.EqualTo("sql.metacharacters"));
                Assert.That(row.AggregateType, Is.EqualTo(sent[i].aggregate_type));
                Assert.That(payload.RootElement.GetProperty(Hostile[i]).GetString(), Is.EqualTo(Hostile[i]));
                Assert.That(metadata.RootElement.GetProperty("note").GetString(), Is.EqualTo(Hostile[i]));
                Assert.That(metadata.RootElement.GetProperty("aggregate_key").GetString(), Is.EqualTo(Hostile[i]), "a non-UUID aggregate id is kept as text");
            });
        }

        Assert.Multiple(async () =>
        {
            Assert.That(await db.ScalarAsync<long>("SELECT count(*) FROM events"), Is.EqualTo(Hostile.Length));
            Assert.That(await db.ScalarAsync<bool>("SELECT to_regclass('public.clients') IS NOT NULL"), Is.True);
            Assert.That(await db.ScalarAsync<bool>("SELECT to_regclass('public.audit_log') IS NOT NULL"), Is.True);
        });
        await service.AssertStillServingAsync();
    }
}
