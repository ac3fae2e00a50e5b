using System.Text.Json.Nodes;
using EventProcessor.Tests.Support;

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

    /// <summary>Every fixture, for tests that hold for any delivery.</summary>
    public static IEnumerable<string> All => [EcsTaskStateChange, CloudWatchLogs, WebSocketConnect, SqsLambda];

    /// <summary>The fixture's bytes, exactly as stored.</summary>
    public static byte[] Aws(string name) => File.ReadAllBytes(Path.Combine(AwsFixtures.Directory, name));

    /// <summary>The fixture as a mutable JSON object, for tests that derive a shape from it.</summary>
    public static JsonObject AwsNode(string name) => JsonNode.Parse(Aws(name))!.AsObject();
}
