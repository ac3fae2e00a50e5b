using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Amazon.SQS;
using Amazon.SQS.Model;
using EventProcessor.Handlers.Schemas;
using EventProcessor.Host.Configuration;
using EventProcessor.Ingress;
using EventProcessor.Ingress.Clients;
using EventProcessor.Ingress.Schemas;
using EventProcessor.Ingress.Sqs;
using EventProcessor.Ingress.Writing;
using Npgsql;

namespace EventProcessor.Host.Commands;

/// <summary>
/// <c>EventProcessor.Host produce</c>: the sample producer. Sends one valid sample per shipped schema, or a steady
/// stream at <c>--rate</c> events a second for <c>--duration</c> seconds, into the table (checked like
/// <c>POST /events</c>) or onto an SQS queue (as envelopes, which the SQS worker reads).
/// </summary>
internal static class ProduceCommand
{
    private const string Usage =
        "usage: produce [--to table|sqs] [--queue-url URL] [--type EVENT_TYPE] [--client CLIENT_ID] [--rate EVENTS_PER_SECOND] [--duration SECONDS]";

    private const int SqsBatchSize = 10;

    public static async Task<int> RunAsync(string[] args, IConfiguration configuration, TextWriter output, TextWriter error)
    {
        try
        {
            var options = CommandLine.Options(args, "to", "queue-url", "type", "client", "rate", "duration");
            var settings = ServiceSettings.Load(configuration);
            var samples = SamplesFor(options.GetValueOrDefault("type"));
            var rate = Number(options, "rate", 0, 1, 100_000);
            var duration = Number(options, "duration", 10, 1, 86_400);
            var total = rate == 0 ? samples.Count : rate * duration;
            var client = options.GetValueOrDefault("client");

            await using var sink = options.GetValueOrDefault("to", "table") switch
            {
                "table" => (ISink)await TableSink.CreateAsync(settings),
                "sqs" => SqsSink.Create(settings, configuration, options.GetValueOrDefault("queue-url")),
                var other => throw new UsageException($"--to '{other}' is invalid: expected table or sqs."),
            };

            var stopwatch = Stopwatch.StartNew();
            var sent = 0;
            var duplicates = 0;
            while (sent < total)
            {
                // At a rate, send what the clock says is due; otherwise everything at once.
                var due = rate == 0 ? total : (int)Math.Min(total, Math.Ceiling(rate * stopwatch.Elapsed.TotalSeconds));
                if (due <= sent)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(10));
                    continue;
                }

                var chunk = Enumerable.Range(sent, Math.Min(due - sent, sink.MaxChunk))
                    .Select(i => samples[i % samples.Count])
                    .ToList();
                duplicates += await sink.SendAsync(chunk, client);
                sent += chunk.Count;
            }

            var seconds = Math.Max(stopwatch.Elapsed.TotalSeconds, 0.001);
            await output.WriteLineAsync(string.Create(
                CultureInfo.InvariantCulture,
                $"Produced {sent} events ({string.Join(", ", samples.Select(s => s.EventType).Distinct())}) to {sink.Name} in {seconds:0.0} s ({sent / seconds:0} events/s); {duplicates} duplicates."));
            return 0;
        }
        catch (Exception exception) when (exception is UsageException or SettingsException)
        {
            await error.WriteLineAsync($"event-processor: {exception.Message}");
            await error.WriteLineAsync(Usage);
            return 2;
        }
        catch (IngressRejectedException exception)
        {
            await error.WriteLineAsync($"event-processor: refused: {exception.Describe()}");
            return 4;
        }
        catch (Exception exception) when (exception is NpgsqlException or TimeoutException or AmazonSQSException)
        {
            await error.WriteLineAsync($"event-processor: cannot produce: {exception.Message}");
            return 3;
        }
    }

    private static List<(string EventType, string PayloadJson)> SamplesFor(string? eventType)
    {
        var samples = ShippedSchemas.Samples
            .Where(s => eventType is null || string.Equals(s.Key, eventType, StringComparison.Ordinal))
            .OrderBy(s => s.Key, StringComparer.Ordinal)
            .Select(s => (s.Key, s.Value))
            .ToList();
        return samples.Count > 0
            ? samples
            : throw new UsageException(
                $"--type '{eventType}' has no shipped sample; known types: {string.Join(", ", ShippedSchemas.Samples.Keys.Order(StringComparer.Ordinal))}.");
    }

    private static int Number(Dictionary<string, string> options, string name, int fallback, int min, int max)
    {
        if (!options.TryGetValue(name, out var raw))
        {
            return fallback;
        }

        return int.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : throw new UsageException($"--{name} '{raw}' is invalid: expected a whole number from {min} to {max}.");
    }

    /// <summary>Where produced events go.</summary>
    private interface ISink : IAsyncDisposable
    {
        string Name { get; }

        int MaxChunk { get; }

        /// <summary>Sends the chunk; returns how many were duplicates.</summary>
        Task<int> SendAsync(IReadOnlyList<(string EventType, string PayloadJson)> chunk, string? client);
    }

    /// <summary>Straight into <c>events</c>, through the same checks as <c>POST /events</c>.</summary>
    private sealed class TableSink(NpgsqlDataSource dataSource, EventIngress ingress) : ISink
    {
        public string Name => "the events table";

        public int MaxChunk => 500;

        public static async Task<TableSink> CreateAsync(ServiceSettings settings)
        {
            await CommandLine.MigrateIfEnabledAsync(settings, CancellationToken.None);
            var dataSource = NpgsqlDataSource.Create(settings.ConnectionString);
            var stats = new IngressStats();
            var catalog = await EventSchemaCatalog.LoadAsync(ShippedSchemas.Schemas);
            var ingress = new EventIngress(new ClientStore(dataSource), [catalog], new IngressWriter(dataSource, stats), stats);
            return new TableSink(dataSource, ingress);
        }

        public async Task<int> SendAsync(IReadOnlyList<(string EventType, string PayloadJson)> chunk, string? client)
        {
            var events = chunk
                .Select(s => new IncomingEvent(Guid.CreateVersion7(), s.EventType, null, null, s.PayloadJson, """{"ingress":"producer"}""", client))
                .ToList();
            var receipt = await ingress.AcceptAsync(events, client is null ? "producer" : $"client:{client}", CancellationToken.None);
            return receipt.Duplicates;
        }

        public ValueTask DisposeAsync() => dataSource.DisposeAsync();
    }

    /// <summary>Onto a queue as envelopes; a FIFO queue gets a message group per client and a dedup id per event.</summary>
    private sealed class SqsSink(IAmazonSQS sqs, string queueUrl) : ISink
    {
        public string Name => queueUrl;

        public int MaxChunk => SqsBatchSize;

        public static SqsSink Create(ServiceSettings settings, IConfiguration configuration, string? queueUrl)
        {
            var options = new IngressOptions();
            settings.Apply(options, configuration);
            queueUrl ??= options.Sqs.Queues.FirstOrDefault()?.Url
                ?? throw new UsageException("--to sqs needs --queue-url, or Sqs__Queues__0__Url in the environment.");
            return new SqsSink(SqsClientFactory.Create(options.Sqs), queueUrl);
        }

        public async Task<int> SendAsync(IReadOnlyList<(string EventType, string PayloadJson)> chunk, string? client)
        {
            var fifo = queueUrl.EndsWith(".fifo", StringComparison.Ordinal);
            var entries = chunk.Select((sample, i) =>
            {
                var id = Guid.CreateVersion7();
                var entry = new SendMessageBatchRequestEntry
                {
                    Id = $"e{i}",
                    MessageBody = JsonSerializer.Serialize(new Dictionary<string, object>
                    {
                        ["id"] = id,
                        ["event_type"] = sample.EventType,
                        ["payload"] = JsonDocument.Parse(sample.PayloadJson).RootElement,
                    }),
                };
                if (client is not null)
                {
                    entry.MessageAttributes = new() { ["client_id"] = new MessageAttributeValue { DataType = "String", StringValue = client } };
                }

                if (fifo)
                {
                    entry.MessageGroupId = client ?? "producer";
                    entry.MessageDeduplicationId = id.ToString("N");
                }

                return entry;
            }).ToList();
            var response = await sqs.SendMessageBatchAsync(queueUrl, entries);
            if (response.Failed is { Count: > 0 } failed)
            {
                throw new UsageException($"SQS refused {failed.Count} messages: {failed[0].Code}: {failed[0].Message}");
            }

            return 0;
        }

        public ValueTask DisposeAsync()
        {
            sqs.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
