using System.Security.Cryptography;
using System.Text;
using EventProcessor.Host.Configuration;

namespace EventProcessor.Host.Endpoints;

/// <summary>
/// When <c>ADMIN_API_KEY</c> is set, admits only requests that carry it in <c>X-API-Key</c> or
/// <c>Authorization: Bearer</c>. Keys are compared as SHA-256 digests in constant time, and never logged.
/// </summary>
internal sealed class ApiKeyFilter(ServiceSettings settings) : IEndpointFilter
{
    private readonly byte[]? _expectedDigest = settings.AdminApiKey is { } key ? SHA256.HashData(Encoding.UTF8.GetBytes(key)) : null;

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        if (_expectedDigest is null)
        {
            return await next(context);
        }

        var presented = PresentedKey(context.HttpContext.Request);
        if (presented is null
            || !CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), _expectedDigest))
        {
            return Results.Problem(
                statusCode: StatusCodes.Status401Unauthorized,
                title: "Unauthorized",
                detail: "This endpoint needs the admin API key in the X-API-Key header or as Authorization: Bearer <key>.");
        }

        return await next(context);
    }

    /// <summary>Whether <paramref name="presented"/> is the configured admin key (constant time).</summary>
    public static bool IsAdminKey(ServiceSettings settings, string presented) =>
        settings.AdminApiKey is { } key
        && CryptographicOperations.FixedTimeEquals(
            SHA256.HashData(Encoding.UTF8.GetBytes(presented)),
            SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>The key in <c>X-API-Key</c>, else in <c>Authorization: Bearer</c>; null when neither is there.</summary>
    public static string? PresentedKey(HttpRequest request)
    {
        if (request.Headers.TryGetValue("X-API-Key", out var apiKey) && !string.IsNullOrEmpty(apiKey))
        {
            return apiKey.ToString();
        }

        var authorization = request.Headers.Authorization.ToString();
        return authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? authorization[7..].Trim() : null;
    }
}
