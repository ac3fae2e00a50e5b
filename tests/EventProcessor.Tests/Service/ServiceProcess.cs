using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EventProcessor.Tests.Service;

/// <summary>
/// The real service, <c>dotnet EventProcessor.Host.dll</c> (or the same composition with test handlers,
/// <see cref="FaultHostAssembly"/>), run as a child process from the test output directory with its settings in
/// environment variables. Talks to it on 127.0.0.1 only.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    /// <summary>The service as it ships.</summary>
    public const string HostAssembly = "EventProcessor.Host.dll";

    /// <summary>The service plus the <c>fault.*</c> handlers (tests/EventProcessor.FaultHost).</summary>
    public const string FaultHostAssembly = "EventProcessor.FaultHost.dll";

    // Settings the service reads that a developer's or CI's environment might carry into the child: the child gets
    // only what the test passes.
    private static readonly string[] InheritedSettingPrefixes =
    [
        "DATABASE_URL", "PORT", "BIND_ADDRESS", "POLL_INTERVAL_MS", "BATCH_SIZE", "WORKERS", "MAX_RETRIES", "ENABLE_POLLING", "LOG_LEVEL",
        "RETRY_", "HANDLER_TIMEOUT_MS", "LEASE_MS", "RUN_MIGRATIONS", "ADMIN_API_KEY", "Webhooks__", "Webhooks:",
        "ConnectionStrings__", "ASPNETCORE_", "DOTNET_URLS", "URLS", "HTTP_PORTS", "HTTPS_PORTS", "Serilog", "Sqs__", "Sqs:",
        "MAX_BODY_BYTES", "MAX_DECOMPRESSED_BYTES", "MAX_JSON_DEPTH", "AWS_", "ALLOW_UNAUTHENTICATED", "ADMIN_RATE_LIMIT", "FAULT_",
        "MAX_EVENTS_PER_REQUEST", "CLIENT_RATE_LIMIT",
        "REQUEST_TIMEOUT_MS", "MAX_CONCURRENT_CONNECTIONS", "HEALTH_DETAILS",
    ];

    private readonly Process _process;
    private readonly Lock _gate = new();
    private readonly StringBuilder _output = new();
    private readonly StringBuilder _standardError = new();
    private readonly StringBuilder _standardOutput = new();

    private ServiceProcess(Process process, int port, string description)
    {
        _process = process;
        Port = port;
        Description = description;
        BaseAddress = new Uri($"http://127.0.0.1:{port}/");
        Http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    public int Port { get; }

    public Uri BaseAddress { get; }

    /// <summary>A client whose base address is the service.</summary>
    public HttpClient Http { get; }

    public string Description { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Everything the process wrote so far, stdout and stderr interleaved, each line tagged.</summary>
    public string Output
    {
        get
        {
            lock (_gate)
            {
                return _output.ToString();
            }
        }
    }

    public string StandardError
    {
        get
        {
            lock (_gate)
            {
                return _standardError.ToString();
            }
        }
    }

    public string StandardOutput
    {
        get
        {
            lock (_gate)
            {
                return _standardOutput.ToString();
            }
        }
    }

    /// <summary>Starts the service (<paramref name="assembly"/>) and waits until <c>GET /health</c> answers 200.</summary>
    public static async Task<ServiceProcess> StartAsync(
        IReadOnlyDictionary<string, string?> settings,
        TimeSpan? timeout = null,
        string assembly = HostAssembly)
    {
        // The free port is found by binding and letting go, so another process can take it in between: try again then.
        for (var attempt = 1; ; attempt++)
        {
            var service = Launch(assembly, settings);
            try
            {
                await service.WaitUntilHealthyAsync(timeout ?? TimeSpan.FromSeconds(30));
                return service;
            }
            catch (PortTakenException) when (attempt < 3)
            {
                await service.DisposeAsync();
            }
            catch
            {
                await service.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>Starts the service and returns at once; see <see cref="Launch(string, IReadOnlyDictionary{string, string?}, string[])"/>.</summary>
    public static ServiceProcess Launch(IReadOnlyDictionary<string, string?> settings, params string[] arguments) =>
        Launch(HostAssembly, settings, arguments);

    /// <summary>
    /// Starts <paramref name="assemblyName"/> (<see cref="HostAssembly"/> or <see cref="FaultHostAssembly"/>) and returns at
    /// once; PORT, BIND_ADDRESS, ASPNETCORE_ENVIRONMENT (Production) and, unless ADMIN_API_KEY or ALLOW_UNAUTHENTICATED is
    /// given, ALLOW_UNAUTHENTICATED=true are filled in.
    /// </summary>
    public static ServiceProcess Launch(string assemblyName, IReadOnlyDictionary<string, string?> settings, params string[] arguments) =>
        Launch(assemblyName, settings, arguments, confine: false);

    /// <summary>
    /// Starts the shipped service the way its container runs: as the aspnet image's non-root user (UID 1654) on a
    /// read-only root file system (a private mount namespace in which <c>/</c> is remounted read-only; <c>/proc</c>,
    /// <c>/sys</c> and <c>/dev</c> stay as Docker leaves them). Needs root to set up, as a container runtime does.
    /// </summary>
    public static ServiceProcess LaunchConfined(IReadOnlyDictionary<string, string?> settings) =>
        Launch(HostAssembly, settings, [], confine: true);

    /// <summary>The container image's user (<c>$APP_UID</c> of mcr.microsoft.com/dotnet/aspnet).</summary>
    public const int ContainerUserId = 1654;

    private static ServiceProcess Launch(string assemblyName, IReadOnlyDictionary<string, string?> settings, string[] arguments, bool confine)
    {
        var directory = AppContext.BaseDirectory;
        var assembly = Path.Combine(directory, assemblyName);
        if (!File.Exists(assembly) || !File.Exists(Path.ChangeExtension(assembly, ".runtimeconfig.json")))
        {
            Assert.Fail($"{assemblyName} and its runtimeconfig.json are not in {directory}; build the test project first.");
        }

        var port = settings.TryGetValue("PORT", out var given) && int.TryParse(given, out var fixedPort) ? fixedPort : FreePort();
        var start = new ProcessStartInfo(confine ? "unshare" : DotnetHost())
        {
            WorkingDirectory = directory,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        if (confine)
        {
            // The build output is mounted read-only at /mnt, as the image has its files at /app: the user may not be
            // able to reach it where it is (a checkout under a private temporary directory). Each step execs the
            // next, so the process id the test holds (and signals) is the service's own.
            var uid = ContainerUserId.ToString(System.Globalization.CultureInfo.InvariantCulture);
            foreach (var part in (string[])["--mount", "--propagation", "private", "sh", "-c",
                "mount --bind \"$0\" /mnt && mount -o remount,bind,ro /mnt && mount -o remount,bind,ro / && cd /mnt && " +
                $"HOME=/mnt exec setpriv --reuid={uid} --regid={uid} --clear-groups \"$@\"", directory, DotnetHost()])
            {
                start.ArgumentList.Add(part);
            }

            start.WorkingDirectory = "/";
        }

        start.ArgumentList.Add(confine ? $"/mnt/{assemblyName}" : assembly);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var key in start.Environment.Keys.ToList())
        {
            if (InheritedSettingPrefixes.Any(prefix => key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)))
            {
                start.Environment.Remove(key);
            }
        }

        start.Environment["PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["BIND_ADDRESS"] = "127.0.0.1";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        // Open admin endpoints, said on purpose, unless the test is about keys: it then sets ADMIN_API_KEY, or
        // ALLOW_UNAUTHENTICATED itself (null removes it, for the closed production default).
        if (!settings.ContainsKey("ADMIN_API_KEY") && !settings.ContainsKey("ALLOW_UNAUTHENTICATED"))
        {
            start.Environment["ALLOW_UNAUTHENTICATED"] = "true";
        }

        foreach (var (key, value) in settings)
        {
            if (value is null)
            {
                start.Environment.Remove(key);
            }
            else
            {
                start.Environment[key] = value;
            }
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var description = $"dotnet {assemblyName} {string.Join(' ', arguments)}".TrimEnd();
        var service = new ServiceProcess(process, port, description);
        process.OutputDataReceived += (_, e) => service.Append(e.Data, error: false);
        process.ErrorDataReceived += (_, e) => service.Append(e.Data, error: true);
        if (!process.Start())
        {
            Assert.Fail($"Could not start {description}.");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return service;
    }

    /// <summary>Sends SIGTERM, as Cloud Run, Kubernetes and docker stop do.</summary>
    public void SignalTerm() => Signal("TERM");

    /// <summary>SIGSTOP: the process freezes where it is, connections and all, as on a stuck VM.</summary>
    public void Freeze() => Signal("STOP");

    /// <summary>SIGCONT: a frozen process carries on.</summary>
    public void Thaw() => Signal("CONT");

    private void Signal(string signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", [$"-{signal}", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        {
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException("Could not run kill.");
        kill.WaitForExit();
        if (kill.ExitCode != 0)
        {
            Assert.Fail($"kill -{signal} {_process.Id} exited with {kill.ExitCode}.");
        }
    }

    /// <summary>kill -9: no shutdown code runs.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    /// <summary>Waits for the process to exit and returns its exit code; fails the test after <paramref name="timeout"/>.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            // Also waits for the redirected output to reach its end, so Output is complete afterwards.
            await _process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"{Description} did not exit within {timeout.TotalSeconds:0.#} s.{Tail()}");
        }

        return _process.ExitCode;
    }

    /// <summary>Polls until <paramref name="condition"/> holds; fails with <paramref name="what"/> and the service's last output lines.</summary>
    public async Task WaitUntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting until {what}.{(HasExited ? $" The service exited with {_process.ExitCode}." : "")}{Tail()}");
            }

            await Task.Delay(50);
        }
    }

    public Task WaitUntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null) =>
        WaitUntilAsync(() => Task.FromResult(condition()), what, timeout);

    /// <summary>The last lines of output, for assertion messages.</summary>
    public string Tail(int lines = 40)
    {
        var all = Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return $"\n--- last {Math.Min(lines, all.Length)} lines of {Description} (pid {_process.Id}) ---\n" +
            string.Join('\n', all.TakeLast(lines));
    }

    private async Task WaitUntilHealthyAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (HasExited)
            {
                await WaitForExitAsync(TimeSpan.FromSeconds(5));
                if (Output.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
                {
                    throw new PortTakenException();
                }

                Assert.Fail($"{Description} exited with {_process.ExitCode} before /health answered 200.{Tail()}");
            }

            try
            {
                using var probe = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                using var response = await Http.GetAsync(new Uri("health", UriKind.Relative), probe.Token);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (Exception exception) when (exception is HttpRequestException or OperationCanceledException)
            {
                // Not listening yet (or still migrating).
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"{Description} did not answer GET /health with 200 within {timeout.TotalSeconds:0} s.{Tail()}");
            }

            await Task.Delay(100);
        }
    }

    private void Append(string? line, bool error)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            _output.Append(error ? "[stderr] " : "[stdout] ").Append(line).Append('\n');
            (error ? _standardError : _standardOutput).Append(line).Append('\n');
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static string DotnetHost()
    {
        // The SDK tells test hosts which muxer it is; fall back to the one running this process, then PATH.
        var fromSdk = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromSdk) && File.Exists(fromSdk))
        {
            return fromSdk;
        }

        var current = Environment.ProcessPath;
        return current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet" ? current : "dotnet";
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await _process.WaitForExitAsync(cancel.Token);
            }
        }
        catch (Exception exception) when (exception is InvalidOperationException or OperationCanceledException)
        {
            // Already gone, or never started.
        }
        finally
        {
            _process.Dispose();
        }
    }

    private sealed class PortTakenException : Exception
    {
        public PortTakenException()
            : base("The service's port was taken by another process before it bound it.")
        {
        }
    }
}
