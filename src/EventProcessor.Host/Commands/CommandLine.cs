using EventProcessor.Host.Configuration;
using EventProcessor.Migrations;

namespace EventProcessor.Host.Commands;

/// <summary>What the service's commands share: configuration as the service reads it, and simple option parsing.</summary>
internal static class CommandLine
{
    /// <summary>Configuration from appsettings.json and the environment, as the service itself reads it.</summary>
    public static IConfiguration Configuration() =>
        new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .Build();

    /// <summary>Migrates first unless RUN_MIGRATIONS=false, so that a command works on an empty database too.</summary>
    public static Task MigrateIfEnabledAsync(ServiceSettings settings, CancellationToken cancellationToken) =>
        settings.RunMigrations ? SchemaMigrator.MigrateAsync(settings.ConnectionString, cancellationToken) : Task.CompletedTask;

    /// <summary>Reads <c>--name value</c> options; throws <see cref="UsageException"/> on anything else.</summary>
    public static Dictionary<string, string> Options(string[] args, params string[] allowed)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (!name.StartsWith("--", StringComparison.Ordinal) || Array.IndexOf(allowed, name[2..]) < 0)
            {
                throw new UsageException($"unknown argument '{name}'; expected {string.Join(", ", allowed.Select(a => "--" + a))}.");
            }

            if (i + 1 >= args.Length)
            {
                throw new UsageException($"{name} needs a value.");
            }

            options[name[2..]] = args[++i];
        }

        return options;
    }
}

/// <summary>A command line that cannot be run; the message says what was expected.</summary>
internal sealed class UsageException(string message) : Exception(message);
