using System.Globalization;
using System.Text.RegularExpressions;
using EventProcessor.Host.Configuration;
using EventProcessor.Tests.Service;
using EventProcessor.Tests.Support;
using NUnit.Framework.Interfaces;
using Serilog.Events;
using Serilog.Parsing;

namespace EventProcessor.Tests.Security;

/// <summary>
/// Development's text logs: a value that carries a line break, a carriage return or an escape sequence is written
/// escaped, so it can neither start a line that reads as another event nor rewrite the terminal.
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
[Parallelizable(ParallelScope.All)]
public sealed partial class LogForgingTests
{
    private const string ForgedLine = "[00:00:00 ERR] EventProcessor.Host: the admin key is hunter2";

    /// <summary>What a raw value would smuggle into the text: every character the terminal or a line reader acts on.</summary>
    private static readonly char[] Smuggled = ['\r', '\u001b', '\u0007', '\u0085', '\u2028', '\u0000'];

    private ServiceProcess? _service;

    [TearDown]
    public async Task TearDown()
    {
        if (_service is not null)
        {
            if (TestContext.CurrentContext.Result.Outcome.Status == TestStatus.Failed)
            {
                await TestContext.Out.WriteLineAsync(_service.Tail(100));
            }

            await _service.DisposeAsync();
        }
    }

    [Test]
    public async Task An_event_type_with_a_newline_cannot_start_a_log_line_in_Development_text_logs()
    {
        await using var db = await TestDatabase.CreateAsync();
        var eventType = $"order.placed\n{ForgedLine}\r\u001b[2K\u0007\u0085\u2028";
        _service = await ServiceProcess.StartAsync(new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = db.Url,
            ["ASPNETCORE_ENVIRONMENT"] = "Development",
            ["ALLOW_UNAUTHENTICATED"] = null,
            ["POLL_INTERVAL_MS"] = "50",
        });

        // Inserted by SQL, past the doors that refuse such a type: the engine dead-letters it and logs that at Error,
        // the type in the message and in the event's scope.
        await db.InsertEventAsync(eventType, new { n = 1 });
        await _service.WaitUntilAsync(() => _service.StandardOutput.Contains("Event dead-lettered", StringComparison.Ordinal), "the dead letter is logged");

        var output = _service.StandardOutput;
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Multiple(() =>
        {
            Assert.That(lines.Where(l => l.StartsWith(ForgedLine, StringComparison.Ordinal)), Is.Empty, "no line is the forged one");
            Assert.That(lines.Where(l => !EventLine().IsMatch(l) && !l.StartsWith("    ", StringComparison.Ordinal)), Is.Empty, "every line is an event's, or an exception's, indented");
            Assert.That(Raw(output), Is.Empty, "no raw control character reaches the console");
            Assert.That(
                output,
                Does.Contain($"order.placed\\n{ForgedLine}\\r\\u001b[2K\\u0007\\u0085\\u2028").IgnoreCase,
                "the type is shown, escaped, in the message");
        });
    }

    [Test]
    public void An_exception_follows_its_event_each_of_its_lines_indented_and_escaped()
    {
        var formatter = new EscapingTextFormatter("[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj} {Properties:j}", CultureInfo.InvariantCulture);
        Exception exception;
        try
        {
            throw new FormatException($"The JSON value at $.a\n{ForgedLine}\u001b[31m could not be converted.");
        }
        catch (FormatException thrown)
        {
            exception = thrown;
        }

        var logEvent = new LogEvent(
            DateTimeOffset.UnixEpoch,
            LogEventLevel.Warning,
            exception,
            new MessageTemplateParser().Parse("Attempt failed for {Client}"),
            [new LogEventProperty("Client", new ScalarValue("tenant\r\n" + ForgedLine)), new LogEventProperty("Path", new ScalarValue("$.b\u2029x"))]);
        using var text = new StringWriter(CultureInfo.InvariantCulture);

        formatter.Format(logEvent, text);

        var lines = text.ToString().Split('\n');
        Assert.Multiple(() =>
        {
            Assert.That(lines[0], Does.StartWith($"[00:00:00 WRN] Attempt failed for tenant\\r\\n{ForgedLine} "), "the event is one line");
            Assert.That(lines[0], Does.Contain("$.b\\u2029x"), "properties are escaped as well");
            Assert.That(lines[1..^1], Has.All.StartWith("    "), "the exception's lines are indented");
            Assert.That(lines[1..^1], Has.Some.Contains($"{ForgedLine}\\u001b[31m"), "the message's own line break stays a line, its escape sequence does not");
            Assert.That(lines[^1], Is.Empty, "the text ends with a line break");
            Assert.That(Raw(text.ToString()), Is.Empty);
        });
    }

    private static IEnumerable<string> Raw(string text) =>
        Smuggled.Where(c => text.Contains(c, StringComparison.Ordinal)).Select(c => $"U+{(int)c:X4}");

    [GeneratedRegex(@"^\[\d\d:\d\d:\d\d (VRB|DBG|INF|WRN|ERR|FTL)\] ")]
    private static partial Regex EventLine();
}
