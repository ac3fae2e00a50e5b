using DotNet.Testcontainers.Builders;
using EventProcessor.Migrations;
using Npgsql;
using Testcontainers.PostgreSql;

namespace EventProcessor.Tests.Support;

/// <summary>
/// Finds the PostgreSQL the tests run against, once per run: <c>EVENTPROC_TEST_PG</c>, else a Testcontainers
/// container where a Docker engine answers, else a failure that says how to get one. Then migrates a template
/// database that every test clones.
/// </summary>
public static class PostgresServer
{
    private static PostgreSqlContainer? _container;

    /// <summary>Connection string to the server's maintenance database.</summary>
    public static string AdminConnectionString { get; private set; } = "";

    /// <summary>The migrated database every test database is cloned from.</summary>
    public static string TemplateName { get; private set; } = "";

    public static async Task StartAsync()
    {
        AdminConnectionString = Environment.GetEnvironmentVariable("EVENTPROC_TEST_PG") ?? await StartContainerAsync();
        TemplateName = $"eventproc_template_{Environment.ProcessId}";
        await using (var admin = new NpgsqlConnection(AdminConnectionString))
        {
            await admin.OpenAsync();
            await admin.ExecuteAsync($"DROP DATABASE IF EXISTS {TemplateName}");
            await admin.ExecuteAsync($"CREATE DATABASE {TemplateName}");
        }

        var template = ConnectionStringFor(TemplateName);
        await SchemaMigrator.MigrateAsync(template);
        NpgsqlConnection.ClearAllPools();
    }

    public static async Task StopAsync()
    {
        NpgsqlConnection.ClearAllPools();
        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
        else if (TemplateName.Length > 0)
        {
            await using var admin = new NpgsqlConnection(AdminConnectionString);
            await admin.OpenAsync();
            await admin.ExecuteAsync($"DROP DATABASE IF EXISTS {TemplateName} WITH (FORCE)");
        }
    }

    public static string ConnectionStringFor(string database) =>
        new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = database, Pooling = true }.ConnectionString;

    private static async Task<string> StartContainerAsync()
    {
        try
        {
            _container = new PostgreSqlBuilder("postgres:15").Build();
        }
        catch (DockerUnavailableException)
        {
            const string HowTo =
                "No PostgreSQL for the tests: set EVENTPROC_TEST_PG to an Npgsql connection string of a server the tests " +
                "may create databases on, start a Docker engine (Testcontainers), or run deploy/local/test.sh, which " +
                "starts one from local binaries.";
            if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            {
                Assert.Fail(HowTo);
            }

            Assert.Ignore(HowTo);
            throw;
        }

        await _container.StartAsync();
        return _container.GetConnectionString();
    }
}

internal static class NpgsqlConnectionExtensions
{
    public static async Task ExecuteAsync(this NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
