using System.Net;
using System.Text;
using EventProcessor.Tests.Host;
using EventProcessor.Tests.Service;
using EventProcessor.Tests.Support;
using NUnit.Framework.Interfaces;

namespace EventProcessor.Tests.Security;

/// <summary>
/// Who may call the admin endpoints when no <c>ADMIN_API_KEY</c> is set: the real binary refuses to start in
/// production, starts open only when told (<c>ALLOW_UNAUTHENTICATED</c>) or in Development.
/// </summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
[Parallelizable(ParallelScope.All)]
public sealed class ClosedByDefaultTests
{
    private const string OpenWarning = "No ADMIN_API_KEY";

    private readonly List<IAsyncDisposable> _resources = [];
    private readonly List<ServiceProcess> _services = [];

    [TearDown]
    public async Task TearDown()
    {
        var failed = TestContext.CurrentContext.Result.Outcome.Status == TestStatus.Failed;
        foreach (var service in _services)
        {
            if (failed)
            {
                await TestContext.Out.WriteLineAsync(service.Tail(100));
            }

            await service.DisposeAsync();
        }

        foreach (var resource in _resources)
        {
            await resource.DisposeAsync();
        }
    }

    [Test]
    public async Task In_production_without_an_admin_key_the_service_refuses_to_start_with_one_line_and_exit_code_2()
    {
        var service = Track(ServiceProcess.Launch(new Dictionary<string, string?>
        {
            // Never created: the refusal comes before anything touches the database.
            ["DATABASE_URL"] = EmptyDatabase.UrlFor("eventproc_never_created"),
            ["ALLOW_UNAUTHENTICATED"] = null,
        }));

        var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(60));

        var lines = service.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.EqualTo(2), service.Tail());
            Assert.That(lines, Has.Length.EqualTo(1), $"one line on stderr{service.Tail()}");
            Assert.That(lines.FirstOrDefault(), Does.StartWith("event-processor: ADMIN_API_KEY is not set"));
            Assert.That(lines.FirstOrDefault(), Does.Contain("ALLOW_UNAUTHENTICATED=true"), "the line names the way out");
        });
    }

    [Test]
    public async Task ALLOW_UNAUTHENTICATED_starts_it_open_and_says_so_once_as_a_warning()
    {
        var db = Track(await TestDatabase.CreateAsync());
        var service = Track(await ServiceProcess.StartAsync(Settings(db, ("ALLOW_UNAUTHENTICATED", "true"))));

        using var batch = await PostAsync(service, "process-batch");
        var warnings = service.StandardOutput.Split('\n').Where(line => line.Contains(OpenWarning, StringComparison.Ordinal)).ToList();
        var (health, text) = await ResponseJson.ReadAsync(await service.Http.GetAsync(new Uri("health", UriKind.Relative)));

        Assert.Multiple(() =>
        {
            Assert.That(batch.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), "open: no key needed");
            Assert.That(health.GetProperty("registry").TryGetProperty("eventTypes", out _), Is.False, $"open admin endpoints open no health details: {text}");
            Assert.That(health.TryGetProperty("ingress", out _), Is.False, text);
            Assert.That(warnings, Has.Count.EqualTo(1), $"one warning at start-up{service.Tail()}");
            Assert.That(warnings.FirstOrDefault(), Does.Contain("\"@l\":\"Warning\"").And.Contain("ALLOW_UNAUTHENTICATED=true"));
        });
    }

    [Test]
    public async Task Development_starts_open_without_either_setting()
    {
        var db = Track(await TestDatabase.CreateAsync());
        var service = Track(await ServiceProcess.StartAsync(
            Settings(db, ("ASPNETCORE_ENVIRONMENT", "Development"), ("ALLOW_UNAUTHENTICATED", null))));

        using var batch = await PostAsync(service, "process-batch");
        var (health, text) = await ResponseJson.ReadAsync(await service.Http.GetAsync(new Uri("health", UriKind.Relative)));

        Assert.Multiple(() =>
        {
            Assert.That(batch.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), "Development is open without a key");
            Assert.That(health.GetProperty("registry").GetProperty("eventTypes").GetArrayLength(), Is.GreaterThan(0), $"Development shows the health details: {text}");
            Assert.That(health.GetProperty("ingress").GetProperty("written").GetInt64(), Is.Zero, text);
        });
    }

    [Test]
    public async Task With_an_admin_key_ALLOW_UNAUTHENTICATED_opens_nothing()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var service = await ServiceAppFixture.StartAsync(
            db, settings: [new("ADMIN_API_KEY", "the-key"), new("ALLOW_UNAUTHENTICATED", "true")]);

        using var withoutKey = await service.PostAsync("/process-batch", null);
        using var publishWithoutKey = await service.PostAsync("/events", """{"event_type": "x", "payload": {}}""");
        using var withKey = await service.PostAsync("/process-batch", null, ("X-API-Key", "the-key"));
        using var health = await service.GetHealthAsync();

        Assert.Multiple(() =>
        {
            Assert.That(withoutKey.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
            Assert.That(publishWithoutKey.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
            Assert.That(withKey.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
            Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.OK), "/health stays open");
        });
    }

    private static Dictionary<string, string?> Settings(TestDatabase db, params (string Key, string? Value)[] extra)
    {
        var settings = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["DATABASE_URL"] = db.Url,
            ["RUN_MIGRATIONS"] = "false",
            ["ENABLE_POLLING"] = "false",
        };
        foreach (var (key, value) in extra)
        {
            settings[key] = value;
        }

        return settings;
    }

    private static async Task<HttpResponseMessage> PostAsync(ServiceProcess service, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative))
        {
            Content = new StringContent("", Encoding.UTF8, "application/json"),
        };
        return await service.Http.SendAsync(request);
    }

    private ServiceProcess Track(ServiceProcess service)
    {
        _services.Add(service);
        return service;
    }

    private T Track<T>(T resource)
        where T : IAsyncDisposable
    {
        _resources.Add(resource);
        return resource;
    }
}
