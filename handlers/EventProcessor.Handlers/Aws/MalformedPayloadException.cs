namespace EventProcessor.Handlers.Aws;

/// <summary>
/// A payload that lacks what identifies the row it is about (a task ARN, a connection id, a log event id). Thrown as
/// a handler failure: the event is retried and then dead-lettered with this message, to be fixed and replayed.
/// </summary>
public sealed class MalformedPayloadException : Exception
{
    /// <summary>Creates the exception.</summary>
    public MalformedPayloadException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public MalformedPayloadException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception.</summary>
    public MalformedPayloadException()
    {
    }
}
