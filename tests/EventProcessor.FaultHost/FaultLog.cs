using System.Globalization;
using System.Text;

namespace EventProcessor.FaultHost;

/// <summary>
/// The "external" side effect of the <c>fault.*</c> handlers: a line appended outside the batch transaction, the way
/// an HTTP call or an e-mail would happen. Each line is handed to the OS before the handler returns, so a kill -9
/// after it does not lose it. Lines are <see cref="FaultCall"/>s.
/// </summary>
public sealed class FaultLog : IDisposable
{
    private readonly Lock _gate = new();
    private readonly FileStream? _file;

    public FaultLog(FaultSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.LogDirectory is { } directory)
        {
            Directory.CreateDirectory(directory);
            _file = new FileStream(
                Path.Combine(directory, $"{Environment.ProcessId}.log"), FileMode.Append, FileAccess.Write, FileShare.Read);
        }
    }

    public void Append(FaultCall call)
    {
        ArgumentNullException.ThrowIfNull(call);
        if (_file is null)
        {
            return;
        }

        var line = Encoding.UTF8.GetBytes(call.ToLine() + "\n");
        lock (_gate)
        {
            _file.Write(line);
            _file.Flush();
        }
    }

    /// <summary>Every call logged in <paramref name="directory"/>, by every process.</summary>
    public static List<FaultCall> ReadAll(string directory) =>
        [.. Directory.EnumerateFiles(directory, "*.log")
            .SelectMany(File.ReadLines)
            .Where(line => line.Length > 0)
            .Select(FaultCall.Parse)];

    public void Dispose() => _file?.Dispose();
}

/// <summary>
/// One external call: which handler (<c>Kind</c>: record, fail, crash or hang, the event type without <c>fault.</c>),
/// for which event and attempt, in which process, and when it ran.
/// </summary>
public sealed record FaultCall(string Kind, Guid EventId, Guid? AggregateId, int Attempt, int Pid, DateTimeOffset StartedAt, DateTimeOffset FinishedAt)
{
    /// <summary>One line: kind, event id, aggregate id (or -), attempt, pid, start and end in UTC ticks.</summary>
    public string ToLine() => string.Join(
        ' ',
        Kind,
        EventId,
        AggregateId?.ToString() ?? "-",
        Attempt.ToString(CultureInfo.InvariantCulture),
        Pid.ToString(CultureInfo.InvariantCulture),
        StartedAt.UtcTicks.ToString(CultureInfo.InvariantCulture),
        FinishedAt.UtcTicks.ToString(CultureInfo.InvariantCulture));

    public static FaultCall Parse(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var parts = line.Split(' ');
        return new FaultCall(
            parts[0],
            Guid.Parse(parts[1]),
            parts[2] == "-" ? null : Guid.Parse(parts[2]),
            int.Parse(parts[3], CultureInfo.InvariantCulture),
            int.Parse(parts[4], CultureInfo.InvariantCulture),
            new DateTimeOffset(long.Parse(parts[5], CultureInfo.InvariantCulture), TimeSpan.Zero),
            new DateTimeOffset(long.Parse(parts[6], CultureInfo.InvariantCulture), TimeSpan.Zero));
    }
}
