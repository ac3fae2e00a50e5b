using System.Text.Json.Nodes;

namespace EventProcessor.Tests.Ingress;

/// <summary>
/// AWS's own sample deliveries, kept outside the repository in <c>../shared/fixtures/aws</c>: the folder
/// <c>shared</c> sits beside the clone (the folder holding <c>EventProcessor.sln</c>), locally and in CI.
/// </summary>
internal static class Fixtures
{
    public const string EcsTaskStateChange = "ecs-task-state-change-event.json";
    public const string CloudWatchLogs = "cloudwatch-logs-event.json";
    public const string WebSocketConnect = "websocket-connect-event.json";
    public const string SqsLambda = "sqs-lambda-event.json";

    private static readonly Lazy<string> AwsDirectory = new(LocateAwsDirectory);

    /// <summary>Every fixture, for tests that hold for any delivery.</summary>
    public static IEnumerable<string> All => [EcsTaskStateChange, CloudWatchLogs, WebSocketConnect, SqsLambda];

    /// <summary>The fixture's bytes, exactly as stored.</summary>
    public static byte[] Aws(string name) => File.ReadAllBytes(Path.Combine(AwsDirectory.Value, name));

    /// <summary>The fixture as a mutable JSON object, for tests that derive a shape from it.</summary>
    public static JsonObject AwsNode(string name) => JsonNode.Parse(Aws(name))!.AsObject();

    private static string LocateAwsDirectory()
    {
        for (var directory = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "EventProcessor.sln")))
            {
                var aws = Path.GetFullPath(Path.Combine(directory.FullName, "..", "shared", "fixtures", "aws"));
                if (!Directory.Exists(aws))
                {
                    Assert.Fail($"The AWS fixtures are missing: expected them in {aws}, beside the repository clone.");
                }

                return aws;
            }
        }

        Assert.Fail($"No EventProcessor.sln above {TestContext.CurrentContext.TestDirectory}; cannot locate ../shared/fixtures/aws.");
        return "";
    }
}
