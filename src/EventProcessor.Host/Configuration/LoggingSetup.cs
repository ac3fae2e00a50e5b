using Serilog;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace EventProcessor.Host.Configuration;

/// <summary>
/// Serilog for the service: compact JSON outside Development (JSON escapes every control character), readable text in
/// it, escaped by <see cref="EscapingTextFormatter"/>; <c>LOG_LEVEL</c> honoured.
/// </summary>
internal static class LoggingSetup
{
    public static WebApplicationBuilder AddServiceLogging(this WebApplicationBuilder builder, ServiceSettings settings)
    {
        var development = builder.Environment.IsDevelopment();
        builder.Services.AddSerilog(logger =>
        {
            logger
                .MinimumLevel.Is(settings.LogLevel)
                .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
                // A request past REQUEST_TIMEOUT_MS is the client's doing and is answered 408; at Warning, with its
                // stack trace, every slow client would write one.
                .MinimumLevel.Override("Microsoft.AspNetCore.Http.Timeouts", LogEventLevel.Error)
                .MinimumLevel.Override("Microsoft.Hosting.Lifetime", LogEventLevel.Information)
                .MinimumLevel.Override("Npgsql", LogEventLevel.Warning)
                .Enrich.FromLogContext()
                .Enrich.WithProperty("Service", "event-processor");
            if (development)
            {
                // One line per event, control characters escaped; the exception follows, indented (EscapingTextFormatter).
                logger.WriteTo.Console(new EscapingTextFormatter(
                    "[{Timestamp:HH:mm:ss} {Level:u3}] {SourceContext}: {Message:lj} {Properties:j}",
                    System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                logger.WriteTo.Console(new CompactJsonFormatter());
            }
        });
        return builder;
    }
}
