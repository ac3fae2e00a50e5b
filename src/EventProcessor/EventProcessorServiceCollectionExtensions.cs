using EventProcessor.Handling;
using EventProcessor.Processing;
using EventProcessor.Retries;
using EventProcessor.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace EventProcessor;

/// <summary>Hosts the event processor in any .NET application.</summary>
public static class EventProcessorServiceCollectionExtensions
{
    /// <summary>
    /// Adds the engine: the poll loops, the listener that wakes them when an event arrives, and the lease keeper as
    /// hosted services, and <see cref="EventEngine"/> for on-demand runs. Register handlers on the returned builder.
    /// The schema must exist (see <c>SchemaMigrator</c>).
    /// </summary>
    public static EventProcessorBuilder AddEventProcessor(this IServiceCollection services, Action<EventProcessorOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        if (services.Any(d => d.ServiceType == typeof(EventEngine)))
        {
            throw new InvalidOperationException("AddEventProcessor was already called on this service collection.");
        }

        services.AddOptions<EventProcessorOptions>().Configure(configure).ValidateOnStart();
        services.AddSingleton<IValidateOptions<EventProcessorOptions>, EventProcessorOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<EventProcessorOptions>>().Value);
        services.AddSingleton<EventDatabase>();
        services.AddSingleton<HandlerRegistry>();
        services.AddSingleton<ProcessingStats>();
        services.AddSingleton<HeldEvents>();
        services.AddSingleton(sp => new RetrySchedule(sp.GetRequiredService<EventProcessorOptions>(), Random.Shared));
        services.AddSingleton<EventExecutor>();
        services.AddSingleton<EventCompleter>();
        services.AddSingleton<EventClaimer>();
        services.AddSingleton<BatchRunner>();
        services.AddSingleton(sp => new EventEngine(
            sp.GetRequiredService<EventClaimer>(),
            sp.GetRequiredService<BatchRunner>(),
            sp.GetRequiredService<HeldEvents>(),
            sp.GetRequiredService<EventDatabase>(),
            sp.GetRequiredService<ProcessingStats>(),
            sp.GetRequiredService<HandlerRegistry>(),
            sp.GetRequiredService<EventProcessorOptions>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<Microsoft.Extensions.Logging.ILogger<EventEngine>>()));
        services.AddHostedService<EventPoller>();
        services.AddHostedService<PendingEventListener>();
        services.AddHostedService<LeaseKeeper>();
        return new EventProcessorBuilder(services);
    }
}
