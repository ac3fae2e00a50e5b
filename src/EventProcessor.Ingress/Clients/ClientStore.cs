using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Dapper;
using Npgsql;

namespace EventProcessor.Ingress.Clients;

/// <summary>The <c>clients</c> table: adds, finds and disables the publishers of events.</summary>
public sealed partial class ClientStore(NpgsqlDataSource dataSource)
{
    /// <summary>The seed's three sample clients, seeded in Development only, with keys that are public on purpose.</summary>
    public static readonly IReadOnlyList<(string Id, string[] Types, string ApiKey)> DevelopmentClients =
    [
        ("client-001", ["integration"], "epk_dev_client_001_not_secret"),
        ("client-002", ["transaction", "integration"], "epk_dev_client_002_not_secret"),
        ("client-003", ["transaction", "integration"], "epk_dev_client_003_not_secret"),
    ];

    private const string SelectColumns =
        "id AS Id, name AS Name, allowed_event_types AS AllowedEventTypes, active AS Active, created_at AS CreatedAt, " +
        "rate_limit_per_second AS RateLimitPerSecond";

    /// <summary>Adds a client and returns it with its new API key, which is stored only as a hash.</summary>
    /// <param name="id">The client id, which becomes its events' tenant.</param>
    /// <param name="name">A human name; the id when null.</param>
    /// <param name="allowedEventTypes">Exact types, <c>prefix*</c> patterns or <c>*</c>.</param>
    /// <param name="rateLimitPerSecond">Events per second over HTTP (0: no limit); null for the service's default.</param>
    /// <param name="cancellationToken">Cancels the insert.</param>
    /// <exception cref="ClientException">The id, types or rate are invalid, or the id is taken.</exception>
    public async Task<(Client Client, string ApiKey)> AddAsync(
        string id,
        string? name,
        IReadOnlyCollection<string> allowedEventTypes,
        int? rateLimitPerSecond = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(allowedEventTypes);
        Validate(id, allowedEventTypes);
        ValidateRate(rateLimitPerSecond);
        var apiKey = NewApiKey();
        var client = await InsertAsync(id, name ?? id, allowedEventTypes, apiKey, rateLimitPerSecond, cancellationToken)
            ?? throw new ClientException($"A client with id '{id}' already exists.");
        return (client, apiKey);
    }

    /// <summary>
    /// Changes what is given of a client: its name, its allowed types, its rate. Null leaves a field as it is; a rate
    /// of <see cref="DefaultRate"/> gives it the service's default again. Null when there is no such client.
    /// </summary>
    /// <exception cref="ClientException">The types or the rate are invalid.</exception>
    public async Task<Client?> UpdateAsync(
        string id,
        string? name = null,
        IReadOnlyCollection<string>? allowedEventTypes = null,
        int? rateLimitPerSecond = null,
        CancellationToken cancellationToken = default)
    {
        if (allowedEventTypes is not null)
        {
            Validate(id, allowedEventTypes);
        }

        if (rateLimitPerSecond != DefaultRate)
        {
            ValidateRate(rateLimitPerSecond);
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<ClientRow>(new CommandDefinition(
            $"""
            UPDATE clients
            SET name = coalesce(@name::text, name),
                allowed_event_types = coalesce(@types::text[], allowed_event_types),
                rate_limit_per_second = CASE WHEN @rate::integer IS NULL THEN rate_limit_per_second
                                             WHEN @rate::integer = {DefaultRate} THEN NULL ELSE @rate::integer END
            WHERE id = @id
            RETURNING {SelectColumns}
            """,
            new { id, name, types = allowedEventTypes?.ToArray(), rate = rateLimitPerSecond },
            cancellationToken: cancellationToken));
        return row?.ToClient();
    }

    /// <summary>The rate to give <see cref="UpdateAsync"/> to put a client back on the service's default.</summary>
    public const int DefaultRate = -1;

    /// <summary>Every client, oldest first.</summary>
    public async Task<IReadOnlyList<Client>> ListAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var clients = await connection.QueryAsync<ClientRow>(new CommandDefinition(
            $"SELECT {SelectColumns} FROM clients ORDER BY created_at, id", cancellationToken: cancellationToken));
        return clients.Select(c => c.ToClient()).ToList();
    }

    /// <summary>Disables a client: its key stops working at once. False when there is no such client.</summary>
    public async Task<bool> DisableAsync(string id, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var found = await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
            """
            UPDATE clients SET active = false, disabled_at = coalesce(disabled_at, now())
            WHERE id = @id
            RETURNING id
            """,
            new { id },
            cancellationToken: cancellationToken));
        return found is not null;
    }

    /// <summary>The client whose key this is, active or not; null for a key no client has.</summary>
    public async Task<Client?> FindByApiKeyAsync(string apiKey, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(apiKey);
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<ClientRow>(new CommandDefinition(
            $"SELECT {SelectColumns} FROM clients WHERE api_key_hash = @hash",
            new { hash = Hash(apiKey) },
            cancellationToken: cancellationToken));
        return row?.ToClient();
    }

    /// <summary>The clients with these ids that exist, by id.</summary>
    public async Task<IReadOnlyDictionary<string, Client>> FindAsync(
        IReadOnlyCollection<string> ids, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (ids.Count == 0)
        {
            return new Dictionary<string, Client>();
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var clients = await connection.QueryAsync<ClientRow>(new CommandDefinition(
            $"SELECT {SelectColumns} FROM clients WHERE id = ANY(@ids)",
            new { ids = ids.ToArray() },
            cancellationToken: cancellationToken));
        return clients.ToDictionary(c => c.Id, c => c.ToClient(), StringComparer.Ordinal);
    }

    /// <summary>Adds the seed's sample clients with their public development keys, unless they exist.</summary>
    public async Task SeedDevelopmentClientsAsync(CancellationToken cancellationToken = default)
    {
        foreach (var (id, types, apiKey) in DevelopmentClients)
        {
            await InsertAsync(id, $"{id} (development sample)", types, apiKey, null, cancellationToken);
        }
    }

    private async Task<Client?> InsertAsync(
        string id, string name, IReadOnlyCollection<string> types, string apiKey, int? rate, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<ClientRow>(new CommandDefinition(
            $"""
            INSERT INTO clients (id, name, api_key_hash, allowed_event_types, rate_limit_per_second)
            VALUES (@id, @name, @hash, @types, @rate)
            ON CONFLICT DO NOTHING
            RETURNING {SelectColumns}
            """,
            new { id, name, hash = Hash(apiKey), types = types.ToArray(), rate },
            cancellationToken: cancellationToken));
        return row?.ToClient();
    }

    private static void Validate(string id, IReadOnlyCollection<string> types)
    {
        if (string.IsNullOrEmpty(id) || id.Length > 100 || !IdPattern().IsMatch(id))
        {
            throw new ClientException(
                $"Client id '{id}' is invalid: use 1 to 100 letters, digits, '.', '_' or '-'.");
        }

        if (types.Count == 0)
        {
            throw new ClientException("A client needs at least one allowed event type (a type, a 'prefix*' pattern or '*').");
        }

        foreach (var type in types)
        {
            if (string.IsNullOrWhiteSpace(type) || type.Length > EventProcessor.Ingress.Classification.EventClassifier.MaxEventTypeLength
                || type.Any(char.IsWhiteSpace) || type.IndexOf('*', StringComparison.Ordinal) is >= 0 and var star && star != type.Length - 1)
            {
                throw new ClientException(
                    $"Event type '{type}' is invalid: give a type such as user.created, a pattern such as user.*, or *.");
            }
        }
    }

    private static void ValidateRate(int? rate)
    {
        if (rate is < 0 or > MaxRate)
        {
            throw new ClientException($"Rate {rate} is invalid: give events per second from 0 (no limit) to {MaxRate}.");
        }
    }

    /// <summary>The largest rate a client may be given, in events per second.</summary>
    public const int MaxRate = 1_000_000;

    /// <summary>A new key: <c>epk_</c> and 256 random bits, URL-safe.</summary>
    private static string NewApiKey() => "epk_" + Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    internal static byte[] Hash(string apiKey) => SHA256.HashData(Encoding.UTF8.GetBytes(apiKey));

    private sealed class ClientRow
    {
        public string Id { get; init; } = "";

        public string Name { get; init; } = "";

        public string[] AllowedEventTypes { get; init; } = [];

        public bool Active { get; init; }

        public DateTime CreatedAt { get; init; }

        public int? RateLimitPerSecond { get; init; }

        public Client ToClient() =>
            new(Id, Name, AllowedEventTypes, Active, new DateTimeOffset(CreatedAt, TimeSpan.Zero), RateLimitPerSecond);
    }

    [GeneratedRegex("^[A-Za-z0-9._-]+$")]
    private static partial Regex IdPattern();
}

/// <summary>A client cannot be added as asked; the message says why.</summary>
public sealed class ClientException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ClientException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ClientException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public ClientException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
