using EventProcessor.Tests.Support;

namespace EventProcessor.Tests.Security;

/// <summary>What the security tests check after every hostile request: what the database holds, what a body shows.</summary>
internal static class SecurityChecks
{
    /// <summary>What no response body may contain: traces of stack frames, the database driver, connection strings.</summary>
    private static readonly string[] Internals =
        ["at EventProcessor.", "   at ", ".cs:line", "Npgsql", "Host=", "Password", "Username=", "Exception", "SELECT ", "INSERT "];

    /// <summary>Fails when <paramref name="body"/> shows an internal detail or any of <paramref name="secrets"/>.</summary>
    public static void AssertNothingLeaks(string body, string what, params string[] secrets)
    {
        foreach (var marker in Internals.Concat(secrets))
        {
            Assert.That(body, Does.Not.Contain(marker).IgnoreCase, $"{what}: the body shows '{marker}': {body}");
        }
    }

    /// <summary>The rows of every table a request could write to; fails if the events table is gone.</summary>
    public static async Task<RowCounts> CountRowsAsync(TestDatabase db)
    {
        Assert.That(
            await db.ScalarAsync<bool>("SELECT to_regclass('public.events') IS NOT NULL"),
            Is.True,
            "the events table still exists");
        return new RowCounts(
            await db.ScalarAsync<long>("SELECT count(*) FROM events"),
            await db.ScalarAsync<long>("SELECT count(*) FROM events WHERE attempts > 0 OR processed"),
            await db.ScalarAsync<long>("SELECT count(*) FROM event_dead_letters"),
            await db.ScalarAsync<long>("SELECT count(*) FROM clients"),
            await db.ScalarAsync<long>("SELECT count(*) FROM audit_log"));
    }
}

/// <summary>Row counts, compared before and after a request that must write nothing.</summary>
/// <param name="Events">Rows in <c>events</c>.</param>
/// <param name="Touched">Events claimed or processed at least once.</param>
/// <param name="DeadLetters">Rows in <c>event_dead_letters</c>.</param>
/// <param name="Clients">Rows in <c>clients</c>.</param>
/// <param name="Audit">Rows in <c>audit_log</c>.</param>
internal sealed record RowCounts(long Events, long Touched, long DeadLetters, long Clients, long Audit);
