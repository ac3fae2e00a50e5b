using System.Text.Json;
using Dapper;
using EventProcessor.Handling;
using EventProcessor.Tests.Processing;
using Microsoft.Extensions.DependencyInjection;

namespace EventProcessor.Tests.Security;

/// <summary>Handlers the security tests add to the real service, and the way to add them.</summary>
internal static class SecurityHandlers
{
    /// <summary>What <see cref="LeakyHandler"/> puts in its exception message; no response may show it.</summary>
    public const string Secret = "s3cr3t-from-a-handler-Pa55w0rd";

    /// <summary>Registers the handlers below (and <paramref name="gate"/>, for <see cref="HoldingHandler"/>).</summary>
    public static Action<IServiceCollection> Register(Gate? gate = null) => services =>
    {
        services.AddSingleton(gate ?? new Gate());
        new EventProcessorBuilder(services)
            .AddHandler<HoldingHandler>()
            .AddHandler<SlowHandler>()
            .AddHandler<LeakyHandler>();
    };
}

/// <summary>Holds its batch's connection (inside the transaction) until the test opens the gate.</summary>
[HandlesEvent("security.holding")]
public sealed class HoldingHandler(Gate gate) : IEventHandler<JsonElement>
{
    public async Task HandleAsync(EventContext<JsonElement> context, CancellationToken cancellationToken)
    {
        var db = await context.GetTransactionAsync(cancellationToken);
        await db.Connection.ExecuteAsync("SELECT 1", transaction: db.Transaction);
        gate.Entered.TrySetResult();
        await gate.Release.Task.WaitAsync(cancellationToken);
    }
}

/// <summary>Holds its batch's connection for a tenth of a second, like a handler that does real work.</summary>
[HandlesEvent("security.slow")]
public sealed class SlowHandler : IEventHandler<JsonElement>
{
    public async Task HandleAsync(EventContext<JsonElement> context, CancellationToken cancellationToken)
    {
        var db = await context.GetTransactionAsync(cancellationToken);
        await db.Connection.ExecuteAsync(new CommandDefinition("SELECT pg_sleep(0.1)", transaction: db.Transaction, cancellationToken: cancellationToken));
    }
}

/// <summary>Fails with a message that carries a secret and a connection string, as a careless handler might.</summary>
[HandlesEvent("security.leaky")]
public sealed class LeakyHandler : IEventHandler<JsonElement>
{
    public Task HandleAsync(EventContext<JsonElement> context, CancellationToken cancellationToken) =>
        throw new InvalidOperationException($"Could not reach Host=billing.internal;Port=5432;Password={SecurityHandlers.Secret}");
}
