using System.Diagnostics;
using Npgsql;

namespace EventProcessor.Tests.Faults;

/// <summary>
/// A PostgreSQL server of the test's own, started from the machine's binaries with <c>deploy/local/pg.sh</c> on a free
/// port, so that a test can stop and start it without touching the server the other tests share.
/// </summary>
public sealed class OwnPostgres : IAsyncDisposable
{
    private readonly string _script;
    private readonly string _directory;

    private OwnPostgres(string script, string directory, int port)
    {
        _script = script;
        _directory = directory;
        Port = port;
    }

    public int Port { get; }

    public string ConnectionStringFor(string database) =>
        new NpgsqlConnectionStringBuilder { Host = "127.0.0.1", Port = Port, Username = "postgres", Database = database }.ConnectionString;

    public string UrlFor(string database) => $"postgres://postgres@127.0.0.1:{Port}/{database}";

    /// <summary>Whether this machine has the server binaries (pg.sh would otherwise install them with apt-get).</summary>
    public static bool BinariesAvailable() =>
        Directory.Exists("/usr/lib/postgresql")
        && Directory.EnumerateFiles("/usr/lib/postgresql", "pg_ctl", SearchOption.AllDirectories).Any();

    public static async Task<OwnPostgres> StartAsync()
    {
        var script = Path.Combine(RepositoryRoot(), "deploy", "local", "pg.sh");
        var directory = Directory.CreateTempSubdirectory("eventproc-own-pg-").FullName;
        var port = int.Parse((await RunAsync(Path.Combine(Path.GetDirectoryName(script)!, "free-port.sh"))).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        var server = new OwnPostgres(script, directory, port);
        await server.StartAgainAsync();
        return server;
    }

    /// <summary><c>pg.sh start</c>: returns once the server accepts connections.</summary>
    public Task StartAgainAsync() => RunAsync(_script, "start", _directory, Port.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary><c>pg.sh stop</c>: a fast shutdown (sessions are ended, transactions roll back); returns once it is down.</summary>
    public Task StopAsync() => RunAsync(_script, "stop", _directory);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        finally
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private static async Task<string> RunAsync(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(file);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not run {file}.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            Assert.Fail($"{Path.GetFileName(file)} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await error}");
        }

        return await output;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "deploy", "local", "pg.sh")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("deploy/local/pg.sh not found above the test assembly.");
    }
}
