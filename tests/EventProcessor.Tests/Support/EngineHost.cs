using EventProcessor.Handling;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EventProcessor.Tests.Support;

/// <summary>The engine hosted in-process against a test database, with handlers the test registers.</summary>
public sealed class EngineHost : IAsyncDisposable
{
    private readonly IHost _host;

    private EngineHost(IHost host) => _host = host;

    public IServiceProvider Services => _host.Services;

    public EventEngine Engine => _host.Services.GetRequiredService<EventEngine>();

    /// <summary>Builds and starts a host. Defaults suit tests: fast polls, no backoff, short leases.</summary>
    public static async Task<EngineHost> StartAsync(
        TestDatabase database,
        Action<EventProcessorBuilder> handlers,
        Action<EventProcessorOptions>? configure = null,
        Action<IServiceCollection>? services = null,
        bool start = true)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        var processor = builder.Services.AddEventProcessor(options =>
        {
            options.ConnectionString = database.ConnectionString;
            options.PollInterval = TimeSpan.FromMilliseconds(50);
            options.RetryBaseDelay = TimeSpan.Zero;
            options.RetryMaxDelay = TimeSpan.Zero;
            options.HandlerTimeout = TimeSpan.FromSeconds(10);
            options.LeaseDuration = TimeSpan.FromSeconds(5);
            configure?.Invoke(options);
        });
        handlers(processor);
        services?.Invoke(builder.Services);
        var host = builder.Build();
        if (start)
        {
            await host.StartAsync();
        }

        return new EngineHost(host);
    }

    public Task StopAsync() => _host.StopAsync();

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _host.StopAsync();
        }
        finally
        {
            _host.Dispose();
        }
    }
}
