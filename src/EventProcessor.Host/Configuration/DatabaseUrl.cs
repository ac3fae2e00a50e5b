using Npgsql;

namespace EventProcessor.Host.Configuration;

/// <summary>Turns a <c>postgres://</c> URL (Heroku, Supabase, Cloud SQL style) into an Npgsql connection string.</summary>
internal static class DatabaseUrl
{
    public static string ToConnectionString(string url)
    {
        // Never echo the URL itself in an error: it carries the password.
        if (!Uri.TryCreate(url.Trim(), UriKind.Absolute, out var uri) || uri.Scheme is not ("postgres" or "postgresql"))
        {
            throw new SettingsException("DATABASE_URL is invalid: expected postgres://user:password@host:5432/database.");
        }

        if (uri.Host.Length == 0)
        {
            throw new SettingsException("DATABASE_URL is invalid: it names no host; expected postgres://user:password@host:5432/database.");
        }

        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host,
            Port = uri.IsDefaultPort || uri.Port <= 0 ? 5432 : uri.Port,
            Database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')) is { Length: > 0 } database ? database : null,
        };

        var userInfo = uri.UserInfo.Split(':', 2);
        if (userInfo[0].Length > 0)
        {
            builder.Username = Uri.UnescapeDataString(userInfo[0]);
        }

        if (userInfo.Length == 2)
        {
            builder.Password = Uri.UnescapeDataString(userInfo[1]);
        }

        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = pair.Split('=', 2);
            var key = Uri.UnescapeDataString(parts[0]);
            if (parts.Length != 2)
            {
                throw new SettingsException($"DATABASE_URL parameter '{key}' has no value; write {key}=value.");
            }

            if (!builder.ContainsKey(key))
            {
                throw new SettingsException($"DATABASE_URL has a parameter Npgsql does not know: '{key}'.");
            }

            try
            {
                builder[key] = Uri.UnescapeDataString(parts[1]);
            }
            catch (Exception exception) when (exception is ArgumentException or FormatException or InvalidCastException)
            {
                // The value is not echoed: it may be a password.
                throw new SettingsException($"DATABASE_URL parameter '{key}' has an invalid value.");
            }
        }

        return builder.ConnectionString;
    }
}
