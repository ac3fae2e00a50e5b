using System.Diagnostics;
using System.Text.Json.Serialization;
using Dapper;
using EventProcessor.Handling;

namespace EventProcessor.FaultHost;

/// <summary>The event types <see cref="FaultHandler"/> takes.</summary>
public static class FaultTypes
{
    public const string Record = "fault.record";
    public const string Fail = "fault.fail";
    public const string Crash = "fault.crash";
    public const string Hang = "fault.hang";
    public const string FailFast = "fault.failfast";
    public const string Allocate = "fault.allocate";
}

/// <summary>
/// The payload every <c>fault.*</c> event takes; every member is optional (<c>{}</c> is fine), other members are
/// ignored.
/// </summary>
/// <param name="DelayMs"><c>delay_ms</c>: how long the handler sleeps after its write; default <c>FAULT_HANDLER_DELAY_MS</c>.</param>
/// <param name="Times"><c>times</c>: fail, crash or hang on attempts 1 to <c>times</c> only, then behave like <c>fault.record</c>; default: every attempt.</param>
/// <param name="DelayBeforeMs">
/// <c>delay_before_ms</c>: how long the handler sleeps before it asks for the transaction, like a handler that calls
/// a slow service first; honours cancellation. Default 0.
/// </param>
public sealed record FaultPayload(
    [property: JsonPropertyName("delay_ms")] int? DelayMs = null,
    [property: JsonPropertyName("times")] int? Times = null,
    [property: JsonPropertyName("delay_before_ms")] int? DelayBeforeMs = null);

/// <summary>
/// Test handlers. Every one of them, unless it crashes first, writes a <c>fault_effects</c> row in the batch
/// transaction (after <c>delay_before_ms</c>), sleeps, then makes its external call (a <see cref="FaultLog"/> line):
/// <list type="bullet">
/// <item><c>fault.record</c>: just that; the sleep honours cancellation.</item>
/// <item><c>fault.fail</c>: then throws, so its row is rolled back and the attempt fails.</item>
/// <item><c>fault.crash</c>: makes its external call, then kills its own process (SIGKILL) before writing anything.</item>
/// <item><c>fault.hang</c>: sleeps ignoring cancellation, like a handler stuck in a call without a timeout.</item>
/// <item><c>fault.failfast</c>: makes its external call, then ends the process with <see cref="Environment.FailFast(string)"/>.</item>
/// <item><c>fault.allocate</c>: keeps allocating 16 MB arrays until the runtime throws (run it under a heap limit).</item>
/// </list>
/// </summary>
[HandlesEvent(FaultTypes.Record, Description = "Writes a fault_effects row, sleeps, logs an external call")]
[HandlesEvent(FaultTypes.Fail, Description = "As fault.record, then throws")]
[HandlesEvent(FaultTypes.Crash, Description = "Logs an external call, then kills its own process")]
[HandlesEvent(FaultTypes.Hang, Description = "As fault.record, sleeping without honouring cancellation")]
[HandlesEvent(FaultTypes.FailFast, Description = "Logs an external call, then ends the process with Environment.FailFast")]
[HandlesEvent(FaultTypes.Allocate, Description = "Allocates without bound until the runtime refuses")]
internal sealed class FaultHandler(FaultLog log, FaultSettings settings) : IEventHandler<FaultPayload>
{
    public async Task HandleAsync(EventContext<FaultPayload> context, CancellationToken cancellationToken)
    {
        var stored = context.Event;
        var kind = stored.EventType["fault.".Length..];
        var strikes = context.Payload.Times is not { } times || stored.Attempt <= times;
        var startedAt = DateTimeOffset.UtcNow;
        if (stored.EventType == FaultTypes.Crash && strikes)
        {
            log.Append(new FaultCall(kind, stored.Id, stored.AggregateId, stored.Attempt, Environment.ProcessId, startedAt, startedAt));
            using var self = Process.GetCurrentProcess();
            self.Kill();
        }

        if (stored.EventType == FaultTypes.FailFast && strikes)
        {
            log.Append(new FaultCall(kind, stored.Id, stored.AggregateId, stored.Attempt, Environment.ProcessId, startedAt, startedAt));
            Environment.FailFast($"fault.failfast: injected crash on attempt {stored.Attempt}.");
        }

        if (stored.EventType == FaultTypes.Allocate && strikes)
        {
            AllocateWithoutBound();
        }

        if (context.Payload.DelayBeforeMs is > 0 and var before)
        {
            await Task.Delay(before, cancellationToken);
        }

        var db = await context.GetTransactionAsync(cancellationToken);
        await db.Connection.ExecuteAsync(
            FaultEffects.Record,
            new { eventId = stored.Id, aggregateId = stored.AggregateId, attempt = stored.Attempt, pid = Environment.ProcessId },
            db.Transaction);

        var delay = TimeSpan.FromMilliseconds(context.Payload.DelayMs ?? settings.DelayMs);
        if (stored.EventType == FaultTypes.Hang && strikes)
        {
#pragma warning disable CA2016 // Ignoring the token is this handler's whole point.
            await Task.Delay(delay);
#pragma warning restore CA2016
        }
        else if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, cancellationToken);
        }

        log.Append(new FaultCall(kind, stored.Id, stored.AggregateId, stored.Attempt, Environment.ProcessId, startedAt, DateTimeOffset.UtcNow));
        if (stored.EventType == FaultTypes.Fail && strikes)
        {
            throw new InvalidOperationException($"fault.fail: injected failure on attempt {stored.Attempt}.");
        }
    }

    // Touches every page, so the memory is really committed; the list is the only root, so it is all garbage once
    // the exception leaves this frame.
    private static void AllocateWithoutBound()
    {
        var hoard = new List<byte[]>();
        while (true)
        {
            var chunk = new byte[16 * 1024 * 1024];
            for (var i = 0; i < chunk.Length; i += 4096)
            {
                chunk[i] = 1;
            }

            hoard.Add(chunk);
        }
    }
}

/// <summary>Registers <see cref="FaultHandler"/> and what it needs.</summary>
internal static class FaultHandlerRegistration
{
    public static EventProcessorBuilder AddFaultHandlers(this EventProcessorBuilder processor)
    {
        processor.Services.AddSingleton(sp => FaultSettings.From(sp.GetRequiredService<IConfiguration>()));
        processor.Services.AddSingleton<FaultLog>();
        return processor.AddHandler<FaultHandler>();
    }
}
