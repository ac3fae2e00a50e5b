using EventProcessor.Host;
using EventProcessor.Host.Configuration;

namespace EventProcessor.FaultHost;

/// <summary>
/// The service's composition (<see cref="ServiceApp"/>), unchanged, with the <c>fault.*</c> handlers added. Takes the
/// service's settings plus <c>FAULT_LOG_DIR</c> and <c>FAULT_HANDLER_DELAY_MS</c> (see <see cref="FaultSettings"/>).
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        WebApplication app;
        try
        {
            app = ServiceApp.Create(args, handlers: processor => processor.AddFaultHandlers());
        }
        catch (StartupException exception)
        {
            await Console.Error.WriteLineAsync($"event-processor: {exception.Message}");
            return 2;
        }

        await FaultEffects.CreateTableAsync(app.Services.GetRequiredService<ServiceSettings>().ConnectionString);
        return await ServiceApp.RunAsync(app);
    }
}
