using System.Globalization;
using EventProcessor.Host.Configuration;
using EventProcessor.Ingress.Clients;
using Npgsql;

namespace EventProcessor.Host.Commands;

/// <summary>
/// <c>EventProcessor.Host clients add --id ID --types a,b [--name NAME] [--rate N]</c>,
/// <c>clients update --id ID [--types a,b] [--name NAME] [--rate N|default]</c>, <c>clients list</c>,
/// <c>clients disable --id ID</c>: manages who may publish. <c>add</c> prints the new key once, alone on its last
/// line; only its hash is stored. <c>--rate</c> is events per second over HTTP, per instance (0: no limit).
/// </summary>
internal static class ClientsCommand
{
    private const string Usage =
        "usage: clients add --id ID --types TYPE[,TYPE...] [--name NAME] [--rate EVENTS_PER_SECOND] | " +
        "clients update --id ID [--types TYPE[,TYPE...]] [--name NAME] [--rate EVENTS_PER_SECOND|default] | " +
        "clients list | clients disable --id ID";

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
                ["add", .. var rest] => await AddAsync(store, CommandLine.Options(rest, "id", "types", "name", "rate"), output),
                ["update", .. var rest] => await UpdateAsync(store, CommandLine.Options(rest, "id", "types", "name", "rate"), output, error),
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

        var (client, apiKey) = await store.AddAsync(id, options.GetValueOrDefault("name"), Types(types), Rate(options, allowDefault: false));
        await output.WriteLineAsync($"Added client '{client.Id}' allowed to send: {string.Join(", ", client.AllowedEventTypes)}; {Describe(client)}.");
        await output.WriteLineAsync("Its API key follows; it is shown this once and stored only as a hash:");
        await output.WriteLineAsync(apiKey);
        return 0;
    }

    private static async Task<int> UpdateAsync(ClientStore store, Dictionary<string, string> options, TextWriter output, TextWriter error)
    {
        if (!options.TryGetValue("id", out var id) || options.Count == 1)
        {
            throw new UsageException(Usage);
        }

        var client = await store.UpdateAsync(
            id,
            options.GetValueOrDefault("name"),
            options.TryGetValue("types", out var types) ? Types(types) : null,
            Rate(options, allowDefault: true));
        if (client is null)
        {
            await error.WriteLineAsync($"event-processor: no client has id '{id}'.");
            return 1;
        }

        await output.WriteLineAsync($"Updated client '{client.Id}': allowed to send {string.Join(", ", client.AllowedEventTypes)}; {Describe(client)}.");
        return 0;
    }

    private static async Task<int> ListAsync(ClientStore store, TextWriter output)
    {
        var clients = await store.ListAsync();
        await output.WriteLineAsync($"{"ID",-24} {"ACTIVE",-7} {"CREATED",-20} {"RATE/S",-8} {"NAME",-30} ALLOWED EVENT TYPES");
        foreach (var client in clients)
        {
            var rate = client.RateLimitPerSecond switch { null => "default", 0 => "none", var r => r.Value.ToString(CultureInfo.InvariantCulture) };
            await output.WriteLineAsync(string.Create(
                CultureInfo.InvariantCulture,
                $"{client.Id,-24} {(client.Active ? "yes" : "no"),-7} {client.CreatedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss}  {rate,-8} {client.Name,-30} {string.Join(",", client.AllowedEventTypes)}"));
        }

        return 0;
    }

    private static string[] Types(string types) =>
        types.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    private static int? Rate(Dictionary<string, string> options, bool allowDefault)
    {
        if (!options.TryGetValue("rate", out var raw))
        {
            return null;
        }

        if (allowDefault && raw == "default")
        {
            return ClientStore.DefaultRate;
        }

        return int.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out var rate) && rate <= ClientStore.MaxRate
            ? rate
            : throw new UsageException(
                $"--rate '{raw}' is invalid: give events per second from 0 (no limit) to {ClientStore.MaxRate}{(allowDefault ? ", or default" : "")}.");
    }

    private static string Describe(Client client) => client.RateLimitPerSecond switch
    {
        null => "rate: the service's default (CLIENT_RATE_LIMIT_PER_SECOND)",
        0 => "rate: no limit",
        var rate => string.Create(CultureInfo.InvariantCulture, $"rate: {rate} events per second"),
    };

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
