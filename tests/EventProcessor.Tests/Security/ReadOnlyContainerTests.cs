using System.Net;
using Dapper;
using EventProcessor.Tests.Service;
using EventProcessor.Tests.Support;

namespace EventProcessor.Tests.Security;

/// <summary>
/// The container runs as non-root with a read-only file system: the shipped service, started as the image's user
/// on a read-only root (no Docker engine needed, see <see cref="ServiceProcess.LaunchConfined"/>), migrates an empty
/// database, takes an AWS payload in, handles it, and stops cleanly, without a warning or error on the way.
/// </summary>
[Category("Faults")]
public sealed class ReadOnlyContainerTests
{
    [Test]
    public async Task The_service_migrates_ingests_handles_and_stops_as_a_non_root_user_on_a_read_only_root()
    {
        if (Environment.UserName != "root")
        {
            Assert.Ignore("Setting up the confinement (a mount namespace, another user) needs root, as a container runtime does.");
        }

        await using var database = await EmptyDatabase.CreateAsync();
        await using var service = ServiceProcess.LaunchConfined(new Dictionary<string, string?>
        {
            ["DATABASE_URL"] = database.Url,
            ["POLL_INTERVAL_MS"] = "100",
        });
        await service.WaitUntilAsync(async () => await HealthyAsync(service), "GET /health answers 200", TimeSpan.FromSeconds(60));

        var status = await File.ReadAllLinesAsync($"/proc/{service.ProcessId}/status");
        var rootMount = (await File.ReadAllLinesAsync($"/proc/{service.ProcessId}/mountinfo"))
            .Select(line => line.Split(' '))
            .Single(fields => fields[4] == "/");

        using var response = await service.Http.PostAsync(
            new Uri("process", UriKind.Relative),
            new StringContent(AwsFixtures.Read("ecs-task-state-change-event.json"), System.Text.Encoding.UTF8, "application/json"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted), await response.Content.ReadAsStringAsync());
        await using var connection = await database.DataSource.OpenConnectionAsync();
        await service.WaitUntilAsync(
            async () => await connection.ExecuteScalarAsync<bool>("SELECT EXISTS (SELECT FROM executions) AND NOT EXISTS (SELECT FROM events WHERE NOT processed)"),
            "the ECS event is handled into executions");

        service.SignalTerm();
        var exitCode = await service.WaitForExitAsync(TimeSpan.FromSeconds(10));

        var complaints = service.Output.Split('\n')
            .Where(line => line.Contains("\"@l\":\"Warning\"", StringComparison.Ordinal) || line.Contains("\"@l\":\"Error\"", StringComparison.Ordinal) ||
                line.Contains("\"@l\":\"Fatal\"", StringComparison.Ordinal) || line.Contains("Read-only file system", StringComparison.Ordinal) ||
                line.Contains("Permission denied", StringComparison.Ordinal))
            .Where(line => !line.Contains("AdminEndpointsOpen", StringComparison.Ordinal)) // ALLOW_UNAUTHENTICATED, said on purpose
            .ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(status, Has.Some.Match($@"^Uid:\s+{ServiceProcess.ContainerUserId}\s+{ServiceProcess.ContainerUserId}\s"), "runs as the image's user");
            Assert.That(rootMount[5].Split(','), Does.Contain("ro"), "its root file system is read-only");
            Assert.That(exitCode, Is.Zero, service.Tail());
            Assert.That(complaints, Is.Empty, service.Tail());
        });
    }

    private static async Task<bool> HealthyAsync(ServiceProcess service)
    {
        try
        {
            using var response = await service.Http.GetAsync(new Uri("health", UriKind.Relative));
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }
}
