using System.Globalization;
using EventProcessor.Ingress;
using Npgsql;
using Serilog.Events;

namespace EventProcessor.Host.Configuration;

/// <summary>
/// The service's settings, read from configuration under the seed's environment variable names (which also work
/// as keys in appsettings.json). Every value is checked here so that a bad one stops the start with one line that
/// names it.
/// </summary>
internal sealed record ServiceSettings(
    System.Net.IPAddress BindAddress,
    int Port,
    int PollIntervalMs,
    int BatchSize,
    int Workers,
    int MaxRetries,
    bool EnablePolling,
    LogEventLevel LogLevel,
    int RetryBaseDelayMs,
    int RetryMaxDelayMs,
    double RetryBackoffFactor,
    int HandlerTimeoutMs,
    int LeaseMs,
    bool RunMigrations,
    string ConnectionString,
    string? AdminApiKey,
    int MaxBodyBytes,
    int MaxDecompressedBytes,
    int MaxJsonDepth,
    bool AllowUnauthenticated,
    int AdminRateLimitPerMinute,
    int MaxEventsPerRequest,
    int ClientRateLimitPerSecond,
    int RequestTimeoutMs,
    int MaxConcurrentConnections,
    bool? HealthDetails)
{
    public static ServiceSettings Load(IConfiguration configuration)
    {
        var baseDelay = Int(configuration, "RETRY_BASE_DELAY_MS", 1000, 0, 86_400_000);
        return new ServiceSettings(
            BindAddress: Address(configuration),
            Port: Int(configuration, "PORT", 8080, 0, 65_535),
            PollIntervalMs: Int(configuration, "POLL_INTERVAL_MS", 10_000, 1, 3_600_000),
            BatchSize: Int(configuration, "BATCH_SIZE", 20, 1, 10_000),
            Workers: Int(configuration, "WORKERS", 16, 1, 64),
            MaxRetries: Int(configuration, "MAX_RETRIES", 5, 1, 1_000),
            EnablePolling: Bool(configuration, "ENABLE_POLLING", true),
            LogLevel: Level(configuration),
            RetryBaseDelayMs: baseDelay,
            RetryMaxDelayMs: Int(configuration, "RETRY_MAX_DELAY_MS", 300_000, Math.Max(1, baseDelay), int.MaxValue),
            RetryBackoffFactor: Double(configuration, "RETRY_BACKOFF_FACTOR", 2.0, 1.0, 100.0),
            HandlerTimeoutMs: Int(configuration, "HANDLER_TIMEOUT_MS", 30_000, 1, 3_600_000),
            LeaseMs: Int(configuration, "LEASE_MS", 30_000, 1_000, 3_600_000),
            RunMigrations: Bool(configuration, "RUN_MIGRATIONS", true),
            ConnectionString: ConnectionStringFrom(configuration),
            AdminApiKey: string.IsNullOrEmpty(configuration["ADMIN_API_KEY"]) ? null : configuration["ADMIN_API_KEY"],
            MaxBodyBytes: Int(configuration, "MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024),
            MaxDecompressedBytes: Int(configuration, "MAX_DECOMPRESSED_BYTES", 8 * 1024 * 1024, 1024, 256 * 1024 * 1024),
            MaxJsonDepth: Int(configuration, "MAX_JSON_DEPTH", 64, 2, 1_000),
            AllowUnauthenticated: Bool(configuration, "ALLOW_UNAUTHENTICATED", false),
            AdminRateLimitPerMinute: Int(configuration, "ADMIN_RATE_LIMIT_PER_MINUTE", 600, 1, 1_000_000),
            MaxEventsPerRequest: Int(configuration, "MAX_EVENTS_PER_REQUEST", 1_000, 1, 100_000),
            ClientRateLimitPerSecond: Int(configuration, "CLIENT_RATE_LIMIT_PER_SECOND", 1_000, 0, Ingress.Clients.ClientStore.MaxRate),
            RequestTimeoutMs: Int(configuration, "REQUEST_TIMEOUT_MS", 30_000, 100, 3_600_000),
            MaxConcurrentConnections: Int(configuration, "MAX_CONCURRENT_CONNECTIONS", 1_000, 1, 1_000_000),
            HealthDetails: string.IsNullOrWhiteSpace(configuration["HEALTH_DETAILS"]) ? null : Bool(configuration, "HEALTH_DETAILS", false));
    }

    /// <summary>
    /// Without <c>ADMIN_API_KEY</c> the admin endpoints and <c>POST /events</c> take anyone's requests. That is
    /// allowed in Development, or when <c>ALLOW_UNAUTHENTICATED</c> says the network is private; anywhere else the
    /// service refuses to start rather than serve open by accident.
    /// </summary>
    public void CheckAccess(IHostEnvironment environment)
    {
        if (AdminApiKey is null && !AllowUnauthenticated && !environment.IsDevelopment())
        {
            throw new SettingsException(
                "ADMIN_API_KEY is not set: outside Development the admin endpoints and POST /events need a key. " +
                "Set ADMIN_API_KEY, or ALLOW_UNAUTHENTICATED=true to leave them open on a private network.");
        }
    }

    /// <summary>
    /// Whether <c>GET /health</c> shows everyone the registered event types and the ingress counts: they name
    /// tenants' types and show their traffic, so by default only in Development (<c>HEALTH_DETAILS</c> unset); the
    /// admin key sees them whatever this says.
    /// </summary>
    public bool ShowsHealthDetails(IHostEnvironment environment) => HealthDetails ?? environment.IsDevelopment();

    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        // The printed form (ToString) leaves the secrets out, in case it ever reaches a log or a message: the admin
        // key is only said to be set, and the connection string loses its password.
        var connection = new NpgsqlConnectionStringBuilder(ConnectionString) { Password = null };
        builder.Append(CultureInfo.InvariantCulture, $"BindAddress = {BindAddress}, Port = {Port}, PollIntervalMs = {PollIntervalMs}, ")
            .Append(CultureInfo.InvariantCulture, $"BatchSize = {BatchSize}, Workers = {Workers}, MaxRetries = {MaxRetries}, EnablePolling = {EnablePolling}, ")
            .Append(CultureInfo.InvariantCulture, $"LogLevel = {LogLevel}, RetryBaseDelayMs = {RetryBaseDelayMs}, RetryMaxDelayMs = {RetryMaxDelayMs}, ")
            .Append(CultureInfo.InvariantCulture, $"RetryBackoffFactor = {RetryBackoffFactor}, HandlerTimeoutMs = {HandlerTimeoutMs}, LeaseMs = {LeaseMs}, ")
            .Append(CultureInfo.InvariantCulture, $"RunMigrations = {RunMigrations}, ConnectionString = {connection.ConnectionString}, ")
            .Append(CultureInfo.InvariantCulture, $"AdminApiKey = {(AdminApiKey is null ? "(none)" : "(set)")}, MaxBodyBytes = {MaxBodyBytes}, ")
            .Append(CultureInfo.InvariantCulture, $"MaxDecompressedBytes = {MaxDecompressedBytes}, MaxJsonDepth = {MaxJsonDepth}, ")
            .Append(CultureInfo.InvariantCulture, $"AllowUnauthenticated = {AllowUnauthenticated}, AdminRateLimitPerMinute = {AdminRateLimitPerMinute}, ")
            .Append(CultureInfo.InvariantCulture, $"MaxEventsPerRequest = {MaxEventsPerRequest}, ClientRateLimitPerSecond = {ClientRateLimitPerSecond}, ")
            .Append(CultureInfo.InvariantCulture, $"RequestTimeoutMs = {RequestTimeoutMs}, MaxConcurrentConnections = {MaxConcurrentConnections}, ")
            .Append(CultureInfo.InvariantCulture, $"HealthDetails = {HealthDetails?.ToString() ?? "(by environment)"}");
        return true;
    }

    public void Apply(EventProcessorOptions options)
    {
        options.ConnectionString = ConnectionString;
        options.EnablePolling = EnablePolling;
        options.PollInterval = TimeSpan.FromMilliseconds(PollIntervalMs);
        options.BatchSize = BatchSize;
        options.Workers = Workers;
        options.MaxRetries = MaxRetries;
        options.RetryBaseDelay = TimeSpan.FromMilliseconds(RetryBaseDelayMs);
        options.RetryMaxDelay = TimeSpan.FromMilliseconds(RetryMaxDelayMs);
        options.RetryBackoffFactor = RetryBackoffFactor;
        options.HandlerTimeout = TimeSpan.FromMilliseconds(HandlerTimeoutMs);
        options.LeaseDuration = TimeSpan.FromMilliseconds(LeaseMs);
    }

    public void Apply(IngressOptions options, IConfiguration configuration)
    {
        options.ConnectionString = ConnectionString;
        options.Limits.MaxBodyBytes = MaxBodyBytes;
        options.Limits.MaxDecompressedBytes = MaxDecompressedBytes;
        options.Limits.MaxJsonDepth = MaxJsonDepth;
        options.Limits.MaxEventsPerRequest = MaxEventsPerRequest;
        configuration.GetSection("Sqs").Bind(options.Sqs);
        for (var i = 0; i < options.Sqs.Queues.Count; i++)
        {
            if (!Uri.TryCreate(options.Sqs.Queues[i].Url, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            {
                throw new SettingsException(
                    $"Sqs__Queues__{i}__Url='{options.Sqs.Queues[i].Url}' is invalid: expected a queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/events.");
            }
        }

        if (options.Sqs.WaitTimeSeconds is < 0 or > 20)
        {
            throw new SettingsException($"Sqs__WaitTimeSeconds='{options.Sqs.WaitTimeSeconds}' is invalid: expected 0 to 20.");
        }
    }

    /// <summary>
    /// <c>DATABASE_URL</c> (<c>postgres://user:password@host:port/database?sslmode=require</c>) wins over
    /// <c>ConnectionStrings:Events</c> (Npgsql keyword form).
    /// </summary>
    private static string ConnectionStringFrom(IConfiguration configuration)
    {
        var url = configuration["DATABASE_URL"];
        if (!string.IsNullOrWhiteSpace(url))
        {
            return DatabaseUrl.ToConnectionString(url);
        }

        var connectionString = configuration.GetConnectionString("Events");
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new SettingsException(
                "DATABASE_URL is not set: give a postgres://user:password@host:5432/database URL, or ConnectionStrings__Events.");
        }

        try
        {
            return new NpgsqlConnectionStringBuilder(connectionString).ConnectionString;
        }
        catch (ArgumentException exception)
        {
            throw new SettingsException($"ConnectionStrings__Events is not a valid Npgsql connection string: {exception.Message}");
        }
    }

    private static int Int(IConfiguration configuration, string key, int fallback, int min, int max)
    {
        var raw = configuration[key];
        if (string.IsNullOrWhiteSpace(raw))
        {
            return fallback;
        }

        return int.TryParse(raw.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : throw new SettingsException($"{key}='{raw}' is invalid: expected a whole number from {min} to {max}.");
    }

    private static double Double(IConfiguration configuration, string key, double fallback, double min, double max)
    {
        var raw = configuration[key];
        if (string.IsNullOrWhiteSpace(raw))
        {
            return fallback;
        }

        return double.TryParse(raw.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : throw new SettingsException($"{key}='{raw}' is invalid: expected a number from {min} to {max}.");
    }

    private static bool Bool(IConfiguration configuration, string key, bool fallback)
    {
        var raw = configuration[key]?.Trim();
        return raw?.ToLowerInvariant() switch
        {
            null or "" => fallback,
            "true" or "1" or "yes" or "on" => true,
            "false" or "0" or "no" or "off" => false,
            _ => throw new SettingsException($"{key}='{raw}' is invalid: expected true or false."),
        };
    }

    private static System.Net.IPAddress Address(IConfiguration configuration)
    {
        var raw = configuration["BIND_ADDRESS"]?.Trim();
        if (string.IsNullOrEmpty(raw))
        {
            return System.Net.IPAddress.Any;
        }

        return System.Net.IPAddress.TryParse(raw, out var address)
            ? address
            : throw new SettingsException($"BIND_ADDRESS='{raw}' is invalid: expected an IP address such as 0.0.0.0 or 127.0.0.1.");
    }

    private static LogEventLevel Level(IConfiguration configuration)
    {
        var raw = configuration["LOG_LEVEL"]?.Trim();
        return raw?.ToLowerInvariant() switch
        {
            null or "" or "info" or "information" => LogEventLevel.Information,
            "trace" or "verbose" => LogEventLevel.Verbose,
            "debug" => LogEventLevel.Debug,
            "warn" or "warning" => LogEventLevel.Warning,
            "error" => LogEventLevel.Error,
            "fatal" => LogEventLevel.Fatal,
            _ => throw new SettingsException($"LOG_LEVEL='{raw}' is invalid: expected trace, debug, info, warn, error or fatal."),
        };
    }
}

/// <summary>A setting that cannot be used; the message names it and says what is accepted.</summary>
internal sealed class SettingsException(string message) : Exception(message);
