using EventProcessor.Handlers.Schemas;
using EventProcessor.Handlers.Webhooks;
using EventProcessor.Handling;
using EventProcessor.Host.Admin;
using EventProcessor.Host.Configuration;
using EventProcessor.Host.Endpoints;
using EventProcessor.Ingress;
using EventProcessor.Ingress.Clients;
using EventProcessor.Ingress.Schemas;
using EventProcessor.Migrations;
using EventProcessor.Validation;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Npgsql;

namespace EventProcessor.Host;

/// <summary>
/// Composition of the service: settings, logging, the engine with the shipped handlers, and the HTTP API.
/// Tests build the same application with their own settings.
/// </summary>
internal static class ServiceApp
{
    /// <summary>The Retry-After of a 503: long enough for a database restart or a pool to drain, short enough to matter.</summary>
    public const string RetryAfterUnavailableSeconds = "5";

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
            settings.CheckAccess(builder.Environment);
        }
        catch (Exception exception) when (exception is SettingsException or WebhookConfigurationException)
        {
            throw new StartupException(exception.Message, exception);
        }

        builder.AddServiceLogging(settings);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(settings.BindAddress, settings.Port);
            kestrel.AddServerHeader = false; // "Server: Kestrel" only tells a scanner what to try
            HttpLimits.Apply(kestrel.Limits, settings);
        });
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(10));
        builder.Services.AddSingleton(settings);
        builder.Services.AddProblemDetails(problems => problems.CustomizeProblemDetails = CompleteProblem);
        builder.Services.AddAdminRateLimiting(settings);
        builder.Services.AddSingleton<ClientRateLimits>();
        builder.Services.AddRequestTimeouts(timeouts => timeouts.DefaultPolicy = HttpLimits.ReceiveDeadline(settings));
        builder.Services.AddSingleton(_ => new AdminDatabase(settings.ConnectionString));
        builder.Services.AddSingleton<AdminStore>();

        var app = builder.Build();
        app.Use(AddRetryAfterToEvery503);
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseRateLimiter();

        // Inside the exception handler, which answers a cancelled read as a client that hung up (499): the deadline's
        // own middleware must see the cancellation first, to answer 408.
        app.UseRequestTimeouts();
        app.MapHealthEndpoints();
        app.MapAdminEndpoints();
        app.MapIngressEndpoints();
        return app;
    }

    /// <summary>
    /// Every 503 says when to come back, whichever code wrote it (a database that is away, an exhausted pool), so
    /// that clients and load balancers back off instead of hammering.
    /// </summary>
    private static Task AddRetryAfterToEvery503(HttpContext context, RequestDelegate next)
    {
        context.Response.OnStarting(
            static state =>
            {
                var response = (HttpResponse)state;
                if (response.StatusCode == StatusCodes.Status503ServiceUnavailable && !response.Headers.ContainsKey(HeaderNames.RetryAfter))
                {
                    response.Headers.RetryAfter = RetryAfterUnavailableSeconds;
                }

                return Task.CompletedTask;
            },
            context.Response);
        return next(context);
    }

    /// <summary>
    /// Every problem says what went wrong in a sentence. An unexpected exception (a 500) tells the caller that it
    /// happened, never what it said: exception messages name hosts, SQL and sometimes secrets. The exception itself
    /// goes to the log. Nothing the caller sent is echoed here.
    /// </summary>
    private static void CompleteProblem(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        if (problem.Status is null or >= StatusCodes.Status500InternalServerError && context.Exception is not null)
        {
            problem.Title = "Internal error";
            problem.Detail = "The request failed on an unexpected error, which the service has logged.";
            problem.Extensions.Remove("exception");
        }

        problem.Detail ??= problem.Status switch
        {
            StatusCodes.Status408RequestTimeout => $"The request was not received within {context.HttpContext.RequestServices.GetRequiredService<ServiceSettings>().RequestTimeoutMs} ms (REQUEST_TIMEOUT_MS); nothing was done. Send the whole request within that time.",
            StatusCodes.Status404NotFound => "There is no endpoint at this path; the API is described in the README.",
            StatusCodes.Status405MethodNotAllowed => $"This endpoint does not take {context.HttpContext.Request.Method}.",
            { } status => $"{ReasonPhrases.GetReasonPhrase(status)}.",
            null => "The request failed.",
        };
    }

    /// <summary>Migrates (unless disabled), then serves until SIGTERM. Returns the process exit code.</summary>
    public static async Task<int> RunAsync(WebApplication app)
    {
        var settings = app.Services.GetRequiredService<ServiceSettings>();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("EventProcessor.Host");
        if (settings.AdminApiKey is null)
        {
            Log.AdminEndpointsOpen(logger, app.Environment.IsDevelopment() ? "Development" : "ALLOW_UNAUTHENTICATED=true");
        }

        try
        {
            if (settings.RunMigrations)
            {
                await SchemaMigrator.MigrateAsync(settings.ConnectionString, app.Lifetime.ApplicationStopping);
            }

            await SeedOrRemoveSampleClientsAsync(app, settings, logger);

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

    /// <summary>
    /// The seed's sample clients have public keys (README): they are seeded in Development without an admin key, and
    /// removed at any other start, so that a database once seeded by an open run does not keep them working.
    /// </summary>
    private static async Task SeedOrRemoveSampleClientsAsync(WebApplication app, ServiceSettings settings, ILogger logger)
    {
        if (app.Environment.IsDevelopment() && settings.AdminApiKey is null)
        {
            await app.Services.GetRequiredService<ClientStore>().SeedDevelopmentClientsAsync(app.Lifetime.ApplicationStopping);
            return;
        }

        var removed = await app.Services.GetRequiredService<AdminStore>().RemoveSampleClientsAsync(app.Lifetime.ApplicationStopping);
        if (removed.Count > 0)
        {
            Log.SampleClientsRemoved(logger, string.Join(", ", removed));
        }
    }
}

/// <summary>The service cannot start as configured; the message says which setting and why.</summary>
internal sealed class StartupException(string message, Exception innerException) : Exception(message, innerException);
