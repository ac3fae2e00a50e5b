namespace EventProcessor.Tests.Handlers.Aws;

/// <summary>
/// Payloads in the shapes the ingress stores them. The first two are AWS's published samples (the ones in
/// aws/aws-lambda-dotnet's event test data), the third is the product seed's minimal ECS event.
/// </summary>
public static class AwsSamples
{
    /// <summary>EventBridge "ECS Task State Change" of a RUNNING task, version 4, one container.</summary>
    public const string EcsTaskStateChange =
        """
        {
          "version": "0",
          "id": "9bcdac79-b31f-4d3d-9410-fbd727c29fab",
          "detail-type": "ECS Task State Change",
          "source": "aws.ecs",
          "account": "111122223333",
          "time": "2016-12-06T16:41:06Z",
          "region": "us-east-1",
          "resources": [
            "arn:aws:ecs:us-east-1:111122223333:task/b99d40b3-5176-4f71-9a52-9dbd6f1cebef"
          ],
          "detail": {
            "attachments": [
              {
                "id": "a7f304c8-ab44-4c9a-939e-e60e19600d48",
                "type": "eni",
                "status": "DELETED",
                "details": [
                  { "name": "subnetId", "value": "subnet-0a4e7c6ae27b807d5" },
                  { "name": "networkInterfaceId", "value": "eni-0097b893e94948589" },
                  { "name": "macAddress", "value": "12:03:1c:c1:01:3f" },
                  { "name": "privateIPv4Address", "value": "10.1.21.156" }
                ]
              }
            ],
            "clusterArn": "arn:aws:ecs:us-east-1:111122223333:cluster/default",
            "containerInstanceArn": "arn:aws:ecs:us-east-1:111122223333:container-instance/b54a2a04-046f-4331-9d74-3f6d7f6ca315",
            "containers": [
              {
                "containerArn": "arn:aws:ecs:us-east-1:111122223333:container/3305bea1-bd16-4217-803d-3e0482170a17",
                "exitCode": 0,
                "lastStatus": "STOPPED",
                "name": "xray",
                "taskArn": "arn:aws:ecs:us-east-1:111122223333:task/b99d40b3-5176-4f71-9a52-9dbd6f1cebef"
              }
            ],
            "createdAt": "2016-12-06T16:41:05.702Z",
            "desiredStatus": "RUNNING",
            "group": "task-group",
            "lastStatus": "RUNNING",
            "overrides": { "containerOverrides": [ { "name": "xray" } ] },
            "startedAt": "2016-12-06T16:41:06.8Z",
            "startedBy": "ecs-svc/9223370556150183303",
            "updatedAt": "2016-12-06T16:41:06.975Z",
            "taskArn": "arn:aws:ecs:us-east-1:111122223333:task/b99d40b3-5176-4f71-9a52-9dbd6f1cebef",
            "taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/xray:2",
            "version": 4
          }
        }
        """;

    /// <summary>The seed's STOPPED task: no version, no updatedAt, no clusterArn.</summary>
    public const string SeedEcsTaskStopped =
        """
        {"version":"0","id":"12345678-1234-1234-1234-123456789012","detail-type":"ECS Task State Change","source":"aws.ecs","account":"123456789012","time":"2024-11-07T17:27:00Z","region":"us-east-1","resources":[],"detail":{"taskArn":"arn:aws:ecs:us-east-1:123456789012:task/cluster/test-exec-123","lastStatus":"STOPPED","containers":[{"name":"runner","exitCode":0}],"startedAt":"2024-11-07T17:26:00Z","stoppedAt":"2024-11-07T17:27:00Z","stopCode":"EssentialContainerExited"}}
        """;

    /// <summary>API Gateway WebSocket <c>$connect</c> request.</summary>
    public const string WebSocketConnect =
        """
        {
          "headers": {
            "HeaderAuth1": "headerValue1",
            "Host": "lg10ltpf4f.execute-api.us-east-2.amazonaws.com",
            "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
            "Sec-WebSocket-Key": "BvlrrFKoKAPDYOlwBcGKWw==",
            "Sec-WebSocket-Version": "13",
            "X-Amzn-Trace-Id": "Root=1-625d9ad1-37a5d33a61dd9be33ae3a247",
            "X-Forwarded-For": "52.95.4.0",
            "X-Forwarded-Port": "443",
            "X-Forwarded-Proto": "https"
          },
          "multiValueHeaders": {
            "HeaderAuth1": [ "headerValue1" ],
            "Host": [ "lg10ltpf4f.execute-api.us-east-2.amazonaws.com" ],
            "Sec-WebSocket-Extensions": [ "permessage-deflate; client_max_window_bits" ],
            "Sec-WebSocket-Key": [ "BvlrrFKoKAPDYOlwBcGKWw==" ],
            "Sec-WebSocket-Version": [ "13" ],
            "X-Amzn-Trace-Id": [ "Root=1-625d9ad1-37a5d33a61dd9be33ae3a247" ],
            "X-Forwarded-For": [ "52.95.4.0" ],
            "X-Forwarded-Port": [ "443" ],
            "X-Forwarded-Proto": [ "https" ]
          },
          "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "extendedRequestId": "QyUg1HJgCYcFvbw=",
            "requestTime": "18/Apr/2022:17:07:29 +0000",
            "messageDirection": "IN",
            "stage": "production",
            "connectedAt": 1650301649973,
            "requestTimeEpoch": 1650301649973,
            "identity": {
              "sourceIp": "52.95.4.0"
            },
            "requestId": "QyUg1HJgCYcFvbw=",
            "domainName": "lg10ltpf4f.execute-api.us-east-2.amazonaws.com",
            "connectionId": "QyUg1czHCYcCHXw=",
            "apiId": "lg10ltpf4f"
          },
          "isBase64Encoded": false
        }
        """;
}
