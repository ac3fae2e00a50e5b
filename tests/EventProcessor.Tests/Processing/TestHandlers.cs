using System.Text.Json;
using Dapper;
using EventProcessor.Handling;
using EventProcessor.Tests.Support;

namespace EventProcessor.Tests.Processing;

public sealed record Note(string Text);

/// <summary>Records every call; fails while the payload's text says so (see <see cref="Failures"/>).</summary>
[HandlesEvent("test.recorded", Description = "Records calls")]
public sealed class RecordingHandler(Recorder recorder, Failures failures) : IEventHandler<Note>
{
    public async Task HandleAsync(EventContext<Note> context, CancellationToken cancellationToken)
    {
        using (recorder.Running())
        {
            recorder.Record(context.Event.Id, context.Event.Attempt);
            await Task.Yield();
            if (failures.ShouldFail(context.Event.Id, context.Event.Attempt))
            {
                throw new InvalidOperationException($"planned failure of attempt {context.Event.Attempt}");
            }
        }
    }
}

/// <summary>Which events fail, and on how many attempts.</summary>
public sealed class Failures
{
    private readonly Dictionary<Guid, int> _failFirst = [];

    public void FailFirst(Guid id, int attempts)
    {
        lock (_failFirst)
        {
            _failFirst[id] = attempts;
        }
    }

    public bool ShouldFail(Guid id, int attempt)
    {
        lock (_failFirst)
        {
            return _failFirst.TryGetValue(id, out var n) && attempt <= n;
        }
    }
}

/// <summary>Writes a row in the batch's transaction, then fails when the note says "fail".</summary>
[HandlesEvent("test.projected")]
public sealed class ProjectingHandler : IEventHandler<Note>
{
    public async Task HandleAsync(EventContext<Note> context, CancellationToken cancellationToken)
    {
        var db = await context.GetTransactionAsync(cancellationToken);
        await db.Connection.ExecuteAsync(
            "INSERT INTO projection (event_id, text) VALUES (@id, @text)",
            new { id = context.Event.Id, text = context.Payload.Text },
            db.Transaction);
        if (context.Payload.Text == "fail")
        {
            throw new InvalidOperationException("failed after writing");
        }
    }
}

/// <summary>Appends a follow-up event.</summary>
[HandlesEvent("test.cause")]
public sealed class FollowUpHandler : IEventHandler<JsonElement>
{
    public Task HandleAsync(EventContext<JsonElement> context, CancellationToken cancellationToken)
    {
        context.Append("test.effect", new Note("effect"), aggregateId: context.Event.AggregateId);
        return Task.CompletedTask;
    }
}

/// <summary>Never finishes on its own; honours cancellation.</summary>
[HandlesEvent("test.hang")]
public sealed class HangingHandler : IEventHandler<JsonElement>
{
    public Task HandleAsync(EventContext<JsonElement> context, CancellationToken cancellationToken) =>
        Task.Delay(Timeout.Infinite, cancellationToken);
}

/// <summary>Never finishes, and ignores its token: the worst a handler can do short of killing the process.</summary>
[HandlesEvent("test.runaway")]
public sealed class RunawayHandler : IEventHandler<JsonElement>
{
    public Task HandleAsync(EventContext<JsonElement> context, CancellationToken cancellationToken) =>
        Task.Delay(TimeSpan.FromSeconds(30), CancellationToken.None);
}
