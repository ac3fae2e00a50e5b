using EventProcessor.Host;
using EventProcessor.Host.Commands;

if (args is ["migrate", ..])
{
    return await MigrateCommand.RunAsync(args[1..]);
}

WebApplication app;
try
{
    app = ServiceApp.Create(args);
}
catch (StartupException exception)
{
    await Console.Error.WriteLineAsync($"event-processor: {exception.Message}");
    return 2;
}

return await ServiceApp.RunAsync(app);

/// <summary>The service's entry point; public so that tests can find the assembly.</summary>
public partial class Program;
