using EventProcessor.Host.Configuration;
using EventProcessor.Migrations;
using Npgsql;

namespace EventProcessor.Host.Commands;

/// <summary><c>EventProcessor.Host migrate</c>: applies the schema and exits, for a deploy step or a Cloud Run job.</summary>
internal static class MigrateCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        var configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();
        try
        {
            var settings = ServiceSettings.Load(configuration);
            await SchemaMigrator.MigrateAsync(settings.ConnectionString);
            await Console.Out.WriteLineAsync("event-processor: schema is up to date.");
            return 0;
        }
        catch (SettingsException exception)
        {
            await Console.Error.WriteLineAsync($"event-processor: {exception.Message}");
            return 2;
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
        {
            await Console.Error.WriteLineAsync($"event-processor: migration failed: {exception.Message}");
            return 3;
        }
    }
}
