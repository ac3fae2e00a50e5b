using EventProcessor.Tests.Support;

[assembly: Parallelizable(ParallelScope.Fixtures)]
[assembly: LevelOfParallelism(3)]

/// <summary>
/// The run-wide set-up. It is declared outside any namespace on purpose: NUnit applies a set-up fixture to the
/// tests of its own namespace only.
/// </summary>
[SetUpFixture]
#pragma warning disable CA1050 // Declare types in namespaces (see above).
public sealed class AssemblySetUp
#pragma warning restore CA1050
{
    // The SQS server starts on first use (SqsServer.StartAsync), so runs without SQS tests need no Node.js.
    [OneTimeSetUp]
    public Task StartAsync() => PostgresServer.StartAsync();

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        try
        {
            await PostgresServer.StopAsync();
        }
        finally
        {
            await SqsServer.StopAsync();
        }
    }
}
