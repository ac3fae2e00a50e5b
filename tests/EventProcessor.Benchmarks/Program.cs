using System.Diagnostics;
using System.Globalization;
using EventProcessor.Benchmarks;

// Throughput and latency of the engine against its ceiling, on a PostgreSQL of its own. See docs/performance.md.
//   dotnet run -c Release --project tests/EventProcessor.Benchmarks -- [--events 100000] [--repeat 3] [--quick] [--big-table]
//   quicker: [--batch N [--aggregates N] [--tenants N]] [--workers N] [--latency-only]
// EVENTPROC_BENCH_PG (an Npgsql connection string) picks the server; otherwise one is started from local binaries
// with deploy/local/pg.sh, as the tests do.
var events = Option("--events", 100_000);
var quick = args.Contains("--quick");
var bigTable = args.Contains("--big-table");
var latencySeconds = quick ? 5 : 20;
var only = Option("--batch", 0); // one batch size only (product drains over --aggregates N), no latency: for trying a change quickly

await using var server = await BenchServer.StartAsync();
await using var database = await BenchDatabase.CreateAsync(server.AdminConnectionString, "eventproc_bench");
Console.WriteLine($"# Event processor benchmark — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}; PostgreSQL: {server.Description}");
Console.WriteLine($"events per drain: {events:N0} (~300-byte JSON payload), no-op handler unless stated");
Console.WriteLine();

if (args.Contains("--latency-only"))
{
    foreach (var rate in new[] { 500, 2000 })
    {
        var (p50, p95, p99, handled, warmUpWorst) = await ProductRuns.LatencyAsync(database, rate, TimeSpan.FromSeconds(latencySeconds), TimeSpan.FromSeconds(10));
        Console.WriteLine($"{rate}/s: handled {handled}, p50 {Ms(p50)}, p95 {Ms(p95)}, p99 {Ms(p99)}; worst in the warm-up {Ms(warmUpWorst.TotalMilliseconds)}");
    }

    return 0;
}

// With --repeat N, each drain of the ceiling, the design loop and the product runs N times, in rounds (so that a slow
// minute on the machine touches all three alike), and the median is printed.
var repeat = Option("--repeat", 1);
var ceilingBatches = new[] { 1, 20, 100, 1000 }.Where(b => only == 0 || b == only).ToArray();
var drainBatches = new[] { 20, 100, 1000 }.Where(b => only == 0 || b == only).ToArray();

// The product at the defaults (BATCH_SIZE=20 and the default WORKERS), at batch 20 with the four loops that were the
// default until 2026-11-24, and at the larger batches with four loops, which do better there than more (see WORKERS
// in the README). --workers N runs every product drain with N loops instead.
var workersGiven = Option("--workers", 0);
var defaultWorkers = new EventProcessor.EventProcessorOptions().Workers;
(int Batch, int? Workers)[] drains =
    workersGiven != 0
        ? [.. drainBatches.Select(b => (b, (int?)workersGiven))]
        : [.. new (int Batch, int? Workers)[] { (20, null), (20, 4), (100, 4), (1000, 4) }.Where(d => drainBatches.Contains(d.Batch))];
var ceilingRuns = ceilingBatches.ToDictionary(b => b, _ => new List<(double EventsPerSecond, double PostgresCpuSeconds)>());
var tenants = Option("--tenants", 0);
var designRuns = drainBatches.ToDictionary(b => b, _ => new List<double>());
var productRuns = drains.ToDictionary(d => d, _ => new List<ProductRuns.DrainResult>());
for (var round = 0; round < repeat; round++)
{
    foreach (var batch in ceilingBatches)
    {
        ceilingRuns[batch].Add(await Ceiling.DrainAsync(database, batch == 1 ? Math.Min(events, 20_000) : events, batch));
    }

    foreach (var batch in drainBatches)
    {
        designRuns[batch].Add(await DesignLoop.DrainAsync(database, events, batch));
    }

    foreach (var drain in drains)
    {
        productRuns[drain].Add(await ProductRuns.DrainAsync(
            database, events, drain.Batch, "bench.noop", aggregates: Option("--aggregates", 0), workers: drain.Workers, tenants: tenants));
    }
}

var ceilingMedians = ceilingRuns.ToDictionary(p => p.Key, p => Median(p.Value, r => r.EventsPerSecond));
var ceilings = ceilingMedians.ToDictionary(p => p.Key, p => p.Value.EventsPerSecond);
var designs = designRuns.ToDictionary(p => p.Key, p => Median(p.Value, r => r));
var drained = productRuns.ToDictionary(p => p.Key, p => Median(p.Value, r => r.EventsPerSecond));
if (repeat > 1)
{
    Console.WriteLine($"drains of the ceiling, the design loop and the product: median of {repeat} runs each");
    Console.WriteLine();
}

var rows = new List<string[]>();
string[] header = ["what", "events/s", "PostgreSQL CPU ms / 1,000 events", "CPU s (process)", "peak working set", "÷ ceiling, same batch", "÷ design loop, same batch"];
foreach (var batch in ceilingBatches)
{
    var ceilingEvents = batch == 1 ? Math.Min(events, 20_000) : events;
    rows.Add([$"ceiling: raw claim-and-mark, 4 connections, batch {batch}", Rate(ceilings[batch]), PerThousand(ceilingMedians[batch].PostgresCpuSeconds, ceilingEvents), "", "", "1.00", ""]);
}

foreach (var batch in drainBatches)
{
    rows.Add([$"design loop: the engine's claim + completion statements alone, 4 connections, batch {batch}", Rate(designs[batch]), "", "", "", Ratio(designs[batch], ceilings[batch]), "1.00"]);
}

foreach (var drain in drains)
{
    var label = drain.Workers is null ? " (the defaults)" : drain.Batch == 1000 && workersGiven == 0 ? " (best configuration)" : "";
    var spread = (Option("--aggregates", 0), tenants) switch
    {
        (0, 0) => "",
        (var a, 0) => $", events over {a:N0} aggregates",
        (0, var t) => $", events dealt to {t} tenants",
        (var a, var t) => $", events over {a:N0} aggregates dealt to {t} tenants",
    };
    rows.Add(ProductRow($"product: drain, no-op handler, {Config(drain.Batch, drain.Workers)}{label}{spread}", drained[drain], drain.Batch));
}

if (only != 0)
{
    Table(header, rows);
    return 0;
}

rows.Add(ProductRow($"product: drain, handler writes one row in the event's transaction, {Config(20, null)}",
    await ProductRuns.DrainAsync(database, events, 20, "bench.project"), 20));
rows.Add(ProductRow($"product: drain, no-op handler, {Config(20, null)}, events over 1,000 aggregates",
    await ProductRuns.DrainAsync(database, events, 20, "bench.noop", aggregates: 1_000), 20));
rows.Add(ProductRow($"product: drain, no-op handler, {Config(100, 4)}, events over 1,000 aggregates",
    await ProductRuns.DrainAsync(database, events, 100, "bench.noop", aggregates: 1_000, workers: 4), 100));

string? bigTablePlans = null;
if (bigTable)
{
    await database.AddProcessedAsync(5_000_000);
    foreach (var drain in drains.Where(d => d == drains[0] || d.Batch == 1000))
    {
        var withHistory = await ProductRuns.DrainAsync(database, events, drain.Batch, "bench.noop", keepHistory: true, workers: drain.Workers);
        var row = ProductRow($"product: drain, {Config(drain.Batch, drain.Workers)}, with 5,000,000 processed rows in the table", withHistory, drain.Batch);
        row[0] += $" ({Ratio(withHistory.EventsPerSecond, drained[drain].EventsPerSecond)} of the same drain without them)";
        rows.Add(row);
    }

    bigTablePlans = await database.ExplainEngineAsync(events);
}

Table(header, rows);

Console.WriteLine();
var latencyRows = new List<string[]>();
foreach (var rate in new[] { 500, 2000 })
{
    var (p50, p95, p99, handled, warmUpWorst) = await ProductRuns.LatencyAsync(database, rate, TimeSpan.FromSeconds(latencySeconds), TimeSpan.FromSeconds(10));
    latencyRows.Add([
        $"{rate}/s for {latencySeconds} s after {ProductRuns.LatencyWarmUp.TotalSeconds:0} s of warm-up, POLL_INTERVAL_MS=10000, {Config(ProductRuns.LatencyBatchSize, null)}",
        handled.ToString("N0", CultureInfo.InvariantCulture), Ms(p50), Ms(p95), Ms(p99), Ms(warmUpWorst.TotalMilliseconds)]);
}

Table(["latency: insert → handled", "handled", "p50", "p95", "p99", "worst in the warm-up (not counted)"], latencyRows);
Console.WriteLine();
Console.WriteLine(bigTablePlans is null
    ? "Plans of the engine's claim and completion (run with --big-table to see them beside 5,000,000 processed rows):"
    : "Plans of the engine's claim and completion with 5,000,000 processed rows and a backlog in the table:");
Console.WriteLine(bigTablePlans ?? await database.ExplainEngineAsync(events));
return 0;

string[] ProductRow(string what, ProductRuns.DrainResult result, int batch) =>
[
    what, Rate(result.EventsPerSecond), PerThousand(result.PostgresCpuSeconds, events), Cpu(result.CpuSeconds), Mb(result.PeakWorkingSetMb),
    Ratio(result.EventsPerSecond, ceilings[batch]), designs.TryGetValue(batch, out var design) ? Ratio(result.EventsPerSecond, design) : "",
];

string Config(int batch, int? workers) => $"BATCH_SIZE={batch}, WORKERS={workers ?? defaultWorkers}";

int Option(string name, int fallback)
{
    var index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length ? int.Parse(args[index + 1], CultureInfo.InvariantCulture) : fallback;
}

static T Median<T>(List<T> runs, Func<T, double> by) => runs.OrderBy(by).ElementAt(runs.Count / 2);

static string Rate(double perSecond) => perSecond.ToString("N0", CultureInfo.InvariantCulture);

static string PerThousand(double seconds, int count) =>
    double.IsNaN(seconds) ? "n/a" : (seconds * 1000 / count * 1000).ToString("0", CultureInfo.InvariantCulture);

static string Cpu(double seconds) => seconds.ToString("0.0", CultureInfo.InvariantCulture);

static string Mb(double mb) => $"{mb.ToString("0", CultureInfo.InvariantCulture)} MB";

static string Ms(double ms) => $"{ms.ToString("0.0", CultureInfo.InvariantCulture)} ms";

static string Ratio(double product, double ceiling) => (product / ceiling).ToString("0.00", CultureInfo.InvariantCulture);

static void Table(string[] header, List<string[]> rows)
{
    Console.WriteLine($"| {string.Join(" | ", header)} |");
    Console.WriteLine($"|{string.Join("|", header.Select(_ => " --- "))}|");
    foreach (var row in rows)
    {
        Console.WriteLine($"| {string.Join(" | ", row)} |");
    }
}

/// <summary>The PostgreSQL the benchmark runs against.</summary>
internal sealed class BenchServer : IAsyncDisposable
{
    private readonly string? _dataDirectory;
    private readonly string? _script;

    private BenchServer(string adminConnectionString, string description, string? dataDirectory, string? script)
    {
        AdminConnectionString = adminConnectionString;
        Description = description;
        _dataDirectory = dataDirectory;
        _script = script;
    }

    public string AdminConnectionString { get; }

    public string Description { get; }

    public static async Task<BenchServer> StartAsync()
    {
        var given = Environment.GetEnvironmentVariable("EVENTPROC_BENCH_PG");
        if (!string.IsNullOrWhiteSpace(given))
        {
            return new BenchServer(given, "EVENTPROC_BENCH_PG", null, null);
        }

        var root = RepositoryRoot();
        var script = Path.Combine(root, "deploy", "local", "pg.sh");
        var port = int.Parse((await RunAsync(Path.Combine(root, "deploy", "local", "free-port.sh"))).Trim(), CultureInfo.InvariantCulture);
        var directory = Directory.CreateTempSubdirectory("eventproc-bench-pg").FullName;
        await RunAsync(script, "start", directory, port.ToString(CultureInfo.InvariantCulture));
        return new BenchServer(
            $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres",
            "local binaries via deploy/local/pg.sh (fsync=off, synchronous_commit=off)",
            directory,
            script);
    }

    public async ValueTask DisposeAsync()
    {
        if (_script is not null && _dataDirectory is not null)
        {
            await RunAsync(_script, "stop", _dataDirectory);
            Directory.Delete(_dataDirectory, recursive: true);
        }
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "EventProcessor.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("EventProcessor.sln not found above the benchmark; run it from the repository.");
    }

    private static async Task<string> RunAsync(string file, params string[] arguments)
    {
        using var process = Process.Start(new ProcessStartInfo("bash", [file, .. arguments])
        {
            RedirectStandardOutput = true,
            UseShellExecute = false,
        })!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        return process.ExitCode == 0 ? output : throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited with {process.ExitCode}.");
    }
}
