using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Amazon.Runtime;
using Amazon.SQS;
using Amazon.SQS.Model;

namespace EventProcessor.Tests.Support;

/// <summary>
/// The SQS-compatible server the tests run against, found once per run on first use: <c>EVENTPROC_TEST_SQS</c> (its
/// endpoint URL), else fauxqs started here as <c>node deploy/local/sqs/server.mjs</c> on 127.0.0.1, else a failure that
/// says how to get one. <see cref="AssemblySetUp"/> stops a server started here.
/// </summary>
/// <remarks>
/// fauxqs keeps everything in memory and shares it across the run, so tests isolate themselves by queue, each from
/// <see cref="CreateQueueAsync"/> with a name of its own.
/// </remarks>
public static class SqsServer
{
    /// <summary>The region every client signs for; fauxqs puts it in queue ARNs and URLs.</summary>
    public const string Region = "us-east-1";

    private const string ReadyPrefix = "fauxqs listening on ";

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static readonly Lock OutputGate = new();
    private static readonly StringBuilder Output = new();
    private static Process? _process;
    private static AmazonSQSClient? _client;
    private static Uri? _serviceUrl;
    private static string? _unavailable;
    private static bool _missing;
    private static int _queueCounter;

    /// <summary>The endpoint of the server; valid once <see cref="StartAsync"/> has returned.</summary>
    public static Uri ServiceUrl => _serviceUrl ?? throw new InvalidOperationException("Call SqsServer.StartAsync first.");

    /// <summary>A client shared by the run (AmazonSQSClient is thread-safe); do not dispose it.</summary>
    public static AmazonSQSClient Client => _client ?? throw new InvalidOperationException("Call SqsServer.StartAsync first.");

    /// <summary>Starts the server on first use (later calls return at once); ignores the test, or fails it under CI=true, when there is none.</summary>
    public static async Task StartAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (_serviceUrl is null && _unavailable is null)
            {
                var configured = Environment.GetEnvironmentVariable("EVENTPROC_TEST_SQS");
                _serviceUrl = string.IsNullOrWhiteSpace(configured) ? await StartLocalAsync() : new Uri(configured);
                if (_serviceUrl is not null)
                {
                    _client = CreateClient();
                }
            }
        }
        finally
        {
            Gate.Release();
        }

        // Outside the gate, and on every call: each fixture that needs the server is told in its own context. A server
        // that is there but broken fails everywhere; a missing one only under CI.
        if (_unavailable is not null)
        {
            if (!_missing || string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            {
                Assert.Fail(_unavailable);
            }

            Assert.Ignore(_unavailable);
        }
    }

    /// <summary>Starts the server on first use and returns the shared client.</summary>
    public static async Task<AmazonSQSClient> GetClientAsync()
    {
        await StartAsync();
        return Client;
    }

    /// <summary>Stops the server this run started, if it started one.</summary>
    public static async Task StopAsync()
    {
        _client?.Dispose();
        _client = null;
        if (_process is null)
        {
            return;
        }

        try
        {
            if (!_process.HasExited)
            {
                // SIGTERM lets fauxqs close its listener; SIGKILL only when it does not exit in time.
                using (var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)])
                {
                    UseShellExecute = false,
                }))
                {
                    kill?.WaitForExit();
                }

                using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                try
                {
                    await _process.WaitForExitAsync(cancel.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                    await _process.WaitForExitAsync();
                }
            }
        }
        finally
        {
            _process.Dispose();
            _process = null;
        }
    }

    /// <summary>A new client against the server, for code under test that owns (and disposes) its client.</summary>
    public static AmazonSQSClient CreateClient() =>
        new(new BasicAWSCredentials("test", "test"), new AmazonSQSConfig
        {
            ServiceURL = ServiceUrl.ToString(),
            AuthenticationRegion = Region,
        });

    /// <summary>
    /// Creates a queue with a name no other call uses (<paramref name="namePrefix"/>, then a unique suffix, then
    /// <c>.fifo</c> for a FIFO queue) and returns its URL. With <paramref name="deadLetterQueueArn"/>, a message
    /// received more than <paramref name="maxReceiveCount"/> times moves there.
    /// </summary>
    public static async Task<string> CreateQueueAsync(
        string namePrefix,
        bool fifo = false,
        string? deadLetterQueueArn = null,
        int maxReceiveCount = 3,
        int? visibilityTimeoutSeconds = null)
    {
        await StartAsync();
        var suffix = $"-{Environment.ProcessId}-{Interlocked.Increment(ref _queueCounter)}-{Guid.NewGuid().ToString("N")[..8]}";
        // SQS allows 80 characters, ".fifo" included.
        var room = 80 - suffix.Length - (fifo ? ".fifo".Length : 0);
        var name = (namePrefix.Length > room ? namePrefix[..room] : namePrefix) + suffix + (fifo ? ".fifo" : "");

        var attributes = new Dictionary<string, string>();
        if (fifo)
        {
            attributes[QueueAttributeName.FifoQueue] = "true";
        }

        if (deadLetterQueueArn is not null)
        {
            attributes[QueueAttributeName.RedrivePolicy] = JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["deadLetterTargetArn"] = deadLetterQueueArn,
                ["maxReceiveCount"] = maxReceiveCount,
            });
        }

        if (visibilityTimeoutSeconds is { } seconds)
        {
            attributes[QueueAttributeName.VisibilityTimeout] = seconds.ToString(CultureInfo.InvariantCulture);
        }

        var response = await Client.CreateQueueAsync(new CreateQueueRequest { QueueName = name, Attributes = attributes });
        return response.QueueUrl;
    }

    public static async Task<string> GetQueueArnAsync(string queueUrl)
    {
        var response = await Client.GetQueueAttributesAsync(new GetQueueAttributesRequest
        {
            QueueUrl = queueUrl,
            AttributeNames = [QueueAttributeName.QueueArn],
        });
        return response.Attributes[QueueAttributeName.QueueArn];
    }

    /// <summary>
    /// Receives until a receive comes back empty, with every system and message attribute, deleting each batch unless
    /// <paramref name="delete"/> is false (a FIFO group yields its next message only once the one before is deleted).
    /// </summary>
    public static async Task<IReadOnlyList<Message>> ReceiveAllAsync(string queueUrl, bool delete = true)
    {
        var all = new List<Message>();
        while (true)
        {
            var response = await Client.ReceiveMessageAsync(new ReceiveMessageRequest
            {
                QueueUrl = queueUrl,
                MaxNumberOfMessages = 10,
                WaitTimeSeconds = 0,
                MessageSystemAttributeNames = ["All"],
                MessageAttributeNames = ["All"],
            });
            // AWSSDK 4 leaves absent lists null.
            if (response.Messages is not { Count: > 0 } messages)
            {
                return all;
            }

            all.AddRange(messages);
            if (delete)
            {
                var deleted = await Client.DeleteMessageBatchAsync(new DeleteMessageBatchRequest
                {
                    QueueUrl = queueUrl,
                    Entries = [.. messages.Select((m, i) => new DeleteMessageBatchRequestEntry(i.ToString(CultureInfo.InvariantCulture), m.ReceiptHandle))],
                });
                if (deleted.Failed is { Count: > 0 } failed)
                {
                    Assert.Fail($"DeleteMessageBatch failed for {failed.Count} of {messages.Count}: {failed[0].Code} {failed[0].Message}");
                }
            }
        }
    }

    /// <summary>The queue's approximate counts, as GetQueueAttributes reports them.</summary>
    public static async Task<QueueCounts> CountMessagesAsync(string queueUrl)
    {
        var response = await Client.GetQueueAttributesAsync(new GetQueueAttributesRequest
        {
            QueueUrl = queueUrl,
            AttributeNames =
            [
                QueueAttributeName.ApproximateNumberOfMessages,
                QueueAttributeName.ApproximateNumberOfMessagesNotVisible,
                QueueAttributeName.ApproximateNumberOfMessagesDelayed,
            ],
        });
        int Read(string name) =>
            response.Attributes.TryGetValue(name, out var value) ? int.Parse(value, CultureInfo.InvariantCulture) : 0;
        return new QueueCounts(
            Read(QueueAttributeName.ApproximateNumberOfMessages),
            Read(QueueAttributeName.ApproximateNumberOfMessagesNotVisible),
            Read(QueueAttributeName.ApproximateNumberOfMessagesDelayed));
    }

    /// <summary>Starts fauxqs from deploy/local/sqs; null (with <see cref="_unavailable"/> set) when it cannot.</summary>
    private static async Task<Uri?> StartLocalAsync()
    {
        var root = RepositoryRoot();
        var app = root is null ? null : Path.Combine(root, "deploy", "local", "sqs");
        if (app is null || !Directory.Exists(Path.Combine(app, "node_modules")))
        {
            _missing = true;
            _unavailable =
                "No SQS server for the tests: set EVENTPROC_TEST_SQS to the URL of an SQS-compatible endpoint, run " +
                "deploy/local/test.sh (which starts one), or install the local one with 'npm ci' in deploy/local/sqs " +
                $"(Node.js 20 or newer){(root is null ? $"; no EventProcessor.sln above {AppContext.BaseDirectory}" : "")}.";
            return null;
        }

        var start = new ProcessStartInfo("node")
        {
            WorkingDirectory = app,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        start.ArgumentList.Add(Path.Combine(app, "server.mjs"));
        start.ArgumentList.Add("0");
        start.Environment["EVENTPROC_SQS_PARENT_PID"] = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);

        var ready = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) =>
        {
            Append(e.Data);
            if (e.Data?.StartsWith(ReadyPrefix, StringComparison.Ordinal) == true)
            {
                ready.TrySetResult(new Uri(e.Data[ReadyPrefix.Length..].Trim()));
            }
        };
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException("exited"));
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception exception)
        {
            process.Dispose();
            _missing = true;
            _unavailable = $"No SQS server for the tests: cannot run node ({exception.Message}). Install Node.js 20 or newer, or set EVENTPROC_TEST_SQS.";
            return null;
        }

        _process = process;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            return await ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch (Exception exception) when (exception is InvalidOperationException or TimeoutException)
        {
            var what = exception is TimeoutException ? "did not print its URL within 60 s" : "exited before it was ready";
            await StopAsync();
            _unavailable = $"The SQS server (node {Path.Combine(app, "server.mjs")}) {what}. Its output:\n{OutputText()}";
            return null;
        }
    }

    private static string? RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "EventProcessor.sln")))
            {
                return directory.FullName;
            }
        }

        return null;
    }

    private static void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (OutputGate)
        {
            Output.Append(line).Append('\n');
        }
    }

    private static string OutputText()
    {
        lock (OutputGate)
        {
            return Output.ToString();
        }
    }
}

/// <summary>GetQueueAttributes' approximate counts: ready to receive, received and not yet deleted, delayed.</summary>
public readonly record struct QueueCounts(int Visible, int NotVisible, int Delayed);
