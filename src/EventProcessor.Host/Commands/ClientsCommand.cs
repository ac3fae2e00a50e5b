using System.Globalization;
using EventProcessor.Host.Configuration;
using EventProcessor.Ingress.Clients;
using Npgsql;

namespace EventProcessor.Host.Commands;

/// <summary>
/// <c>EventProcessor.Host clients add --id ID --types a,b [--name NAME]</c>, <c>clients list</c>,
/// <c>clients disable --id ID</c>: manages who may publish. <c>add</c> prints the new key once, alone on its last
/// line; only its hash is stored.
/// </summary>
internal static class ClientsCommand
{
    private const string Usage =
        "usage: clients add --id ID --types TYPE[,TYPE...] [--name NAME] | clients list | clients disable --id ID";

    public static async Task<int> RunAsync(string[] args, IConfiguration configuration, TextWriter output, TextWriter error)
    {
        try
        {
            var settings = ServiceSettings.Load(configuration);
            await CommandLine.MigrateIfEnabledAsync(settings, CancellationToken.None);
            await using var dataSource = NpgsqlDataSource.Create(settings.ConnectionString);
            var store = new ClientStore(dataSource);
            return args switch
            {
                ["add", .. var rest] => await AddAsync(store, CommandLine.Options(rest, "id", "types", "name"), output),
                ["list"] => await ListAsync(store, output),
                ["disable", .. var rest] => await DisableAsync(store, CommandLine.Options(rest, "id"), output, error),
                _ => throw new UsageException(Usage),
            };
        }
        catch (Exception exception) when (exception is UsageException or SettingsException or ClientException)
        {
            await error.WriteLineAsync($"event-processor: {exception.Message}");
            return 2;
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
        {
            await error.WriteLineAsync($"event-processor: cannot reach the database: {exception.Message}");
            return 3;
        }
    }

    private static async Task<int> AddAsync(ClientStore store, Dictionary<string, string> options, TextWriter output)
    {
        if (!options.TryGetValue("id", out var id) || !options.TryGetValue("types", out var types))
        {
            throw new UsageException(Usage);
        }

        var allowed = types.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var (client, apiKey) = await store.AddAsync(id, options.GetValueOrDefault("name"), allowed);
        await output.WriteLineAsync($"Added client '{client.Id}' allowed to send: {string.Join(", ", client.AllowedEventTypes)}.");
        await output.WriteLineAsync("Its API key follows; it is shown this once and stored only as a hash:");
        await output.WriteLineAsync(apiKey);
        return 0;
    }

    private static async Task<int> ListAsync(ClientStore store, TextWriter output)
    {
        var clients = await store.ListAsync();
        await output.WriteLineAsync($"{"ID",-24} {"ACTIVE",-7} {"CREATED",-20} {"NAME",-30} ALLOWED EVENT TYPES");
        foreach (var client in clients)
        {
            await output.WriteLineAsync(string.Create(
                CultureInfo.InvariantCulture,
                $"{client.Id,-24} {(client.Active ? "yes" : "no"),-7} {client.CreatedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss}  {client.Name,-30} {string.Join(",", client.AllowedEventTypes)}"));
        }

        return 0;
    }

    private static async Task<int> DisableAsync(ClientStore store, Dictionary<string, string> options, TextWriter output, TextWriter error)
    {
        if (!options.TryGetValue("id", out var id))
        {
            throw new UsageException(Usage);
        }

        if (!await store.DisableAsync(id))
        {
            await error.WriteLineAsync($"event-processor: no client has id '{id}'.");
            return 1;
        }

        await output.WriteLineAsync($"Disabled client '{id}': its key no longer publishes.");
        return 0;
    }
}
