using EventProcessor.Host;
using EventProcessor.Host.Commands;

switch (args)
{
    case ["migrate", ..]:
        return await MigrateCommand.RunAsync(args[1..]);
    case ["clients", .. var clientArgs]:
        return await ClientsCommand.RunAsync(clientArgs, CommandLine.Configuration(), Console.Out, Console.Error);
    case ["produce", .. var produceArgs]:
        return await ProduceCommand.RunAsync(produceArgs, CommandLine.Configuration(), Console.Out, Console.Error);
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
