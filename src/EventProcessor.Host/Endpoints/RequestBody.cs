using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.Net.Http.Headers;

namespace EventProcessor.Host.Endpoints;

/// <summary>
/// Reads the JSON body of a POST, bounded by the endpoint's own limit: nothing past it is read, and a body that does
/// not say it is JSON (UTF-8) is refused before any of it is read. Every refusal is a problem+json result.
/// </summary>
internal static class RequestBody
{
    /// <summary>
    /// Reads the whole body, or returns why not: 413 (over <paramref name="limit"/>), 415 (not JSON), or Kestrel's own
    /// 4xx. The request's deadline (<see cref="HttpLimits.ReceiveDeadline"/>) ends here, once it is received: past it
    /// the read is cancelled, and the request answered 408.
    /// </summary>
    /// <param name="request">The request.</param>
    /// <param name="limit">The most bytes this endpoint takes.</param>
    /// <param name="limitName">The setting that sets the limit, named in the 413 detail; null for a fixed limit.</param>
    /// <param name="cancellationToken">The request's token, which the deadline cancels.</param>
    public static async Task<(byte[] Body, IResult? Refused)> ReadJsonAsync(
        HttpRequest request, int limit, string? limitName, CancellationToken cancellationToken)
    {
        var read = await ReadAsync(request, limit, limitName, cancellationToken);
        request.HttpContext.Features.Get<IHttpRequestTimeoutFeature>()?.DisableTimeout();
        return read;
    }

    private static async Task<(byte[] Body, IResult? Refused)> ReadAsync(
        HttpRequest request, int limit, string? limitName, CancellationToken cancellationToken)
    {
        if (request.HttpContext.Features.Get<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: false })
        {
            return ([], null);
        }

        if (NotJson(request) is { } unsupported)
        {
            return ([], unsupported);
        }

        if (request.ContentLength > limit)
        {
            return ([], TooLarge(request, request.ContentLength.Value, limit, limitName));
        }

        // A chunked body has no length up front: read it, and stop one byte past the limit.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = limit + 1L;
        }

        // The deadline stops a read that waits for bytes the way Kestrel's body reader expects: CancelPendingRead,
        // then AdvanceTo. A read cancelled through its token instead leaves that reader marked as reading, and Kestrel
        // logs an error for every such request when it drains the connection.
        var reader = request.BodyReader;
        using var deadline = cancellationToken.UnsafeRegister(static state => ((PipeReader)state!).CancelPendingRead(), reader);
        using var body = new MemoryStream();
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(CancellationToken.None);
                var buffer = result.Buffer;
                if (result.IsCanceled)
                {
                    reader.AdvanceTo(buffer.Start);
                    cancellationToken.ThrowIfCancellationRequested();
                    continue;
                }

                var tooLarge = body.Length + buffer.Length > limit;
                foreach (var segment in buffer)
                {
                    if (!tooLarge)
                    {
                        body.Write(segment.Span);
                    }
                }

                reader.AdvanceTo(buffer.End);
                if (tooLarge)
                {
                    return ([], TooLarge(request, null, limit, limitName));
                }

                if (result.IsCompleted)
                {
                    return (body.ToArray(), null);
                }
            }
        }
        catch (BadHttpRequestException exception) when (exception.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return ([], TooLarge(request, null, limit, limitName));
        }
        catch (BadHttpRequestException exception)
        {
            // Kestrel gave up on the body: too slow (408), or malformed chunking (400). Its message names no internals.
            return ([], Results.Problem(statusCode: exception.StatusCode, title: "Unreadable body", detail: exception.Message));
        }
    }

    /// <summary>415 unless the body is declared as JSON (<c>application/json</c> or <c>+json</c>) in UTF-8.</summary>
    private static IResult? NotJson(HttpRequest request)
    {
        const string Expected = "Send Content-Type: application/json with a UTF-8 JSON body.";
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var contentType))
        {
            return Unsupported(request.ContentType is null ? $"The body has no Content-Type. {Expected}" : $"The Content-Type cannot be read. {Expected}");
        }

        var json = contentType.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || (contentType.MediaType.StartsWith("application/", StringComparison.OrdinalIgnoreCase)
                && contentType.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase));
        if (!json)
        {
            return Unsupported($"The body is {Truncate(contentType.MediaType.Value)}, not JSON. {Expected}");
        }

        return contentType.Charset.HasValue
            && !contentType.Charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase)
            && !contentType.Charset.Equals("utf8", StringComparison.OrdinalIgnoreCase)
            ? Unsupported($"The body's charset is {Truncate(contentType.Charset.Value)}; only UTF-8 is read. {Expected}")
            : null;

        static IResult Unsupported(string detail) =>
            Results.Problem(statusCode: StatusCodes.Status415UnsupportedMediaType, title: "Unsupported media type", detail: detail);
    }

    private static IResult TooLarge(HttpRequest request, long? size, int limit, string? limitName)
    {
        // The rest of the body is never read; closing the connection spares reading it just to keep the socket.
        request.HttpContext.Response.Headers.Connection = "close";
        var setting = limitName is null ? "" : $" ({limitName})";
        return Results.Problem(
            statusCode: StatusCodes.Status413PayloadTooLarge,
            title: "Payload too large",
            detail: size is { } known
                ? $"The body is {known} bytes, over the limit of {limit} for {request.Path}{setting}."
                : $"The body is over the limit of {limit} bytes for {request.Path}{setting}.");
    }

    private static string Truncate(string? value) =>
        value is null ? "" : value.Length <= 64 ? value : string.Concat(value.AsSpan(0, 63), "…");
}
