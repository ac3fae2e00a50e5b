using System.Globalization;

namespace EventProcessor.FaultHost;

/// <summary>The fault host's own settings, from the environment (or configuration) next to the service's.</summary>
/// <param name="LogDirectory">
/// <c>FAULT_LOG_DIR</c>: where each process appends its external calls, one file per process (<c>&lt;pid&gt;.log</c>),
/// so that processes never interleave. Unset: no external calls are logged.
/// </param>
/// <param name="DelayMs"><c>FAULT_HANDLER_DELAY_MS</c>: how long <c>fault.*</c> handlers sleep when the payload does not say. Default 0.</param>
public sealed record FaultSettings(string? LogDirectory, int DelayMs)
{
    public static FaultSettings From(IConfiguration configuration)
    {
        var delay = configuration["FAULT_HANDLER_DELAY_MS"];
        return new FaultSettings(
            string.IsNullOrWhiteSpace(configuration["FAULT_LOG_DIR"]) ? null : configuration["FAULT_LOG_DIR"],
            string.IsNullOrWhiteSpace(delay) ? 0 : int.Parse(delay, CultureInfo.InvariantCulture));
    }
}
