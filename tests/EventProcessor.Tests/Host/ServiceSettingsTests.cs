using System.Net;
using EventProcessor.Host;
using EventProcessor.Host.Configuration;
using Microsoft.Extensions.Configuration;
using Npgsql;
using Serilog.Events;

namespace EventProcessor.Tests.Host;

/// <summary>Settings as the service reads them: pure, no database, no server.</summary>
[Parallelizable(ParallelScope.All)]
public sealed class ServiceSettingsTests
{
    private const string ValidUrl = "postgres://app:pw@db.example:5432/events";
    private const string Password = "Sup3r-Secret-Pa55";

    [Test]
    public void The_service_ships_with_idle_thread_pool_workers_that_do_not_spin()
    {
        // The service's own runtimeconfig, as built beside its assembly (and copied here with it).
        var path = Path.Combine(AppContext.BaseDirectory, "EventProcessor.Host.runtimeconfig.json");
        using var config = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        var properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");

        Assert.That(
            properties.TryGetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit", out var limit) ? limit.ToString() : null,
            Is.EqualTo("0"),
            "a third of the process's CPU in a drain went to idle workers spinning for work");
    }

    [Test]
    public void Defaults_are_the_seeds()
    {
        var settings = Load(("DATABASE_URL", ValidUrl));

        Assert.Multiple(() =>
        {
            Assert.That(settings.Port, Is.EqualTo(8080), "PORT");
            Assert.That(settings.PollIntervalMs, Is.EqualTo(10_000), "POLL_INTERVAL_MS");
            Assert.That(settings.BatchSize, Is.EqualTo(20), "BATCH_SIZE");
            Assert.That(settings.Workers, Is.EqualTo(16), "WORKERS");
            Assert.That(settings.MaxRetries, Is.EqualTo(5), "MAX_RETRIES");
            Assert.That(settings.EnablePolling, Is.True, "ENABLE_POLLING");
            Assert.That(settings.LogLevel, Is.EqualTo(LogEventLevel.Information), "LOG_LEVEL");
            Assert.That(settings.RetryBaseDelayMs, Is.EqualTo(1000), "RETRY_BASE_DELAY_MS");
            Assert.That(settings.RetryMaxDelayMs, Is.EqualTo(300_000), "RETRY_MAX_DELAY_MS");
            Assert.That(settings.RetryBackoffFactor, Is.EqualTo(2.0), "RETRY_BACKOFF_FACTOR");
            Assert.That(settings.HandlerTimeoutMs, Is.EqualTo(30_000), "HANDLER_TIMEOUT_MS");
            Assert.That(settings.LeaseMs, Is.EqualTo(30_000), "LEASE_MS");
            Assert.That(settings.RunMigrations, Is.True, "RUN_MIGRATIONS");
            Assert.That(settings.BindAddress, Is.EqualTo(IPAddress.Any), "BIND_ADDRESS");
            Assert.That(settings.AdminApiKey, Is.Null, "ADMIN_API_KEY");
            Assert.That(settings.AllowUnauthenticated, Is.False, "ALLOW_UNAUTHENTICATED");
            Assert.That(settings.AdminRateLimitPerMinute, Is.EqualTo(600), "ADMIN_RATE_LIMIT_PER_MINUTE");
            Assert.That(settings.MaxEventsPerRequest, Is.EqualTo(1_000), "MAX_EVENTS_PER_REQUEST");
            Assert.That(settings.ClientRateLimitPerSecond, Is.EqualTo(1_000), "CLIENT_RATE_LIMIT_PER_SECOND");
            Assert.That(settings.RequestTimeoutMs, Is.EqualTo(30_000), "REQUEST_TIMEOUT_MS");
            Assert.That(settings.MaxConcurrentConnections, Is.EqualTo(1_000), "MAX_CONCURRENT_CONNECTIONS");
            Assert.That(settings.HealthDetails, Is.Null, "HEALTH_DETAILS: by environment");
        });
    }

    [Test]
    public void The_library_and_the_service_share_their_defaults()
    {
        // An application hosting the engine itself (AddEventProcessor) gets what the service gets with nothing set.
        var service = Load(("DATABASE_URL", ValidUrl));
        var library = new EventProcessorOptions();

        Assert.Multiple(() =>
        {
            Assert.That(library.BatchSize, Is.EqualTo(service.BatchSize), "BatchSize");
            Assert.That(library.Workers, Is.EqualTo(service.Workers), "Workers");
            Assert.That(library.MaxRetries, Is.EqualTo(service.MaxRetries), "MaxRetries");
            Assert.That(library.PollInterval.TotalMilliseconds, Is.EqualTo(service.PollIntervalMs), "PollInterval");
        });
    }

    [Test]
    public void Shipped_appsettings_json_agrees_with_the_defaults()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "appsettings.json");
        Assume.That(File.Exists(path), Is.True, $"{path} is copied next to the tests");
        var configuration = new ConfigurationBuilder()
            .AddJsonFile(path)
            .AddInMemoryCollection([new("DATABASE_URL", ValidUrl)])
            .Build();

        Assert.That(ServiceSettings.Load(configuration), Is.EqualTo(Load(("DATABASE_URL", ValidUrl))));
    }

    [Test]
    public void Values_given_are_used()
    {
        var settings = Load(
            ("DATABASE_URL", ValidUrl),
            ("PORT", "9090"),
            ("BIND_ADDRESS", "127.0.0.1"),
            ("POLL_INTERVAL_MS", " 250 "),
            ("BATCH_SIZE", "50"),
            ("WORKERS", "3"),
            ("MAX_RETRIES", "2"),
            ("ENABLE_POLLING", "FALSE"),
            ("LOG_LEVEL", "Debug"),
            ("RETRY_BASE_DELAY_MS", "10"),
            ("RETRY_MAX_DELAY_MS", "20"),
            ("RETRY_BACKOFF_FACTOR", "1.5"),
            ("HANDLER_TIMEOUT_MS", "500"),
            ("LEASE_MS", "5000"),
            ("RUN_MIGRATIONS", "0"),
            ("ADMIN_API_KEY", "k"),
            ("MAX_BODY_BYTES", "2048"),
            ("MAX_DECOMPRESSED_BYTES", "4096"),
            ("MAX_JSON_DEPTH", "8"),
            ("ALLOW_UNAUTHENTICATED", "yes"),
            ("ADMIN_RATE_LIMIT_PER_MINUTE", "30"),
            ("MAX_EVENTS_PER_REQUEST", "7"),
            ("CLIENT_RATE_LIMIT_PER_SECOND", "0"),
            ("REQUEST_TIMEOUT_MS", "1500"),
            ("MAX_CONCURRENT_CONNECTIONS", "7"),
            ("HEALTH_DETAILS", "true"));

        Assert.That(
            settings,
            Is.EqualTo(new ServiceSettings(
                IPAddress.Loopback, 9090, 250, 50, 3, 2, false, LogEventLevel.Debug, 10, 20, 1.5, 500, 5000, false, settings.ConnectionString, "k", 2048, 4096, 8, true, 30, 7, 0, 1500, 7, true)));
    }

    [TestCase("BATCH_SIZE", "0")]
    [TestCase("BATCH_SIZE", "abc")]
    [TestCase("BATCH_SIZE", "10001")]
    [TestCase("BATCH_SIZE", "2.5")]
    [TestCase("WORKERS", "0")]
    [TestCase("WORKERS", "65")]
    [TestCase("POLL_INTERVAL_MS", "-1")]
    [TestCase("POLL_INTERVAL_MS", "0")]
    [TestCase("MAX_RETRIES", "0")]
    [TestCase("ENABLE_POLLING", "maybe")]
    [TestCase("RUN_MIGRATIONS", "sometimes")]
    [TestCase("LOG_LEVEL", "loud")]
    [TestCase("PORT", "70000")]
    [TestCase("PORT", "-1")]
    [TestCase("BIND_ADDRESS", "localhost")]
    [TestCase("RETRY_BASE_DELAY_MS", "-1")]
    [TestCase("RETRY_MAX_DELAY_MS", "999")]
    [TestCase("RETRY_BACKOFF_FACTOR", "0.5")]
    [TestCase("RETRY_BACKOFF_FACTOR", "fast")]
    [TestCase("HANDLER_TIMEOUT_MS", "0")]
    [TestCase("LEASE_MS", "999")]
    [TestCase("MAX_EVENTS_PER_REQUEST", "0")]
    [TestCase("CLIENT_RATE_LIMIT_PER_SECOND", "-1")]
    [TestCase("MAX_BODY_BYTES", "10")]
    [TestCase("MAX_DECOMPRESSED_BYTES", "x")]
    [TestCase("MAX_JSON_DEPTH", "1")]
    [TestCase("ALLOW_UNAUTHENTICATED", "please")]
    [TestCase("ADMIN_RATE_LIMIT_PER_MINUTE", "0")]
    [TestCase("REQUEST_TIMEOUT_MS", "99")]
    [TestCase("REQUEST_TIMEOUT_MS", "30s")]
    [TestCase("MAX_CONCURRENT_CONNECTIONS", "0")]
    [TestCase("MAX_CONCURRENT_CONNECTIONS", "unlimited")]
    [TestCase("HEALTH_DETAILS", "some")]
    [TestCase("DATABASE_URL", "mysql://x")]
    [TestCase("DATABASE_URL", "not a url")]
    public void An_invalid_value_throws_naming_the_setting(string key, string value)
    {
        var exception = Assert.Throws<SettingsException>(() => Load(("DATABASE_URL", ValidUrl), (key, value)));

        Assert.That(exception!.Message, Does.Contain(key));
    }

    [Test]
    public void A_missing_database_throws_naming_both_ways_to_give_one()
    {
        var exception = Assert.Throws<SettingsException>(() => Load(("BATCH_SIZE", "5")));

        Assert.Multiple(() =>
        {
            Assert.That(exception!.Message, Does.Contain("DATABASE_URL"));
            Assert.That(exception.Message, Does.Contain("ConnectionStrings"));
        });
    }

    [Test]
    public void A_blank_DATABASE_URL_counts_as_missing()
    {
        var exception = Assert.Throws<SettingsException>(() => Load(("DATABASE_URL", "  ")));

        Assert.That(exception!.Message, Does.Contain("DATABASE_URL"));
    }

    [Test]
    public void ConnectionStrings_Events_is_used_without_DATABASE_URL()
    {
        var settings = Load(("ConnectionStrings:Events", "Host=cs.example;Port=6000;Database=cs;Username=u"));
        var connection = new NpgsqlConnectionStringBuilder(settings.ConnectionString);

        Assert.Multiple(() =>
        {
            Assert.That(connection.Host, Is.EqualTo("cs.example"));
            Assert.That(connection.Port, Is.EqualTo(6000));
            Assert.That(connection.Database, Is.EqualTo("cs"));
        });
    }

    [Test]
    public void DATABASE_URL_wins_over_ConnectionStrings_Events()
    {
        var settings = Load(("DATABASE_URL", ValidUrl), ("ConnectionStrings:Events", "Host=cs.example;Database=cs"));

        Assert.That(new NpgsqlConnectionStringBuilder(settings.ConnectionString).Host, Is.EqualTo("db.example"));
    }

    [Test]
    public void An_invalid_ConnectionStrings_Events_throws_naming_it_without_the_password()
    {
        var exception = Assert.Throws<SettingsException>(
            () => Load(("ConnectionStrings:Events", $"Host=h;Password={Password};NoSuchKeyword=1")));

        Assert.Multiple(() =>
        {
            Assert.That(exception!.Message, Does.Contain("ConnectionStrings"));
            Assert.That(exception.Message, Does.Not.Contain(Password));
        });
    }

    [TestCase($"mysql://app:{Password}@db.example/events")]
    [TestCase($"postgres://app:{Password}@db.example:99999/events")]
    [TestCase($"postgres://app:{Password}@db.example/events?no_such_parameter=1")]
    [TestCase($"postgres://app:{Password}@db.example/events?sslmode=sometimes")]
    [TestCase($"postgres://app:{Password}@db.example/events?port=abc")]
    [TestCase($"postgres://app:{Password}@db example/events")]
    [TestCase($"postgres://app:{Password}/events")]
    public void A_bad_DATABASE_URL_never_echoes_its_password(string url)
    {
        var exception = Assert.Throws<SettingsException>(() => Load(("DATABASE_URL", url)));

        Assert.Multiple(() =>
        {
            Assert.That(exception!.Message, Does.Contain("DATABASE_URL"));
            Assert.That(exception.Message, Does.Not.Contain(Password));
            Assert.That(exception.Message, Does.Not.Contain(url));
        });
    }

    [Test]
    public void ServiceApp_refuses_to_build_with_one_line_naming_the_bad_setting()
    {
        var exception = Assert.Throws<StartupException>(
            () => ServiceApp.Create([], [new("DATABASE_URL", $"postgres://app:{Password}@db.example/events"), new("BATCH_SIZE", "0")]));

        Assert.Multiple(() =>
        {
            Assert.That(exception!.Message, Does.Contain("BATCH_SIZE"));
            Assert.That(exception.Message, Does.Not.Contain(Environment.NewLine));
            Assert.That(exception.Message, Does.Not.Contain(Password));
        });
    }

    [Test]
    public void ServiceApp_refuses_an_incomplete_webhook_naming_it()
    {
        var exception = Assert.Throws<StartupException>(
            () => ServiceApp.Create(
                [],
                [new("DATABASE_URL", ValidUrl), new("Webhooks:0:Url", "http://127.0.0.1:9/x"), new("Webhooks:0:EventTypes:0", "user.*")]));

        Assert.That(exception!.Message, Does.Contain("Webhooks__0__Secret"));
    }

    [Test]
    public void DatabaseUrl_maps_every_part_and_unescapes_the_password()
    {
        var connection = new NpgsqlConnectionStringBuilder(
            DatabaseUrl.ToConnectionString("postgres://user:p%40ss@db.example:6543/mydb?sslmode=require"));

        Assert.Multiple(() =>
        {
            Assert.That(connection.Host, Is.EqualTo("db.example"));
            Assert.That(connection.Port, Is.EqualTo(6543));
            Assert.That(connection.Username, Is.EqualTo("user"));
            Assert.That(connection.Password, Is.EqualTo("p@ss"));
            Assert.That(connection.Database, Is.EqualTo("mydb"));
            Assert.That(connection.SslMode, Is.EqualTo(SslMode.Require));
        });
    }

    [TestCase("postgres://user:pw@db.example/mydb")]
    [TestCase("postgresql://user:pw@db.example/mydb")]
    public void DatabaseUrl_defaults_the_port_to_5432(string url)
    {
        var connection = new NpgsqlConnectionStringBuilder(DatabaseUrl.ToConnectionString(url));

        Assert.Multiple(() =>
        {
            Assert.That(connection.Port, Is.EqualTo(5432));
            Assert.That(connection.Host, Is.EqualTo("db.example"));
            Assert.That(connection.Database, Is.EqualTo("mydb"));
        });
    }

    [Test]
    public void DatabaseUrl_unescapes_user_password_and_database()
    {
        var connection = new NpgsqlConnectionStringBuilder(
            DatabaseUrl.ToConnectionString("postgres://us%3Aer:p%3Aw%2Fd%3F@db.example/my%20db"));

        Assert.Multiple(() =>
        {
            Assert.That(connection.Username, Is.EqualTo("us:er"));
            Assert.That(connection.Password, Is.EqualTo("p:w/d?"));
            Assert.That(connection.Database, Is.EqualTo("my db"));
        });
    }

    [Test]
    public void DatabaseUrl_without_credentials_or_database_leaves_them_unset()
    {
        var connection = new NpgsqlConnectionStringBuilder(DatabaseUrl.ToConnectionString("postgres://db.example"));

        Assert.Multiple(() =>
        {
            Assert.That(connection.Host, Is.EqualTo("db.example"));
            Assert.That(connection.Username, Is.Null);
            Assert.That(connection.Password, Is.Null);
            Assert.That(connection.Database, Is.Null);
        });
    }

    [Test]
    public void DatabaseUrl_with_an_unknown_query_parameter_throws_naming_it()
    {
        var exception = Assert.Throws<SettingsException>(
            () => DatabaseUrl.ToConnectionString("postgres://user:pw@db.example/mydb?frobnicate=yes"));

        Assert.That(exception!.Message, Does.Contain("frobnicate"));
    }

    [Test]
    public void DatabaseUrl_without_a_host_is_refused()
    {
        var exception = Assert.Throws<SettingsException>(() => DatabaseUrl.ToConnectionString("postgres:///mydb"));

        Assert.That(exception!.Message, Does.Contain("DATABASE_URL"));
    }

    [Test]
    public void The_printed_settings_show_neither_the_admin_key_nor_the_password()
    {
        var settings = Load(("DATABASE_URL", $"postgres://app:{Password}@db.example:5432/events"), ("ADMIN_API_KEY", "admin-key-in-print"));

        var printed = settings.ToString();

        Assert.Multiple(() =>
        {
            Assert.That(printed, Does.Not.Contain(Password));
            Assert.That(printed, Does.Not.Contain("admin-key-in-print"));
            Assert.That(printed, Does.Contain("AdminApiKey = (set)").And.Contain("db.example").And.Contain("BatchSize = 20"));
        });
    }

    [Test]
    public void Outside_Development_no_admin_key_is_refused_naming_both_ways_out()
    {
        var settings = Load(("DATABASE_URL", ValidUrl));

        var exception = Assert.Throws<SettingsException>(() => settings.CheckAccess(HostEnvironment("Production")));

        Assert.Multiple(() =>
        {
            Assert.That(exception!.Message, Does.Contain("ADMIN_API_KEY"));
            Assert.That(exception.Message, Does.Contain("ALLOW_UNAUTHENTICATED=true"));
            Assert.That(exception.Message, Does.Not.Contain('\n'), "one line");
        });
    }

    [TestCase("Production", "ADMIN_API_KEY", "k", TestName = "Production_with_an_admin_key_may_start")]
    [TestCase("Staging", "ALLOW_UNAUTHENTICATED", "true", TestName = "Staging_with_ALLOW_UNAUTHENTICATED_may_start_open")]
    [TestCase("Development", "LOG_LEVEL", "info", TestName = "Development_may_start_open_without_either")]
    public void Access_is_allowed(string environment, string key, string value)
    {
        var settings = Load(("DATABASE_URL", ValidUrl), (key, value));

        Assert.DoesNotThrow(() => settings.CheckAccess(HostEnvironment(environment)));
    }

    [TestCase("Development", null, true, TestName = "Health_details_are_shown_by_default_in_Development")]
    [TestCase("Production", null, false, TestName = "Health_details_are_hidden_by_default_in_Production")]
    [TestCase("Staging", null, false, TestName = "Health_details_are_hidden_by_default_in_Staging")]
    [TestCase("Production", "true", true, TestName = "HEALTH_DETAILS_true_shows_them_in_Production")]
    [TestCase("Development", "false", false, TestName = "HEALTH_DETAILS_false_hides_them_in_Development")]
    public void Health_details_follow_HEALTH_DETAILS_else_the_environment(string environment, string? value, bool shown)
    {
        var settings = Load(("DATABASE_URL", ValidUrl), ("HEALTH_DETAILS", value));

        Assert.That(settings.ShowsHealthDetails(HostEnvironment(environment)), Is.EqualTo(shown));
    }

    private static Microsoft.Extensions.Hosting.Internal.HostingEnvironment HostEnvironment(string name) => new() { EnvironmentName = name };

    /// <summary>Loads settings from <paramref name="values"/>; a later value for a key replaces an earlier one.</summary>
    private static ServiceSettings Load(params (string Key, string? Value)[] values)
    {
        var configuration = new ConfigurationBuilder();
        foreach (var (key, value) in values)
        {
            configuration.AddInMemoryCollection([new(key, value)]);
        }

        return ServiceSettings.Load(configuration.Build());
    }
}
