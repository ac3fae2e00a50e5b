using EventProcessor.Handlers.Schemas;
using EventProcessor.Handlers.Webhooks;
using EventProcessor.Handling;
using EventProcessor.Host.Configuration;
using EventProcessor.Host.Endpoints;
using EventProcessor.Ingress;
using EventProcessor.Ingress.Clients;
using EventProcessor.Ingress.Schemas;
using EventProcessor.Migrations;
using EventProcessor.Validation;
using Microsoft.Extensions.Options;
using Npgsql;

namespace EventProcessor.Host;

/// <summary>
/// Composition of the service: settings, logging, the engine with the shipped handlers, and the HTTP API.
/// Tests build the same application with their own settings.
/// </summary>
internal static class ServiceApp
{
    /// <summary>Builds the service. Throws <see cref="StartupException"/> with one clear line for a bad setting.</summary>
    /// <param name="args">The command line.</param>
    /// <param name="overrides">Settings that win over the environment's (tests).</param>
    /// <param name="services">Registrations made first, so that they win over the defaults (tests).</param>
    /// <param name="handlers">Handlers registered after the shipped ones (a host with test handlers).</param>
    public static WebApplication Create(
        string[] args,
        IEnumerable<KeyValuePair<string, string?>>? overrides = null,
        Action<IServiceCollection>? services = null,
        Action<EventProcessorBuilder>? handlers = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        if (overrides is not null)
        {
            builder.Configuration.AddInMemoryCollection(overrides);
        }

        services?.Invoke(builder.Services);

        ServiceSettings settings;
        try
        {
            settings = ServiceSettings.Load(builder.Configuration);
            var processor = builder.Services
                .AddEventProcessor(settings.Apply)
                .AddHandlersFromAssembly(typeof(WebhookHandler).Assembly)
                .AddWebhooks(builder.Configuration);
            handlers?.Invoke(processor);
            builder.Services.AddEventIngress(ingress => settings.Apply(ingress, builder.Configuration));

            // The shipped schemas are checked at both doors and again before dispatch (the engine takes every
            // registered validator). Parsed once here, before anything is served.
            builder.Services.AddSingleton<IEventPayloadValidator>(
                EventSchemaCatalog.LoadAsync(ShippedSchemas.Schemas).GetAwaiter().GetResult());
        }
        catch (Exception exception) when (exception is SettingsException or WebhookConfigurationException)
        {
            throw new StartupException(exception.Message, exception);
        }

        builder.AddServiceLogging(settings);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(settings.BindAddress, settings.Port);
            kestrel.Limits.MaxRequestBodySize = settings.MaxBodyBytes;
        });
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(10));
        builder.Services.AddSingleton(settings);
        builder.Services.AddProblemDetails();

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.MapHealthEndpoints();
        app.MapAdminEndpoints();
        app.MapIngressEndpoints();
        return app;
    }

    /// <summary>Migrates (unless disabled), then serves until SIGTERM. Returns the process exit code.</summary>
    public static async Task<int> RunAsync(WebApplication app)
    {
        var settings = app.Services.GetRequiredService<ServiceSettings>();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("EventProcessor.Host");
        try
        {
            if (settings.RunMigrations)
            {
                await SchemaMigrator.MigrateAsync(settings.ConnectionString, app.Lifetime.ApplicationStopping);
            }

            if (app.Environment.IsDevelopment())
            {
                await app.Services.GetRequiredService<ClientStore>().SeedDevelopmentClientsAsync(app.Lifetime.ApplicationStopping);
            }

            await app.RunAsync();
            return 0;
        }
        catch (OptionsValidationException exception)
        {
            await Console.Error.WriteLineAsync($"event-processor: invalid settings: {string.Join(" ", exception.Failures)}");
            return 2;
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException)
        {
            // Npgsql's messages name host and port, never the password.
            await Console.Error.WriteLineAsync($"event-processor: cannot reach the database at start-up: {exception.Message}");
            return 3;
        }
        catch (Exception exception)
        {
            Log.StartFailed(logger, exception);
            return 1;
        }
    }
}

/// <summary>The service cannot start as configured; the message says which setting and why.</summary>
internal sealed class StartupException(string message, Exception innerException) : Exception(message, innerException);
