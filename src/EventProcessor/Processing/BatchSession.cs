using EventProcessor.Handling;
using EventProcessor.Storage;
using Npgsql;

namespace EventProcessor.Processing;

/// <summary>
/// The connection and transaction one batch shares, opened only when a handler first asks for it. Each event that
/// writes gets a savepoint, so one event's failure undoes its own writes and no one else's.
/// </summary>
/// <remarks>
/// Owns the connection. A session is lost when its connection broke or could not be opened, or when a handler that
/// used it timed out and is still running: nothing more may be sent on it, and what it carried is rolled back by the
/// server.
/// </remarks>
internal sealed class BatchSession(NpgsqlDataSource dataSource) : IAsyncDisposable
{
    private const string TakeSavepoint = "SAVEPOINT event_attempt";
    private const string ReleaseAndTakeSavepoint = "RELEASE SAVEPOINT event_attempt; SAVEPOINT event_attempt";
    private const string RollbackSavepoint = "ROLLBACK TO SAVEPOINT event_attempt; RELEASE SAVEPOINT event_attempt";

    private NpgsqlConnection? _connection;
    private NpgsqlTransaction? _transaction;
    private EventAttempt? _savepointOwner;
    private EventTransaction? _current;
    private bool _releasePending;
    private bool _inUseByRunawayHandler;
    private bool _openFailed;

    public bool IsLost { get; private set; }

    /// <summary>
    /// True when the database went away under the batch: the connection broke, or could not be opened when a handler
    /// first asked for it. An attempt cut off by that is not the handler's fault.
    /// </summary>
    public bool LostDatabase => _openFailed || !IsConnectionUsable();

    /// <summary>The open transaction, when a handler wrote and the session is still usable.</summary>
    public EventTransaction? OpenTransaction => IsLost || _transaction is null ? null : new(_connection!, _transaction);

    public async ValueTask<EventTransaction> EnterAsync(EventAttempt attempt, CancellationToken cancellationToken)
    {
        if (IsLost)
        {
            throw new InvalidOperationException("The batch's database session was lost; this attempt will be released.");
        }

        if (ReferenceEquals(_savepointOwner, attempt))
        {
            return _current!;
        }

        if (_connection is null)
        {
            try
            {
                _connection = await dataSource.OpenConnectionAsync(cancellationToken);
                _transaction = await _connection.BeginTransactionAsync(cancellationToken);
            }
            catch (Exception exception) when (DatabaseResilience.IsTransient(exception))
            {
                // The database went away between the claim and the first handler that writes: the rest of the batch
                // is released unrun rather than failed one by one against a database that is not there.
                _openFailed = true;
                IsLost = true;
                throw;
            }

            _current = new EventTransaction(_connection, _transaction);
        }

        // The release of the previous event's savepoint rides along with the next one: one round trip, not two.
        await using var command = _releasePending
            ? new NpgsqlCommand(ReleaseAndTakeSavepoint, _connection, _transaction)
            : new NpgsqlCommand(TakeSavepoint, _connection, _transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
        _releasePending = false;
        _savepointOwner = attempt;
        return _current!;
    }

    /// <summary>Keeps or undoes the writes of <paramref name="attempt"/>, once its handlers are done.</summary>
    public async Task EndAttemptAsync(EventAttempt attempt, bool keepWrites, bool handlerStillRunning)
    {
        if (!ReferenceEquals(_savepointOwner, attempt))
        {
            return;
        }

        _savepointOwner = null;
        if (handlerStillRunning || !IsConnectionUsable())
        {
            IsLost = true;
            _inUseByRunawayHandler = handlerStillRunning;
            return;
        }

        if (keepWrites)
        {
            _releasePending = true;
            return;
        }

        try
        {
            await using var command = new NpgsqlCommand(RollbackSavepoint, _connection, _transaction);
            await command.ExecuteNonQueryAsync(CancellationToken.None);
        }
        catch (Exception exception) when (exception is NpgsqlException or InvalidOperationException)
        {
            IsLost = true;
        }
    }

    /// <summary>Marks the session lost; the server rolls back whatever it carried when the connection goes.</summary>
    public void Abandon() => IsLost = true;

    private bool IsConnectionUsable() =>
        _connection is null || (_connection.FullState & System.Data.ConnectionState.Broken) == 0
            && _connection.State == System.Data.ConnectionState.Open;

    public async ValueTask DisposeAsync()
    {
        if (_connection is null)
        {
            return;
        }

        if (_inUseByRunawayHandler)
        {
            // A handler may still be using the connection: leave it to that handler and the server rather than
            // closing it under its feet. The server rolls the transaction back when the connection dies or times out.
            return;
        }

        try
        {
            if (_transaction is not null)
            {
                await _transaction.DisposeAsync();
            }
        }
        catch (Exception exception) when (exception is NpgsqlException or InvalidOperationException)
        {
            // Rolling back a broken transaction fails; the server has already dropped it.
        }

        await _connection.DisposeAsync();
    }
}
