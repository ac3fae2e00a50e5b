using Amazon.SQS;
using EventProcessor.Ingress.Classification;
using EventProcessor.Ingress.Clients;
using EventProcessor.Ingress.Sqs;
using EventProcessor.Ingress.Writing;
using EventProcessor.Validation;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EventProcessor.Ingress;

/// <summary>Adds the ingress doors to an application.</summary>
public static class IngressServiceCollectionExtensions
{
    /// <summary>
    /// Adds the classifier, the client store, the writer and <see cref="EventIngress"/>; and, when queues are
    /// configured, the SQS worker. Payloads are checked by every registered <see cref="IEventPayloadValidator"/>.
    /// </summary>
    public static IServiceCollection AddEventIngress(this IServiceCollection services, Action<IngressOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var options = new IngressOptions();
        configure(options);
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            throw new ArgumentException("IngressOptions.ConnectionString is required.", nameof(configure));
        }

        services.AddSingleton(options);
        services.AddSingleton(options.Limits);
        services.AddSingleton(new IngressDatabase(options.ConnectionString));
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<EventClassifier>();
        services.AddSingleton<IngressStats>();
        services.AddSingleton(sp => new ClientStore(sp.GetRequiredService<IngressDatabase>().DataSource));
        services.AddSingleton(sp => new IngressWriter(sp.GetRequiredService<IngressDatabase>().DataSource, sp.GetRequiredService<IngressStats>()));
        services.AddSingleton<EventIngress>();

        if (options.Sqs.Queues.Count > 0)
        {
            services.TryAddSingleton(_ => SqsClientFactory.Create(options.Sqs));
            services.AddHostedService(sp => new SqsIngressWorker(
                sp.GetRequiredService<IAmazonSQS>(),
                options.Sqs,
                sp.GetRequiredService<EventClassifier>(),
                sp.GetRequiredService<EventIngress>(),
                sp.GetRequiredService<IngressWriter>(),
                sp.GetService<EventEngine>() is { } engine ? engine.Wake : null,
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILogger<SqsIngressWorker>>()));
        }

        return services;
    }
}

/// <summary>The ingress path's own connection pool.</summary>
internal sealed class IngressDatabase(string connectionString) : IAsyncDisposable
{
    // A door's caller hears that the database is out of reach, or the pool full, within this many seconds: a 503 it
    // can retry, instead of a request hanging for Npgsql's default 15 s. A shorter Timeout in the connection string
    // stays as it is.
    private const int DoorTimeoutSeconds = 5;

    public NpgsqlDataSource DataSource { get; } = Build(connectionString);

    public ValueTask DisposeAsync() => DataSource.DisposeAsync();

    private static NpgsqlDataSource Build(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        var settings = builder.ConnectionStringBuilder;
        settings.ApplicationName = "event-processor-ingress";
        settings.Timeout = settings.Timeout is > 0 and < DoorTimeoutSeconds ? settings.Timeout : DoorTimeoutSeconds;
        return builder.Build();
    }
}
