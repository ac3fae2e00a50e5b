using System.Text.RegularExpressions;

namespace EventProcessor.Events;

/// <summary>
/// What an event type may look like: letters, digits and <c>. _ : -</c>, starting with a letter or digit, at most 100
/// characters. Every door refuses other types, and the engine dead-letters a row inserted by SQL with one, so that an
/// event type never carries a control character into a log line, a metric or a URL.
/// </summary>
public static partial class EventTypes
{
    /// <summary>The rule as a regular expression, for people and for JSON Schema (<c>pattern</c>).</summary>
    public const string Pattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$";

    /// <summary>The rule in words, for error messages.</summary>
    public const string Rule =
        "an event type is 1 to 100 letters, digits, '.', '_', ':' or '-', starting with a letter or digit (such as user.created).";

    /// <summary>Whether <paramref name="eventType"/> follows the rule.</summary>
    public static bool IsValid(string? eventType) => eventType is not null && Matcher().IsMatch(eventType);

    // \z, not $: in .NET, $ also matches before a final newline, which is exactly what the rule keeps out.
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}\z", RegexOptions.CultureInvariant)]
    private static partial Regex Matcher();
}
