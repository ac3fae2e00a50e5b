namespace EventProcessor.Ingress;

/// <summary>Why a delivery was refused; each maps to one HTTP status and, on SQS, to a dead letter.</summary>
public enum IngressRejection
{
    /// <summary>Not JSON, not a shape this product knows, or a shape with a field missing or wrong (400).</summary>
    Malformed,

    /// <summary>Over a size limit, compressed or not (413).</summary>
    TooLarge,

    /// <summary>The sender's client may not send this event type, or is disabled (403).</summary>
    Forbidden,

    /// <summary>The payload violates its event type's JSON Schema (422).</summary>
    SchemaViolation,

    /// <summary>An event's id is stored already, for another tenant or for none (409): it is not a duplicate.</summary>
    Conflict,
}

/// <summary>
/// A delivery that can never be accepted as it is: sending it again will not help. Nothing of it was written.
/// </summary>
public sealed class IngressRejectedException : Exception
{
    /// <summary>Creates a rejection with one or more reasons.</summary>
    public IngressRejectedException(IngressRejection rejection, string message, IReadOnlyList<string>? violations = null)
        : base(message)
    {
        Rejection = rejection;
        Violations = violations ?? [];
    }

    /// <summary>Creates a malformed-input rejection.</summary>
    public IngressRejectedException(string message)
        : this(IngressRejection.Malformed, message)
    {
    }

    /// <summary>Creates a malformed-input rejection caused by <paramref name="innerException"/>.</summary>
    public IngressRejectedException(string message, Exception innerException)
        : base(message, innerException) => Violations = [];

    /// <summary>Creates a malformed-input rejection without a message.</summary>
    public IngressRejectedException()
        : this(IngressRejection.Malformed, "The delivery was rejected.")
    {
    }

    /// <summary>The kind of refusal.</summary>
    public IngressRejection Rejection { get; }

    /// <summary>Each violation as a short sentence (schema and envelope errors); empty when the message says it all.</summary>
    public IReadOnlyList<string> Violations { get; }

    /// <summary>The message and every violation, for a dead letter's reason.</summary>
    public string Describe() => Violations.Count == 0 ? Message : $"{Message}: {string.Join("; ", Violations)}";
}
