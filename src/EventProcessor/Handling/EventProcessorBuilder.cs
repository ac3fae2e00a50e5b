using System.Reflection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace EventProcessor.Handling;

/// <summary>Registers handlers with the event processor. Returned by <c>AddEventProcessor</c>.</summary>
public sealed class EventProcessorBuilder
{
    internal EventProcessorBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection the processor is registered in.</summary>
    public IServiceCollection Services { get; }

    /// <summary>
    /// Registers <typeparamref name="THandler"/> for every <see cref="HandlesEventAttribute"/> it carries, once per
    /// <see cref="IEventHandler{TPayload}"/> it implements. The handler is resolved from a scope per batch.
    /// </summary>
    public EventProcessorBuilder AddHandler<THandler>()
        where THandler : class => AddHandler(typeof(THandler));

    /// <summary>Registers <typeparamref name="THandler"/> for one event type (or <c>prefix*</c>).</summary>
    public EventProcessorBuilder AddHandler<THandler, TPayload>(string eventType, string description)
        where THandler : class, IEventHandler<TPayload>
    {
        Services.TryAddTransient<THandler>();
        return Add<TPayload>(eventType, description, typeof(THandler), sp => sp.GetRequiredService<THandler>());
    }

    /// <summary>Registers a handler built by <paramref name="factory"/> for one event type (or <c>prefix*</c>).</summary>
    public EventProcessorBuilder AddHandler<TPayload>(
        string eventType,
        string description,
        Func<IServiceProvider, IEventHandler<TPayload>> factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        return Add(eventType, description, typeof(IEventHandler<TPayload>), factory);
    }

    /// <summary>Registers every concrete class in <paramref name="assembly"/> that carries <see cref="HandlesEventAttribute"/>.</summary>
    public EventProcessorBuilder AddHandlersFromAssembly(Assembly assembly)
    {
        ArgumentNullException.ThrowIfNull(assembly);
        foreach (var type in assembly.GetTypes().Where(t => t is { IsClass: true, IsAbstract: false }
                     && t.GetCustomAttributes<HandlesEventAttribute>().Any()))
        {
            AddHandler(type);
        }

        return this;
    }

    private EventProcessorBuilder AddHandler(Type handlerType)
    {
        var attributes = handlerType.GetCustomAttributes<HandlesEventAttribute>().ToArray();
        var payloadTypes = handlerType.GetInterfaces()
            .Where(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEventHandler<>))
            .Select(i => i.GetGenericArguments()[0])
            .ToArray();
        if (attributes.Length == 0 || payloadTypes.Length == 0)
        {
            throw new ArgumentException(
                $"{handlerType.Name} must implement IEventHandler<TPayload> and carry at least one [HandlesEvent(\"type\")].",
                nameof(handlerType));
        }

        Services.TryAddTransient(handlerType);
        var add = typeof(EventProcessorBuilder).GetMethod(nameof(AddResolved), BindingFlags.NonPublic | BindingFlags.Instance)!;
        foreach (var payloadType in payloadTypes)
        {
            foreach (var attribute in attributes)
            {
                add.MakeGenericMethod(payloadType).Invoke(this, [attribute.EventType, attribute.Description, handlerType]);
            }
        }

        return this;
    }

    private void AddResolved<TPayload>(string eventType, string description, Type handlerType) =>
        Add(eventType, description, handlerType, sp => (IEventHandler<TPayload>)sp.GetRequiredService(handlerType));

    private EventProcessorBuilder Add<TPayload>(
        string eventType,
        string description,
        Type handlerType,
        Func<IServiceProvider, IEventHandler<TPayload>> resolve)
    {
        Services.AddSingleton(new HandlerRegistration(
            eventType,
            description,
            handlerType,
            typeof(TPayload),
            (services, attempt, payload, cancellationToken) =>
                resolve(services).HandleAsync(new EventContext<TPayload>(attempt, (TPayload)payload!), cancellationToken)));
        return this;
    }
}
