using System.Buffers;
using System.Globalization;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Display;

namespace EventProcessor.Host.Configuration;

/// <summary>
/// Development's text log: Serilog's own output template, with every control character it renders escaped
/// (<c>\n</c>, <c>\r</c>, <c>\t</c>, else <c>\uXXXX</c>; the Unicode line and paragraph separators too). Values come
/// from outside (an event type, a client id, a JSON path in an exception message), and a raw line break in one would
/// start a line that reads as another event, a carriage return or an escape sequence would rewrite the terminal. So an
/// event is one line, and its exception follows with each of its lines indented: only an event starts a line with
/// <c>[</c>.
/// </summary>
internal sealed class EscapingTextFormatter(string outputTemplate, IFormatProvider formatProvider) : ITextFormatter
{
    private const string ExceptionIndent = "    ";

    /// <summary>C0 and C1 controls, DEL, and the Unicode line and paragraph separators.</summary>
    private static readonly SearchValues<char> Escaped = SearchValues.Create(
        [.. Enumerable.Range(0, 0x20).Select(c => (char)c), .. Enumerable.Range(0x7f, 0x21).Select(c => (char)c), '\u2028', '\u2029']);

    private readonly MessageTemplateTextFormatter _template = new(outputTemplate, formatProvider);

    public void Format(LogEvent logEvent, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(logEvent);
        ArgumentNullException.ThrowIfNull(output);
        using var line = new StringWriter(CultureInfo.InvariantCulture);
        _template.Format(logEvent, line);
        WriteEscaped(line.ToString(), output);
        output.Write('\n');
        if (logEvent.Exception is not { } exception)
        {
            return;
        }

        // Exception.ToString() breaks its lines with Environment.NewLine; they stay lines, indented.
        foreach (var exceptionLine in exception.ToString().Split(Environment.NewLine))
        {
            output.Write(ExceptionIndent);
            WriteEscaped(exceptionLine, output);
            output.Write('\n');
        }
    }

    private static void WriteEscaped(ReadOnlySpan<char> text, TextWriter output)
    {
        while (text.Length > 0)
        {
            var next = text.IndexOfAny(Escaped);
            if (next < 0)
            {
                output.Write(text);
                return;
            }

            output.Write(text[..next]);
            output.Write(text[next] switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                var c => string.Create(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"),
            });
            text = text[(next + 1)..];
        }
    }
}
