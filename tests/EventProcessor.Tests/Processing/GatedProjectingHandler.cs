using Dapper;
using EventProcessor.Handling;

namespace EventProcessor.Tests.Processing;

/// <summary>Lets a test act while a handler holds the batch's transaction.</summary>
public sealed class Gate
{
    public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int BackendPid { get; set; }
}

/// <summary>Writes a projection row, signals the test, waits for it, then writes again.</summary>
[HandlesEvent("test.gated")]
public sealed class GatedProjectingHandler(Gate gate) : IEventHandler<Note>
{
    public async Task HandleAsync(EventContext<Note> context, CancellationToken cancellationToken)
    {
        var db = await context.GetTransactionAsync(cancellationToken);
        await db.Connection.ExecuteAsync(
            "INSERT INTO projection (event_id, text) VALUES (@id, 'before')", new { id = context.Event.Id }, db.Transaction);
        gate.BackendPid = db.Connection.ProcessID;
        gate.Entered.TrySetResult();
        await gate.Release.Task.WaitAsync(cancellationToken);
        await db.Connection.ExecuteAsync(
            "INSERT INTO projection (event_id, text) VALUES (@id, 'after')", new { id = context.Event.Id }, db.Transaction);
    }
}
